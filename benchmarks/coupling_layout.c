/* Delayed-coupling memory layouts at large N (a speed experiment, not part of mfgen).
 *
 * The engine's float64 coupling reads, per connection e of target row i, the source's value
 * `delay[e]` steps ago from a mirrored time-major ring (slot, node): history[slot - delay][col].
 * At N = 10 000 with 200 000 connections and delays of 25-375 steps the ring is ~60 MB and every
 * read is a random cache miss. Three orders of the same reads and sums are timed here:
 *   0: CSR order, time-major ring (what templates/coupling.c.j2 does);
 *   1: connections sorted by ring address (delay, then source), products into a per-connection
 *      array, then the CSR row sums (same sum order, so the same result bits);
 *   2: CSR order, node-major ring (node, slot): consecutive steps reuse a cache line;
 *   3: the floor: CSR order, time-major ring, the ring reads and row sums alone (no weights,
 *      offsets only): what one thread's random reads of the ring cost on this machine.
 *
 * The rings are allocated as NumPy allocates the engine's: on transparent huge pages
 * (madvise); with 4 KiB pages (HUGE=0) every random read also misses the TLB, and there the
 * sorted order wins at 100 000 nodes (engine_results.md, phase 3): the sorted order is in the
 * engine as coupling_order='ring'.
 *
 *     cc -O3 -march=native -o /tmp/coupling_layout benchmarks/coupling_layout.c
 *     /tmp/coupling_layout 10000 200      # nodes, steps (degree 20); CPU time per connection
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double *ring_alloc(int64_t values)
{
    void *p = NULL;
    if (posix_memalign(&p, 2 << 20, values * 8) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    const char *huge = getenv("HUGE");
    if (!huge || huge[0] != '0') madvise(p, values * 8, MADV_HUGEPAGE);
#endif
    return p;
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t xorshift(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const int64_t *sort_key;
static int by_key(const void *a, const void *b)
{
    int64_t x = sort_key[*(const int64_t *)a], y = sort_key[*(const int64_t *)b];
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s NODES STEPS\n", argv[0]);
        return 2;
    }
    const int64_t n = atol(argv[1]), degree = 20, n_conn = n * degree, horizon = 376;
    const int64_t steps = atol(argv[2]);
    int64_t *row = malloc((n + 1) * 8), *col = malloc(n_conn * 8), *delay = malloc(n_conn * 8);
    int64_t *offset_time = malloc(n_conn * 8), *offset_node = malloc(n_conn * 8);
    int64_t *order = malloc(n_conn * 8), *offset_sorted = malloc(n_conn * 8);
    double *weight = malloc(n_conn * 8), *weight_sorted = malloc(n_conn * 8);
    double *terms = malloc(n_conn * 8), *c = malloc(n * 8), *x = malloc(n * 8);
    double *ring_time = ring_alloc(2 * horizon * n), *ring_node = ring_alloc(2 * horizon * n);
    for (int64_t i = 0; i <= n; i++) row[i] = i * degree;
    for (int64_t e = 0; e < n_conn; e++) {
        col[e] = xorshift() % n;
        delay[e] = 25 + xorshift() % 351;
        weight[e] = (xorshift() % 1000) / 1e4;
        offset_time[e] = (horizon - delay[e]) * n + col[e];
        offset_node[e] = col[e] * 2 * horizon + horizon - delay[e];
        order[e] = e;
    }
    for (int64_t k = 0; k < 2 * horizon * n; k++) ring_time[k] = ring_node[k] = (k % 97) * 1e-3;
    for (int64_t i = 0; i < n; i++) x[i] = i * 1e-5;
    sort_key = offset_time;
    qsort(order, n_conn, 8, by_key);
    for (int64_t k = 0; k < n_conn; k++) {
        offset_sorted[k] = offset_time[order[k]];
        weight_sorted[k] = weight[order[k]];
    }
    const char *names[] = {"CSR order, time-major ring (the engine's)",
                           "sorted by delay and source, then CSR sums",
                           "CSR order, node-major ring",
                           "the floor: ring reads and row sums alone"};
    double checksum = 0;
    for (int round = 0; round < 8; round++) {  /* interleaved: load hits every variant alike */
        const int variant = round % 4;
        const double start = cpu_seconds();
        for (int64_t t = 0; t < steps; t++) {
            const int64_t slot = t % horizon;
            if (variant == 2) {
                const double *base = ring_node + slot;
                for (int64_t i = 0; i < n; i++) {
                    double acc = 0;
                    for (int64_t e = row[i]; e < row[i + 1]; e++)
                        acc += weight[e] * base[offset_node[e]];
                    c[i] = acc;
                }
                for (int64_t i = 0; i < n; i++)
                    ring_node[i * 2 * horizon + slot] = ring_node[i * 2 * horizon + slot + horizon]
                        = x[i] + c[i] * 1e-9;
            } else {
                const double *base = ring_time + slot * n;
                if (variant == 0) {
                    for (int64_t i = 0; i < n; i++) {
                        double acc = 0;
                        for (int64_t e = row[i]; e < row[i + 1]; e++)
                            acc += weight[e] * base[offset_time[e]];
                        c[i] = acc;
                    }
                } else if (variant == 3) {
                    for (int64_t i = 0; i < n; i++) {
                        double acc = 0;
                        for (int64_t e = row[i]; e < row[i + 1]; e++) acc += base[offset_time[e]];
                        c[i] = acc;
                    }
                } else {
                    for (int64_t k = 0; k < n_conn; k++)
                        terms[order[k]] = weight_sorted[k] * base[offset_sorted[k]];
                    for (int64_t i = 0; i < n; i++) {
                        double acc = 0;
                        for (int64_t e = row[i]; e < row[i + 1]; e++) acc += terms[e];
                        c[i] = acc;
                    }
                }
                for (int64_t i = 0; i < n; i++)
                    ring_time[slot * n + i] = ring_time[(slot + horizon) * n + i]
                        = x[i] + c[i] * 1e-9;
            }
            checksum += c[t % n];
        }
        const double seconds = cpu_seconds() - start;
        printf("N = %ld, %s: %.2f ns per connection (%.0f us per step)\n", (long)n,
               names[variant], seconds / steps / n_conn * 1e9, seconds / steps * 1e6);
    }
    printf("(checksum %g)\n", checksum);
    return 0;
}
