/* The FIPS 203 hash functions (section 4.1) on top of the FIPS 202 sponge, and the matrix
 * expansion A_hat = SampleNTT(rho || j || i). */
#include <string.h>

#include "core/wipe.h"
#include "pqc/mlkem/mlkem_internal.h"
#include "quantavirt/keccak.h"

void mlkem_hash_h(uint8_t out[32], const uint8_t *in, size_t len)
{
    qv_sha3_256(out, in, len);
}

void mlkem_hash_g(uint8_t out[64], const uint8_t *in, size_t len)
{
    qv_sha3_512(out, in, len);
}

void mlkem_hash_j(uint8_t out[32], const uint8_t z[32], const uint8_t *c, size_t clen)
{
    qv_keccak k;
    qv_shake256_init(&k);
    qv_keccak_absorb(&k, z, 32);
    qv_keccak_absorb(&k, c, clen);
    qv_keccak_squeeze(&k, out, 32);
    qv_keccak_wipe(&k);
}

void mlkem_prf(uint8_t *out, size_t outlen, const uint8_t s[32], uint8_t b)
{
    uint8_t in[33];
    memcpy(in, s, 32);
    in[32] = b;
    qv_shake256(out, outlen, in, sizeof in);
    qv_wipe(in, sizeof in);
}

/* SampleNTT (Algorithm 7): 3 squeezed blocks are enough in almost every case; further
 * blocks only when the rejection rate was unlucky. */
static void sample_ntt(mlkem_poly *p, const uint8_t rho[32], uint8_t x, uint8_t y)
{
    uint8_t seed[34], buf[3 * QV_SHAKE128_RATE];
    qv_keccak k;
    memcpy(seed, rho, 32);
    seed[32] = x;
    seed[33] = y;
    qv_shake128_init(&k);
    qv_keccak_absorb(&k, seed, sizeof seed);
    qv_keccak_squeeze(&k, buf, sizeof buf);
    unsigned ctr = mlkem_rej_uniform(p->c, 0, buf, sizeof buf);
    while (ctr < MLKEM_N) {
        qv_keccak_squeeze(&k, buf, QV_SHAKE128_RATE);
        ctr = mlkem_rej_uniform(p->c, ctr, buf, QV_SHAKE128_RATE);
    }
}

void mlkem_gen_matrix(mlkem_poly *a, const uint8_t rho[32], unsigned k, int transposed)
{
    for (unsigned i = 0; i < k; i++)
        for (unsigned j = 0; j < k; j++)
            sample_ntt(&a[i * k + j], rho, (uint8_t)(transposed ? i : j),
                       (uint8_t)(transposed ? j : i));
}
