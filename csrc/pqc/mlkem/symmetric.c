/* The FIPS 203 hash functions (section 4.1) H, G, J, PRF and the XOF-based matrix expansion,
 * on the fast Keccak permutations of csrc/pqc/keccak_x4.c: one sponge for the single-input
 * hashes, four sponges side by side for SampleNTT and PRF (four matrix entries or four noise
 * polynomials per permutation call). */
#include <string.h>

#include "core/wipe.h"
#include "pqc/keccak_x4.h"
#include "pqc/mlkem/mlkem_internal.h"

#define SHAKE128_RATE 168
#define SHAKE256_RATE 136
#define SHA3_256_RATE 136
#define SHA3_512_RATE 72

/* One Keccak sponge over the concatenation a || b, output outlen bytes (FIPS 202 pad10*1
 * with the domain suffix). Lanes are built byte by byte, so any host byte order works. */
static inline uint64_t load64_le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void sponge(unsigned rate, uint8_t suffix, const uint8_t *a, size_t alen, const uint8_t *b,
                   size_t blen, uint8_t *out, size_t outlen)
{
    uint64_t s[25] = {0};
    unsigned pos = 0;
    for (int part = 0; part < 2; part++) {
        const uint8_t *in = part == 0 ? a : b;
        size_t len = part == 0 ? alen : blen;
        size_t i = 0;
        while (i < len) {
            if (pos % 8 == 0 && len - i >= 8) { /* whole lanes while aligned */
                s[pos / 8] ^= load64_le(in + i);
                i += 8;
                pos += 8;
            } else {
                s[pos / 8] ^= (uint64_t)in[i++] << (8 * (pos % 8));
                pos++;
            }
            if (pos == rate) {
                qv_keccak_f1600_fast(s);
                pos = 0;
            }
        }
    }
    s[pos / 8] ^= (uint64_t)suffix << (8 * (pos % 8));
    s[(rate - 1) / 8] ^= 0x80ULL << (8 * ((rate - 1) % 8));
    for (size_t o = 0; o < outlen; o++) {
        if (o % rate == 0)
            qv_keccak_f1600_fast(s);
        out[o] = (uint8_t)(s[(o % rate) / 8] >> (8 * (o % 8)));
    }
    qv_wipe(s, sizeof s);
}

void mlkem_hash_h(uint8_t out[32], const uint8_t *in, size_t len)
{
    sponge(SHA3_256_RATE, 0x06, in, len, NULL, 0, out, 32);
}

void mlkem_hash_g(uint8_t out[64], const uint8_t *in, size_t len)
{
    sponge(SHA3_512_RATE, 0x06, in, len, NULL, 0, out, 64);
}

void mlkem_hash_j(uint8_t out[32], const uint8_t z[32], const uint8_t *c, size_t clen)
{
    sponge(SHAKE256_RATE, 0x1F, z, 32, c, clen, out, 32);
}

void mlkem_prf(uint8_t *out, size_t outlen, const uint8_t s[32], uint8_t b)
{
    sponge(SHAKE256_RATE, 0x1F, s, 32, &b, 1, out, outlen);
}

void mlkem_prf_x4(uint8_t *const out[4], size_t outlen, const uint8_t s[32],
                  const uint8_t nonce[4])
{
    /* outlen = 64 * eta <= 192 bytes: two SHAKE256 blocks at most. */
    uint8_t in[4][33], buf[4][2 * SHAKE256_RATE];
    const uint8_t *ins[4] = {in[0], in[1], in[2], in[3]};
    uint8_t *bufs[4] = {buf[0], buf[1], buf[2], buf[3]};
    qv_keccakx4 st;
    for (int l = 0; l < 4; l++) {
        memcpy(in[l], s, 32);
        in[l][32] = nonce[l];
    }
    qv_keccakx4_absorb_once(&st, SHAKE256_RATE, 0x1F, ins, 33);
    qv_keccakx4_squeeze_blocks(&st, SHAKE256_RATE, bufs,
                               (outlen + SHAKE256_RATE - 1) / SHAKE256_RATE);
    for (int l = 0; l < 4; l++)
        memcpy(out[l], buf[l], outlen);
    qv_wipe(in, sizeof in);
    qv_wipe(buf, sizeof buf);
    qv_wipe(&st, sizeof st);
}

/* SampleNTT (Algorithm 7) for one entry: XOF = SHAKE128(rho || x || y). */
static void sample_ntt(mlkem_poly *p, const uint8_t rho[32], uint8_t x, uint8_t y)
{
    uint64_t s[25] = {0};
    uint8_t seed[34] = {0}, buf[SHAKE128_RATE];
    unsigned ctr = 0;
    memcpy(seed, rho, 32);
    seed[32] = x;
    seed[33] = y;
    for (unsigned i = 0; i < sizeof seed; i++)
        s[i / 8] ^= (uint64_t)seed[i] << (8 * (i % 8));
    s[34 / 8] ^= 0x1FULL << (8 * (34 % 8));
    s[(SHAKE128_RATE - 1) / 8] ^= 0x80ULL << (8 * ((SHAKE128_RATE - 1) % 8));
    while (ctr < MLKEM_N) {
        qv_keccak_f1600_fast(s);
        for (unsigned i = 0; i < SHAKE128_RATE; i++)
            buf[i] = (uint8_t)(s[i / 8] >> (8 * (i % 8)));
        ctr = mlkem_rej_uniform(p->c, ctr, buf, SHAKE128_RATE);
    }
}

/* SampleNTT for four entries at once; lanes whose seed repeats another are just recomputed. */
static void sample_ntt_x4(mlkem_poly *const p[4], const uint8_t rho[32], const uint8_t xy[4][2])
{
    uint8_t seed[4][34], buf[4][3 * SHAKE128_RATE];
    const uint8_t *seeds[4] = {seed[0], seed[1], seed[2], seed[3]};
    uint8_t *bufs[4] = {buf[0], buf[1], buf[2], buf[3]};
    unsigned ctr[4];
    qv_keccakx4 st;
    for (int l = 0; l < 4; l++) {
        memcpy(seed[l], rho, 32);
        seed[l][32] = xy[l][0];
        seed[l][33] = xy[l][1];
    }
    qv_keccakx4_absorb_once(&st, SHAKE128_RATE, 0x1F, seeds, 34);
    qv_keccakx4_squeeze_blocks(&st, SHAKE128_RATE, bufs, 3);
    for (int l = 0; l < 4; l++)
        ctr[l] = mlkem_rej_uniform(p[l]->c, 0, buf[l], sizeof buf[l]);
    /* Rarely 3 blocks are not enough: squeeze further blocks for all lanes (public data). */
    while (ctr[0] < MLKEM_N || ctr[1] < MLKEM_N || ctr[2] < MLKEM_N || ctr[3] < MLKEM_N) {
        qv_keccakx4_squeeze_blocks(&st, SHAKE128_RATE, bufs, 1);
        for (int l = 0; l < 4; l++)
            ctr[l] = mlkem_rej_uniform(p[l]->c, ctr[l], buf[l], SHAKE128_RATE);
    }
}

void mlkem_gen_matrix(mlkem_poly *a, const uint8_t rho[32], unsigned k, int transposed)
{
    const unsigned total = k * k;
    unsigned e = 0;
    for (; e + 4 <= total; e += 4) {
        mlkem_poly *p[4];
        uint8_t xy[4][2];
        for (unsigned l = 0; l < 4; l++) {
            unsigned i = (e + l) / k, j = (e + l) % k;
            p[l] = &a[e + l];
            xy[l][0] = (uint8_t)(transposed ? i : j);
            xy[l][1] = (uint8_t)(transposed ? j : i);
        }
        sample_ntt_x4(p, rho, xy);
    }
    for (; e < total; e++) { /* k = 3 leaves one entry */
        unsigned i = e / k, j = e % k;
        sample_ntt(&a[e], rho, (uint8_t)(transposed ? i : j), (uint8_t)(transposed ? j : i));
    }
}

/* ---- the 4-lane job runner ---- */

enum { LANE_IDLE, LANE_ABSORB, LANE_SQUEEZE };

/* Bytes [off, off + n) of the job's input in || in2 into dst. */
static void job_input(const mlkem_job *j, size_t off, size_t n, uint8_t *dst)
{
    for (size_t i = 0; i < n; i++, off++)
        dst[i] = off < j->inlen ? j->in[off] : j->in2[off - j->inlen];
}

void mlkem_run_jobs(mlkem_job *jobs, unsigned njobs)
{
    qv_keccakx4 st;
    uint8_t block[200];
    int phase[4] = {LANE_IDLE, LANE_IDLE, LANE_IDLE, LANE_IDLE};
    mlkem_job *job[4] = {NULL, NULL, NULL, NULL};
    size_t offset[4] = {0}, done[4] = {0};
    unsigned next = 0;

    for (;;) {
        int active = 0;
        for (int l = 0; l < 4; l++) {
            if (phase[l] == LANE_IDLE && next < njobs) { /* a fresh sponge in this lane */
                job[l] = &jobs[next++];
                for (int i = 0; i < 25; i++)
                    st.s[i][l] = 0;
                offset[l] = done[l] = 0;
                phase[l] = LANE_ABSORB;
            }
            if (phase[l] == LANE_IDLE)
                continue;
            active = 1;
            if (phase[l] == LANE_ABSORB) {
                const mlkem_job *j = job[l];
                size_t total = j->inlen + j->in2len, left = total - offset[l];
                size_t n = left < j->rate ? left : j->rate;
                memset(block, 0, j->rate);
                job_input(j, offset[l], n, block);
                offset[l] += n;
                if (n < j->rate) { /* last block: pad10*1 with the domain suffix */
                    block[n] ^= j->suffix;
                    block[j->rate - 1] ^= 0x80;
                    phase[l] = LANE_SQUEEZE;
                }
                for (unsigned i = 0; i < j->rate / 8; i++)
                    st.s[i][l] ^= load64_le(block + 8 * i);
            }
        }
        if (!active)
            break;
        qv_keccak_f1600_x4(&st);
        for (int l = 0; l < 4; l++) {
            if (phase[l] != LANE_SQUEEZE)
                continue;
            mlkem_job *j = job[l];
            for (unsigned i = 0; i < j->rate / 8; i++)
                for (unsigned b = 0; b < 8; b++)
                    block[8 * i + b] = (uint8_t)(st.s[i][l] >> (8 * b));
            if (j->poly != NULL) { /* SampleNTT: until 256 coefficients are accepted */
                j->ctr = mlkem_rej_uniform(j->poly->c, j->ctr, block, j->rate);
                if (j->ctr >= MLKEM_N)
                    phase[l] = LANE_IDLE;
            } else {
                size_t n = j->outlen - done[l] < j->rate ? j->outlen - done[l] : j->rate;
                memcpy(j->out + done[l], block, n);
                done[l] += n;
                if (done[l] == j->outlen)
                    phase[l] = LANE_IDLE;
            }
        }
    }
    qv_wipe(&st, sizeof st);
    qv_wipe(block, sizeof block);
}

void mlkem_job_sample_ntt(mlkem_job *j, mlkem_poly *p, const uint8_t seed34[34])
{
    memset(j, 0, sizeof *j);
    j->rate = SHAKE128_RATE;
    j->suffix = 0x1F;
    j->in = seed34;
    j->inlen = 34;
    j->poly = p;
}

void mlkem_job_hash(mlkem_job *j, unsigned rate, uint8_t suffix, const uint8_t *in, size_t inlen,
                    const uint8_t *in2, size_t in2len, uint8_t *out, size_t outlen)
{
    memset(j, 0, sizeof *j);
    j->rate = rate;
    j->suffix = suffix;
    j->in = in;
    j->inlen = inlen;
    j->in2 = in2;
    j->in2len = in2len;
    j->out = out;
    j->outlen = outlen;
}
