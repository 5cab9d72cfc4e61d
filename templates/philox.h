/* Counter-based random numbers (Philox4x32-10) and standard normals keyed by
 * (seed, step, noisy state, node). Model-independent; included by simulator.c.j2. */
/* -- counter-based random numbers: Philox4x32-10 (Salmon et al. 2011) ----------------------- */
/* The counter as four scalars (not an array): a loop over counters then vectorises. */
typedef struct { uint32_t c0, c1, c2, c3; } mf_counter;

static inline mf_counter mf_philox4x32_10(mf_counter c, uint32_t k0, uint32_t k1)
{
#if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC unroll 10
#endif
    for (int round = 0; round < 10; round++) {
        const uint64_t p0 = (uint64_t)0xD2511F53u * c.c0;
        const uint64_t p1 = (uint64_t)0xCD9E8D57u * c.c2;
        const uint32_t c1 = c.c1, c3 = c.c3;
        c.c0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        c.c1 = (uint32_t)p1;
        c.c2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c.c3 = (uint32_t)p0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

void mf_philox(const uint32_t *counter, const uint32_t *key, uint32_t *out)
{
    const mf_counter c = mf_philox4x32_10(
        (mf_counter){counter[0], counter[1], counter[2], counter[3]}, key[0], key[1]);
    out[0] = c.c0;
    out[1] = c.c1;
    out[2] = c.c2;
    out[3] = c.c3;
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
        #pragma omp simd   /* the pairs' Philox rounds in vector lanes (integer: the same bits) */
        for (int64_t p = 0; p < count; p++) {
            const mf_counter c = mf_philox4x32_10(
                (mf_counter){(uint32_t)(start + p), (uint32_t)q, (uint32_t)step,
                             (uint32_t)((uint64_t)step >> 32)},
                (uint32_t)seed, (uint32_t)(seed >> 32));
            const uint64_t a = ((uint64_t)c.c1 << 32) | c.c0;
            const uint64_t b = ((uint64_t)c.c3 << 32) | c.c2;
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
