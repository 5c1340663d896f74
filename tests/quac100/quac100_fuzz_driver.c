/* The quac100 backend's reply handling under AddressSanitizer and UBSan: every operation,
 * many times, against a test device answering garbage (quac100_sim --garbage=SEED). Built by
 * tests/quac100/test_quac100_sanitizers.py against a sanitized core. Exit status 0 when every
 * call returned 0 or a QUAC100_ERR_* code and every checkable success was right; a sanitizer
 * report aborts the process.
 *
 * Usage: quac100_fuzz_driver DEVICE ROUNDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantavirt/errors.h"
#include "quantavirt/mldsa.h"
#include "quantavirt/mlkem.h"
#include "quantavirt/pqc_backend.h"

static int failures;

static void expect(int ok, const char *what, int rc)
{
    if (!ok) {
        fprintf(stderr, "FAIL: %s (rc %d %s)\n", what, rc, qv_strerror_name(rc));
        failures++;
    }
}

static int is_quac_error(int rc)
{
    return rc <= -200 && rc >= -299 && rc != QUAC100_ERR_GONE;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int rounds = atoi(argv[2]);
    qv_pqc_backend *card, *sw;
    int rc = qv_pqc_backend_open("quac100", argv[1], &card);
    if (rc != 0 || qv_pqc_backend_open("software", NULL, &sw) != 0) {
        fprintf(stderr, "open: %s\n", qv_strerror_name(rc));
        return 1;
    }
    static const int kems[3] = {QV_PQC_ML_KEM_512, QV_PQC_ML_KEM_768, QV_PQC_ML_KEM_1024};
    static const int dsas[3] = {QV_PQC_ML_DSA_44, QV_PQC_ML_DSA_65, QV_PQC_ML_DSA_87};
    static uint8_t pk[2592], sk[4896], ct[1568], ss[32], ss2[32], sig[4627], seed[64];
    static uint8_t pk2[2592], sk2[4896], ct2[1568];
    long ok = 0, err = 0;
    for (int r = 0; r < rounds; r++) {
        int kem = kems[r % 3], dsa = dsas[r % 3];
        size_t pkb, skb, ctb, spkb, sskb, sigb;
        qv_pqc_sizes(kem, &pkb, &skb, &ctb);
        qv_pqc_sizes(dsa, &spkb, &sskb, &sigb);
        for (int i = 0; i < 64; i++)
            seed[i] = (uint8_t)(rand() & 0xff);

        /* KEM: keygen (seeded and not), encaps, decaps */
        qv_pqc_kem_keygen(sw, kem, NULL, 0, pk2, pkb, sk2, skb);
        rc = qv_pqc_kem_keygen(card, kem, seed, 64, pk, pkb, sk, skb);
        if (rc == 0) {
            uint8_t rpk[1568], rsk[3168];
            qv_pqc_kem_keygen(sw, kem, seed, 64, rpk, pkb, rsk, skb);
            expect(memcmp(pk, rpk, pkb) == 0 && memcmp(sk, rsk, skb) == 0, "seeded kem keygen", rc);
        }
        expect(rc == 0 || is_quac_error(rc), "kem keygen code", rc);
        rc == 0 ? ok++ : err++;
        rc = qv_pqc_kem_keygen(card, kem, NULL, 0, pk, pkb, sk, skb);
        if (rc == 0) {
            qv_pqc_kem_encaps(sw, kem, pk, pkb, ct, ctb, ss, 32);
            qv_pqc_kem_decaps(sw, kem, sk, skb, ct, ctb, ss2, 32);
            expect(memcmp(ss, ss2, 32) == 0, "kem keypair works", rc);
        }
        expect(rc == 0 || is_quac_error(rc), "kem keygen code", rc);
        rc = qv_pqc_kem_encaps(card, kem, pk2, pkb, ct2, ctb, ss, 32);
        expect(rc == 0 || is_quac_error(rc), "encaps code", rc);
        qv_pqc_kem_encaps(sw, kem, pk2, pkb, ct, ctb, ss2, 32);
        rc = qv_pqc_kem_decaps(card, kem, sk2, skb, ct, ctb, ss, 32);
        expect(rc == 0 || is_quac_error(rc), "decaps code", rc);
        if (rc != 0)
            expect(memcmp(ss, (uint8_t[32]){0}, 32) == 0, "failed decaps output wiped", rc);

        /* KEM batches (BATCH_SUBMIT): three rows of the same key / ciphertext */
        static uint8_t pks3[3 * 1568], sks3[3 * 3168], cts3[3 * 1568], sss3[3 * 32];
        size_t bad = 0;
        for (int i = 0; i < 3; i++) {
            memcpy(pks3 + i * pkb, pk2, pkb);
            memcpy(sks3 + i * skb, sk2, skb);
            memcpy(cts3 + i * ctb, ct, ctb);
        }
        rc = qv_pqc_kem_decaps_batch(card, kem, 3, sks3, cts3, sss3, &bad);
        expect(rc == 0 || is_quac_error(rc), "decaps batch code", rc);
        if (rc != 0)
            expect(memcmp(sss3, (uint8_t[96]){0}, 96) == 0 && bad < 3, "failed batch wiped", rc);
        rc = qv_pqc_kem_encaps_batch(card, kem, 3, pks3, cts3, sss3, &bad);
        expect(rc == 0 || is_quac_error(rc), "encaps batch code", rc);
        rc = qv_pqc_kem_keygen_batch(card, kem, 3, pks3, sks3, &bad);
        expect(rc == 0 || is_quac_error(rc), "keygen batch code", rc);
        if (rc == 0) { /* checked key pairs: each one works */
            qv_pqc_kem_encaps(sw, kem, pks3 + 2 * pkb, pkb, ct2, ctb, ss, 32);
            qv_pqc_kem_decaps(sw, kem, sks3 + 2 * skb, skb, ct2, ctb, ss2, 32);
            expect(memcmp(ss, ss2, 32) == 0, "batch keypair works", rc);
        }

        /* Key slots: generate, decaps by slot, export, list, delete. A shared secret from the
         * card cannot be checked (the lying-card limit), so only codes and wiping are. */
        uint32_t slot = 0;
        rc = qv_quac100_slot_generate(card, kem, "fuzz", &slot, pk, pkb);
        expect(rc == 0 || is_quac_error(rc), "slot generate code", rc);
        if (rc != 0)
            expect(memcmp(pk, (uint8_t[64]){0}, 64) == 0, "failed slot generate wiped", rc);
        if (rc == 0) {
            expect(slot < 16, "generated slot in range", rc);
            qv_pqc_kem_encaps(sw, kem, pk, pkb, ct2, ctb, ss2, 32);
            rc = qv_quac100_slot_decaps(card, slot, kem, ct2, ctb, ss, 32);
            expect(rc == 0 || is_quac_error(rc), "slot decaps code", rc);
            if (rc != 0)
                expect(memcmp(ss, (uint8_t[32]){0}, 32) == 0, "failed slot decaps wiped", rc);
            rc = qv_quac100_slot_public_key(card, slot, kem, pk2, pkb);
            expect(rc == 0 || rc == PQC_ERR_KEY || is_quac_error(rc), "slot export code", rc);
            if (rc == 0)
                expect(memcmp(pk, pk2, pkb) == 0, "exported key is the generated one", rc);
        }
        qv_quac100_key_slot used[16];
        int nused = 0;
        rc = qv_quac100_slot_list(card, used, 16, &nused);
        expect(rc == 0 || is_quac_error(rc), "slot list code", rc);
        for (int i = 0; rc == 0 && i < nused && i < 16; i++) {
            expect(used[i].slot < 16 && strlen(used[i].label) <= 32, "listed slot sane", rc);
            int drc = qv_quac100_slot_delete(card, used[i].slot);
            expect(drc == 0 || is_quac_error(drc), "slot delete code", drc);
        }

        /* ML-DSA: keygen, sign, verify */
        rc = qv_pqc_sig_keygen(card, dsa, seed, 32, pk, spkb, sk, sskb);
        if (rc == 0) {
            uint8_t rpk[2592], rsk[4896];
            qv_pqc_sig_keygen(sw, dsa, seed, 32, rpk, spkb, rsk, sskb);
            expect(memcmp(pk, rpk, spkb) == 0 && memcmp(sk, rsk, sskb) == 0, "seeded sig keygen",
                   rc);
        }
        expect(rc == 0 || is_quac_error(rc), "sig keygen code", rc);
        qv_pqc_sig_keygen(sw, dsa, NULL, 0, pk2, spkb, sk2, sskb);
        rc = qv_pqc_sig_sign(card, dsa, sk2, sskb, seed, 64, seed, r % 256 > 200 ? 0 : r % 64,
                             r & 1, sig, sigb);
        expect(rc == 0 || is_quac_error(rc), "sign code", rc);
        if (rc != 0)
            expect(memcmp(sig, (uint8_t[64]){0}, 64) == 0, "failed sign output wiped", rc);
        qv_pqc_sig_sign(sw, dsa, sk2, sskb, seed, 64, NULL, 0, 0, sig, sigb);
        rc = qv_pqc_sig_verify(card, dsa, pk2, spkb, seed, 64, sig, sigb, NULL, 0);
        expect(rc == 0 || rc == PQC_ERR_VERIFY || is_quac_error(rc), "verify code", rc);
        rc == 0 ? ok++ : err++;
    }
    qv_pqc_backend_close(card);
    qv_pqc_backend_close(sw);
    printf("ok=%ld err=%ld failures=%d\n", ok, err, failures);
    return failures == 0 ? 0 : 1;
}
