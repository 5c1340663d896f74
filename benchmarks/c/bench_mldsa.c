/* ML-DSA in the C core without Python in the way: median and mean microseconds per keygen,
 * sign (hedged and deterministic) and verify for ML-DSA-44/65/87 on one core.
 * Usage: bench_mldsa [iterations]   (default 2000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quantavirt/mldsa.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *alg, const char *op, double *t, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += t[i];
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("%-10s %-12s median %9.1f us   mean %9.1f us   %9.0f ops/s\n", alg, op, t[n / 2],
           sum / n, 1e6 * n / sum);
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    if (iters < 1)
        iters = 1;
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
