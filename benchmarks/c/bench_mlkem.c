/* ML-KEM C benchmark: single-operation keygen / encaps / decaps and the batch entry points for
 * the three parameter sets, on one core, without Python in the way. Time is this thread's CPU
 * time (time spent preempted on a shared machine does not count) and each measurement is the
 * best of 100 short runs (the least disturbed one), next to their median;
 * prints microseconds per operation (minimum and median) and operations per second (from
 * the minimum).
 * Usage: bench_mlkem [seconds-per-measurement [portable]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quantavirt/mlkem.h"

#define BATCH 64
#define REPS 100

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint8_t eks[BATCH][QV_MLKEM1024_PUBLIC_KEY_BYTES];
static uint8_t dks[BATCH][QV_MLKEM1024_SECRET_KEY_BYTES];
static uint8_t cts[BATCH][QV_MLKEM1024_CIPHERTEXT_BYTES];
static uint8_t sss[BATCH][32];

enum op { KEYGEN, ENCAPS, DECAPS, KEYGEN_BATCH, ENCAPS_BATCH, DECAPS_BATCH };
static const char *op_names[] = {"keygen", "encaps", "decaps", "keygen x64", "encaps x64",
                                 "decaps x64"};

/* One call of the operation; returns how many ML-KEM operations it did (0 on error). */
static int once(int level, enum op op, size_t ek_len, size_t dk_len, size_t ct_len)
{
    /* Batch entry points take packed arrays: pack into the first rows of the static buffers. */
    switch (op) {
    case KEYGEN: return qv_mlkem_keygen(level, eks[0], ek_len, dks[0], dk_len) == 0;
    case ENCAPS: return qv_mlkem_encaps(level, eks[0], ek_len, cts[0], ct_len, sss[0], 32) == 0;
    case DECAPS: return qv_mlkem_decaps(level, dks[0], dk_len, cts[0], ct_len, sss[0], 32) == 0;
    case KEYGEN_BATCH:
        return qv_mlkem_keygen_batch(level, BATCH, eks[0], dks[0]) == 0 ? BATCH : 0;
    case ENCAPS_BATCH:
        return qv_mlkem_encaps_batch(level, BATCH, eks[0], cts[0], sss[0], NULL) == 0 ? BATCH : 0;
    case DECAPS_BATCH:
        return qv_mlkem_decaps_batch(level, BATCH, dks[0], cts[0], sss[0], NULL) == 0 ? BATCH : 0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    if (argc > 2 && qv_mlkem_select_code_path(argv[2]) != 0) {
        fprintf(stderr, "unknown or unsupported code path %s\n", argv[2]);
        return 1;
    }
    const int levels[] = {512, 768, 1024};
    printf("ML-KEM software backend, code path %s, one core\n", qv_mlkem_code_path());
    printf("%-12s %-12s %12s %12s %14s\n", "algorithm", "operation", "us/op min", "us/op med",
           "ops/s");
    for (int l = 0; l < 3; l++) {
        int level = levels[l];
        size_t ek_len, dk_len, ct_len;
        qv_mlkem_sizes(level, &ek_len, &dk_len, &ct_len);
        /* Valid packed batch inputs for the batch measurements. */
        if (qv_mlkem_keygen_batch(level, BATCH, eks[0], dks[0]) != 0 ||
            qv_mlkem_encaps_batch(level, BATCH, eks[0], cts[0], sss[0], NULL) != 0) {
            fprintf(stderr, "setup failed\n");
            return 1;
        }
        for (int op = KEYGEN; op <= DECAPS_BATCH; op++) {
            double per_op[REPS];
            for (int w = 0; w < 50; w++) /* warm-up */
                once(level, (enum op)op, ek_len, dk_len, ct_len);
            for (int rep = 0; rep < REPS; rep++) {
                long done = 0;
                double start = now(), elapsed;
                do {
                    int n = once(level, (enum op)op, ek_len, dk_len, ct_len);
                    if (n == 0) {
                        fprintf(stderr, "ML-KEM-%d %s failed\n", level, op_names[op]);
                        return 1;
                    }
                    done += n;
                    elapsed = now() - start;
                } while (elapsed < seconds / REPS);
                per_op[rep] = elapsed / done;
            }
            qsort(per_op, REPS, sizeof per_op[0], cmp_double);
            double best = per_op[0], median = (per_op[REPS / 2 - 1] + per_op[REPS / 2]) / 2;
            printf("ML-KEM-%-5d %-12s %12.2f %12.2f %14.0f\n", level, op_names[op], best * 1e6,
                   median * 1e6, 1 / best);
        }
    }
    return 0;
}
