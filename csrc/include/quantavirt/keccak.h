/* FIPS 202: the Keccak-f[1600] permutation, SHA3-256/512 and SHAKE128/256, with an
 * incremental sponge for the XOF use in ML-KEM and ML-DSA. */
#ifndef QUANTAVIRT_KECCAK_H
#define QUANTAVIRT_KECCAK_H

#include <stddef.h>
#include <stdint.h>

#define QV_SHA3_256_RATE 136
#define QV_SHA3_512_RATE 72
#define QV_SHAKE128_RATE 168
#define QV_SHAKE256_RATE 136

typedef struct qv_keccak {
    uint64_t state[25];
    unsigned int rate;     /* bytes absorbed or squeezed per permutation */
    unsigned int offset;   /* byte position inside the current block */
    uint8_t suffix;        /* domain separation bits: 0x06 SHA-3, 0x1F SHAKE */
    uint8_t squeezing;
} qv_keccak;

void qv_keccak_f1600(uint64_t state[25]);

/* Incremental sponge: init, absorb any number of times, then squeeze any number of times. */
void qv_keccak_init(qv_keccak *k, unsigned int rate, uint8_t suffix);
void qv_keccak_absorb(qv_keccak *k, const uint8_t *in, size_t len);
void qv_keccak_squeeze(qv_keccak *k, uint8_t *out, size_t len);
void qv_shake128_init(qv_keccak *k);
void qv_shake256_init(qv_keccak *k);
/* Wipe the state (it holds secrets when a secret was absorbed). */
void qv_keccak_wipe(qv_keccak *k);

void qv_sha3_256(uint8_t out[32], const uint8_t *in, size_t len);
void qv_sha3_512(uint8_t out[64], const uint8_t *in, size_t len);
void qv_shake128(uint8_t *out, size_t outlen, const uint8_t *in, size_t len);
void qv_shake256(uint8_t *out, size_t outlen, const uint8_t *in, size_t len);

#endif
