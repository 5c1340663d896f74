/* Constant-time check of ML-DSA under valgrind memcheck. The seed xi, the secret key and the
 * signing randomness are marked undefined, so memcheck reports every conditional branch and
 * memory address that depends on them. This file includes the implementation with
 * QV_CT_DECLASSIFY defined as VALGRIND_MAKE_MEM_DEFINED: the only values it releases are
 * those FIPS 204 allows to leak (each rejection-sampling decision, the public-key parts rho
 * and tr, and the final signature). Run: valgrind --error-exitcode=1 ./test_mldsa_ct
 * Without valgrind it still checks that keygen, sign and verify agree. With the argument
 * --canary it also branches on a secret byte on purpose, so a run must then report an error:
 * that proves the checker is live. */
#include <stdio.h>
#include <string.h>
#include <valgrind/memcheck.h>

#define QV_CT_DECLASSIFY(ptr, len) ((void)VALGRIND_MAKE_MEM_DEFINED((ptr), (len)))
#include "pqc/mldsa.c"

#define SECRET(ptr, len) ((void)VALGRIND_MAKE_MEM_UNDEFINED((ptr), (len)))
#define PUBLIC(ptr, len) ((void)VALGRIND_MAKE_MEM_DEFINED((ptr), (len)))

static int check_set(int alg)
{
    static uint8_t pk[2592], sk[4896], sig[4627];
    uint8_t xi[32], rnd[32];
    const uint8_t msg[] = "constant-time check message";
    const uint8_t ctx[] = "qv-ct";
    size_t pk_len, sk_len, sig_len;
    if (qv_mldsa_sizes(alg, &pk_len, &sk_len, &sig_len) != 0)
        return 1;
    for (unsigned i = 0; i < 32; i++) {
        xi[i] = (uint8_t)(i * 7 + alg);
        rnd[i] = (uint8_t)(i * 13 + 1);
    }

    SECRET(xi, sizeof xi);
    int rc = qv_mldsa_keygen_seed(alg, pk, sk, xi);
    PUBLIC(pk, pk_len); /* the public key is the output */
    if (rc != 0) {
        fprintf(stderr, "ML-DSA-%d keygen: %d\n", alg, rc);
        return 1;
    }

    for (int hedged = 0; hedged < 2; hedged++) {
        SECRET(sk, sk_len);
        SECRET(rnd, sizeof rnd);
        static const uint8_t zero[32];
        rc = qv_mldsa_sign_rnd(alg, sig, sk, msg, sizeof msg - 1, ctx, sizeof ctx - 1,
                               hedged ? rnd : zero);
        PUBLIC(sig, sig_len); /* the signature is the output */
        if (rc != 0) {
            fprintf(stderr, "ML-DSA-%d sign: %d\n", alg, rc);
            return 1;
        }
        rc = qv_mldsa_verify(alg, pk, pk_len, msg, sizeof msg - 1, sig, sig_len, ctx,
                             sizeof ctx - 1);
        if (rc != 0) {
            fprintf(stderr, "ML-DSA-%d verify: %d\n", alg, rc);
            return 1;
        }
    }
    printf("ML-DSA-%d: keygen, deterministic and hedged sign checked\n", alg);
    return 0;
}

/* A deliberate secret-dependent branch (only with --canary). */
static int canary(void)
{
    volatile uint8_t secret[1] = {1};
    SECRET((void *)secret, 1);
    int r = 0;
    if (secret[0] & 1)
        r = 1;
    return r;
}

int main(int argc, char **argv)
{
    int failed = 0;
    if (argc > 1 && strcmp(argv[1], "--canary") == 0)
        printf("canary branch taken: %d\n", canary());
    /* Every code path this CPU offers (under valgrind: portable and AVX2; valgrind hides
     * AVX-512 from CPUID). */
    for (int path = QV_MLDSA_PATH_PORTABLE; path <= QV_MLDSA_PATH_AVX512; path++) {
        qv_mldsa_set_path_limit(path);
        if (qv_mldsa_path() != path)
            continue;
        printf("code path %s\n", qv_mldsa_code_path());
        failed |= check_set(QV_MLDSA_44);
        failed |= check_set(QV_MLDSA_65);
        failed |= check_set(QV_MLDSA_87);
    }
    return failed;
}
