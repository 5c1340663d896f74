/* The fast scalar and 4-lane Keccak-f[1600] (csrc/pqc/keccak_x4.c) against the reference
 * qv_keccak_f1600, on every 4-lane path the CPU has (AVX-512VL, AVX2, portable), and the
 * 8-lane one (AVX-512F or its portable loop). */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "pqc/keccak_x4.h"
#include "quantavirt/keccak.h"

int main(void)
{
    int failures = 0;
    for (int level = 3; level >= 0; level--) {
        qv_keccakx4_set_max_level(level);
        for (int trial = 0; trial < 200; trial++) {
            uint64_t ref[4][25], fast[25];
            qv_keccakx4 x4;
            if (getrandom(ref, sizeof ref, 0) != (ssize_t)sizeof ref)
                return 2;
            for (int l = 0; l < 4; l++)
                for (int i = 0; i < 25; i++)
                    x4.s[i][l] = ref[l][i];
            memcpy(fast, ref[0], sizeof fast);
            qv_keccak_f1600_fast(fast);
            qv_keccak_f1600_x4(&x4);
            for (int l = 0; l < 4; l++)
                qv_keccak_f1600(ref[l]);
            failures += memcmp(fast, ref[0], sizeof fast) != 0;
            for (int l = 0; l < 4; l++)
                for (int i = 0; i < 25; i++)
                    failures += x4.s[i][l] != ref[l][i];
        }
        printf("4-lane path %s checked\n", qv_keccakx4_code_path());
    }
    /* The 8-lane permutation (AVX-512F when the CPU has it, else its portable loop). */
    for (int level = 3; level >= 2; level--) {
        qv_keccakx4_set_max_level(level);
        for (int trial = 0; trial < 200; trial++) {
            uint64_t ref[8][25];
            qv_keccakx8 x8;
            if (getrandom(ref, sizeof ref, 0) != (ssize_t)sizeof ref)
                return 2;
            for (int l = 0; l < 8; l++)
                for (int i = 0; i < 25; i++)
                    x8.s[i][l] = ref[l][i];
            qv_keccak_f1600_x8(&x8);
            for (int l = 0; l < 8; l++)
                qv_keccak_f1600(ref[l]);
            for (int l = 0; l < 8; l++)
                for (int i = 0; i < 25; i++)
                    failures += x8.s[i][l] != ref[l][i];
        }
        printf("8-lane permutation checked (%s)\n",
               qv_keccakx8_available() ? "AVX-512F" : "portable loop");
    }
    /* SHAKE128 through absorb / squeeze_blocks equals the reference sponge. */
    uint8_t msg[4][34], out[4][3 * 168], want[3 * 168];
    if (getrandom(msg, sizeof msg, 0) != (ssize_t)sizeof msg)
        return 2;
    const uint8_t *in[4] = {msg[0], msg[1], msg[2], msg[3]};
    uint8_t *outs[4] = {out[0], out[1], out[2], out[3]};
    qv_keccakx4 st;
    qv_keccakx4_set_max_level(2);
    qv_keccakx4_absorb(&st, QV_KECCAK_LEVEL_DEFAULT, 168, 0x1F, in, 34);
    qv_keccakx4_squeeze_blocks(&st, QV_KECCAK_LEVEL_DEFAULT, 168, outs, 3);
    for (int l = 0; l < 4; l++) {
        qv_shake128(want, sizeof want, msg[l], 34);
        failures += memcmp(want, out[l], sizeof want) != 0;
    }
    /* Four-lane SHA3-256 / SHA3-512 / SHAKE256 of long inputs against the reference. */
    static uint8_t longmsg[4][1600];
    uint8_t h[4][64], hw[64];
    uint8_t *hs[4] = {h[0], h[1], h[2], h[3]};
    if (getrandom(longmsg, sizeof longmsg, 0) != (ssize_t)sizeof longmsg)
        return 2;
    const uint8_t *lm[4] = {longmsg[0], longmsg[1], longmsg[2], longmsg[3]};
    const size_t lens[] = {0, 1, 33, 64, 71, 72, 135, 136, 137, 1184, 1120, 1600};
    for (unsigned t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        qv_keccakx4_hash(136, 0x06, lm, lens[t], hs, 32);
        for (int l = 0; l < 4; l++) {
            qv_sha3_256(hw, longmsg[l], lens[t]);
            failures += memcmp(hw, h[l], 32) != 0;
        }
        qv_keccakx4_hash(72, 0x06, lm, lens[t], hs, 64);
        for (int l = 0; l < 4; l++) {
            qv_sha3_512(hw, longmsg[l], lens[t]);
            failures += memcmp(hw, h[l], 64) != 0;
        }
        qv_keccakx4_hash(136, 0x1F, lm, lens[t], hs, 32);
        for (int l = 0; l < 4; l++) {
            qv_shake256(hw, 32, longmsg[l], lens[t]);
            failures += memcmp(hw, h[l], 32) != 0;
        }
    }
    printf("%s\n", failures ? "FAILED" : "OK");
    return failures != 0;
}
