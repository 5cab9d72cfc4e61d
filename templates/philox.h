/* Counter-based random numbers (Philox4x32-10) and standard normals keyed by
 * (seed, step, noisy state, node). Model-independent; included by simulator.c.j2. */
/* -- counter-based random numbers: Philox4x32-10 (Salmon et al. 2011) ----------------------- */
static inline void mf_philox4x32_10(uint32_t ctr[4], uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
        const uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0];
        const uint64_t p1 = (uint64_t)0xCD9E8D57u * ctr[2];
        const uint32_t c1 = ctr[1], c3 = ctr[3];
        ctr[0] = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        ctr[1] = (uint32_t)p1;
        ctr[2] = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        ctr[3] = (uint32_t)p0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

void mf_philox(const uint32_t *counter, const uint32_t *key, uint32_t *out)
{
    uint32_t c[4] = {counter[0], counter[1], counter[2], counter[3]};
    mf_philox4x32_10(c, key[0], key[1]);
    for (int i = 0; i < 4; i++) out[i] = c[i];
}


/* Standard normals for (seed, step, noisy state q, node): two per Philox call (Box-Muller),
 * so the values depend only on these keys, never on chunking, threads or call order. Nodes
 * i0 .. i1 - 1 of out (i0 even: pair p gives nodes 2p and 2p + 1; i1 is even or n_nodes).
 * The integer Philox rounds run first for a block of pairs, then the transcendental part in
 * SIMD loops (libmvec's log, cos, sin). */
static void mf_normals_nodes(uint64_t seed, int64_t step, int32_t q, int64_t n_nodes,
                             int64_t i0, int64_t i1, double *out)
{
    enum { BLOCK = 64 };
    const double two_pi = 6.283185307179586;
    const int64_t pairs = (i1 + 1) / 2;
    double u1[BLOCK], u2[BLOCK], radius[BLOCK], first[BLOCK], second[BLOCK];
    for (int64_t start = i0 / 2; start < pairs; start += BLOCK) {
        const int64_t count = pairs - start < BLOCK ? pairs - start : BLOCK;
        for (int64_t p = 0; p < count; p++) {
            uint32_t c[4] = {(uint32_t)(start + p), (uint32_t)q, (uint32_t)step,
                             (uint32_t)((uint64_t)step >> 32)};
            mf_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
            const uint64_t a = ((uint64_t)c[1] << 32) | c[0];
            const uint64_t b = ((uint64_t)c[3] << 32) | c[2];
            u1[p] = ((double)(a >> 11) + 1.0) * 0x1.0p-53;   /* (0, 1] */
            u2[p] = (double)(b >> 11) * 0x1.0p-53;           /* [0, 1) */
        }
        /* cos and sin in loops of their own: in one loop gcc fuses them into one sincos
         * call, which it does not vectorise, and the whole loop (log included) ran scalar */
        #pragma omp simd
        for (int64_t p = 0; p < count; p++) {
            radius[p] = sqrt(-2.0 * log(u1[p]));
            first[p] = radius[p] * cos(two_pi * u2[p]);
        }
        #pragma omp simd
        for (int64_t p = 0; p < count; p++) second[p] = radius[p] * sin(two_pi * u2[p]);
        for (int64_t p = 0; p < count; p++) {
            const int64_t node = 2 * (start + p);
            out[node] = first[p];
            if (node + 1 < n_nodes) out[node + 1] = second[p];
        }
    }
}

void mf_normals(uint64_t seed, int64_t step, int32_t q, int64_t n_nodes, double *out)
{
    mf_normals_nodes(seed, step, q, n_nodes, 0, n_nodes, out);
}
