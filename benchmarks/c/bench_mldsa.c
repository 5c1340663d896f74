/* ML-DSA in the C core without Python in the way: microseconds per keygen, sign (hedged and
 * deterministic) and verify for ML-DSA-44/65/87 on one core, on the code path the CPU offers
 * (or a lower one). Times are this thread's CPU time. Reported: the median, the mean, and the
 * best mean over ten equal rounds (the round least disturbed by other load on the machine; for
 * sign, whose cost varies with the number of rejection iterations, the mean is the figure that
 * matters).
 * Usage: bench_mldsa [iterations] [path]   (default 2000; path 0 portable, 1 avx2, 2 avx512;
 * default the best available) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quantavirt/mldsa.h"

/* Thread CPU time, not wall time: on a machine shared with other jobs the time this thread
 * spends preempted is not the operation's cost. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *alg, const char *op, double *t, int n)
{
    double sum = 0, best = 0;
    const int rounds = n >= 10 ? 10 : 1, per = n / rounds;
    for (int r = 0; r < rounds; r++) {
        double rs = 0;
        for (int i = r * per; i < (r + 1) * per; i++)
            rs += t[i];
        if (r == 0 || rs / per < best)
            best = rs / per;
    }
    for (int i = 0; i < n; i++)
        sum += t[i];
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("%-10s %-11s median %8.1f us   mean %8.1f us   best-round mean %8.1f us  %8.0f ops/s\n",
           alg, op, t[n / 2], sum / n, best, 1e6 / best);
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    if (iters < 1)
        iters = 1;
    if (argc > 2)
        qv_mldsa_set_path_limit(atoi(argv[2]));
    printf("code path: %s\n", qv_mldsa_code_path());
    static uint8_t pk[2592], sk[4896], sig[4627];
    uint8_t msg[64], xi[32];
    memset(msg, 0x5a, sizeof msg);
    double *t = malloc(sizeof(double) * (size_t)iters);
    if (!t)
        return 1;
    const int algs[3] = {QV_MLDSA_44, QV_MLDSA_65, QV_MLDSA_87};
    for (int a = 0; a < 3; a++) {
        char name[16];
        snprintf(name, sizeof name, "ML-DSA-%d", algs[a]);
        size_t pk_len, sig_len;
        qv_mldsa_sizes(algs[a], &pk_len, NULL, &sig_len);
        for (int i = 0; i < iters; i++) {
            memset(xi, i & 0xff, sizeof xi);
            xi[1] = (uint8_t)(i >> 8);
            double t0 = now_us();
            if (qv_mldsa_keygen_seed(algs[a], pk, sk, xi) != 0)
                return 1;
            t[i] = now_us() - t0;
        }
        report(name, "keygen", t, iters);
        for (int det = 0; det < 2; det++) {
            for (int i = 0; i < iters; i++) {
                msg[0] = (uint8_t)i;
                msg[1] = (uint8_t)(i >> 8);
                double t0 = now_us();
                if (qv_mldsa_sign(algs[a], sig, sk, msg, sizeof msg, NULL, 0, det) != 0)
                    return 1;
                t[i] = now_us() - t0;
            }
            report(name, det ? "sign (det)" : "sign", t, iters);
        }
        for (int i = 0; i < iters; i++) {
            double t0 = now_us();
            int rc = qv_mldsa_verify(algs[a], pk, pk_len, msg, sizeof msg, sig, sig_len, NULL, 0);
            t[i] = now_us() - t0;
            if (rc != 0)
                return 1;
        }
        report(name, "verify", t, iters);
    }
    free(t);
    return 0;
}
