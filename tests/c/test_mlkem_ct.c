/* Constant-time check of ML-KEM under valgrind's memcheck: the secret inputs (the keygen seed
 * d || z, the encapsulation message m, and dk_pke and z inside the decapsulation key) are
 * marked undefined, so memcheck reports every conditional branch or memory index that depends
 * on them. Public outputs (ek, ct, and the shared secret once computed) are declassified.
 * Run as `valgrind --error-exitcode=99 test_mlkem_ct`; the program itself checks that the
 * results are right. `test_mlkem_ct --leak` adds a deliberate secret-dependent branch, so the
 * test can show that the checker does catch one. Outside valgrind the requests do nothing. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <valgrind/memcheck.h>

#include "quantavirt/mlkem.h"

#define SECRET(p, n) ((void)VALGRIND_MAKE_MEM_UNDEFINED((p), (n)))
#define PUBLIC(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))

static int failures;

static void check(int ok, const char *what, int level)
{
    if (!ok) {
        printf("FAIL ML-KEM-%d: %s\n", level, what);
        failures++;
    }
}

static void run(int level, int leak)
{
    uint8_t seed[64], m[32], ek[QV_MLKEM1024_PUBLIC_KEY_BYTES], dk[QV_MLKEM1024_SECRET_KEY_BYTES];
    uint8_t ct[QV_MLKEM1024_CIPHERTEXT_BYTES], ss[32], ss2[32], ss3[32];
    static uint8_t dks[2][QV_MLKEM1024_SECRET_KEY_BYTES], cts[2][QV_MLKEM1024_CIPHERTEXT_BYTES];
    uint8_t sss[2][32];
    size_t ek_len, dk_len, ct_len;
    qv_mlkem_sizes(level, &ek_len, &dk_len, &ct_len);
    const size_t pke = dk_len - ek_len - 64; /* dk = dk_pke || ek || H(ek) || z */

    check(getrandom(seed, sizeof seed, 0) == (ssize_t)sizeof seed, "getrandom", level);
    check(getrandom(m, sizeof m, 0) == (ssize_t)sizeof m, "getrandom", level);

    /* KeyGen_internal(d, z) with d and z secret. */
    SECRET(seed, sizeof seed);
    check(qv_mlkem_keygen_seed(level, seed, sizeof seed, ek, ek_len, dk, dk_len) == 0, "keygen",
          level);
    PUBLIC(ek, ek_len);
    PUBLIC(dk + pke, ek_len + 32); /* the copy of ek and H(ek) inside dk are public too */

    /* Encaps_internal(ek, m) with m secret. */
    SECRET(m, sizeof m);
    check(qv_mlkem_encaps_derand(level, ek, ek_len, m, sizeof m, ct, ct_len, ss, sizeof ss) == 0,
          "encaps", level);
    PUBLIC(ct, ct_len);

    /* Decaps with dk_pke and z secret: a valid ciphertext, then a modified one (implicit
     * rejection), so both outcomes of the final comparison run. */
    SECRET(dk, pke);
    SECRET(dk + dk_len - 32, 32);
    check(qv_mlkem_decaps(level, dk, dk_len, ct, ct_len, ss2, sizeof ss2) == 0, "decaps", level);
    ct[ct_len / 2] ^= 0x10;
    check(qv_mlkem_decaps(level, dk, dk_len, ct, ct_len, ss3, sizeof ss3) == 0, "decaps", level);
    ct[ct_len / 2] ^= 0x10;

    /* The batch entry point (packed arrays, 4-lane hashing): the same two cases. */
    memcpy(dks, dk, dk_len); /* copies keep memcheck's undefined marking */
    memcpy((uint8_t *)dks + dk_len, dk, dk_len);
    memcpy(cts, ct, ct_len);
    memcpy((uint8_t *)cts + ct_len, ct, ct_len);
    ((uint8_t *)cts)[ct_len + 7] ^= 0x01;
    check(qv_mlkem_decaps_batch(level, 2, (uint8_t *)dks, (uint8_t *)cts, (uint8_t *)sss, NULL) ==
              0,
          "decaps_batch", level);

    if (leak) {
        /* Negative control: branch on a secret byte on purpose. */
        volatile int sink = 0;
        if (dk[0] & 1)
            sink = 1;
        (void)sink;
    }

    /* The shared secrets leave the computation here: declassify, then compare. */
    PUBLIC(ss, sizeof ss);
    PUBLIC(ss2, sizeof ss2);
    PUBLIC(ss3, sizeof ss3);
    PUBLIC(sss, sizeof sss);
    check(memcmp(sss[0], ss, 32) == 0, "decaps_batch shared secret", level);
    check(memcmp(sss[1], ss, 32) != 0, "decaps_batch implicit rejection", level);
    check(memcmp(ss, ss2, sizeof ss) == 0, "decaps(encaps) shared secret", level);
    check(memcmp(ss, ss3, sizeof ss) != 0, "implicit rejection", level);
    printf("ML-KEM-%d: keygen, encaps, decaps and implicit rejection done\n", level);
}

int main(int argc, char **argv)
{
    int leak = argc > 1 && strcmp(argv[1], "--leak") == 0;
    /* Every C code path this CPU has: the CPUID choice, then AVX2 and portable. */
    static const char *const paths[] = {"auto", "avx2", "portable"};
    for (int round = 0; round < 3; round++) {
        if (qv_mlkem_select_code_path(paths[round]) != 0)
            continue;
        printf("code path %s\n", qv_mlkem_code_path());
        run(512, leak);
        run(768, leak);
        run(1024, leak);
    }
    printf("%s\n", failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
}
