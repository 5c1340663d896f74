/* The FIPS 203 hash functions (section 4.1) on the fast Keccak permutations of
 * csrc/pqc/keccak_x4.c: one scalar sponge for H, G and J when they run alone, and the 4-lane
 * job runner for everything that can run side by side (SampleNTT for the matrix entries, the
 * PRF noise, H(ek) and J beside them). */
#include <string.h>

#include "core/wipe.h"
#include "pqc/keccak_x4.h"
#include "pqc/mlkem/mlkem_internal.h"

#define SHAKE128_RATE 168
#define SHAKE256_RATE 136
#define SHA3_256_RATE 136
#define SHA3_512_RATE 72

/* One Keccak sponge over the concatenation a || b, output outlen bytes (FIPS 202 pad10*1
 * with the domain suffix). */
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
                s[pos / 8] ^= qv_load64_le(in + i);
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

/* ---- the 4- or 8-lane job runner ---- */

enum { LANE_IDLE, LANE_ABSORB, LANE_SQUEEZE };

/* Bytes [off, off + n) of the job's input in || in2 into dst. */
static void job_input(const mlkem_job *j, size_t off, size_t n, uint8_t *dst)
{
    if (off < j->inlen) {
        size_t first = j->inlen - off < n ? j->inlen - off : n;
        memcpy(dst, j->in + off, first);
        dst += first;
        off += first;
        n -= first;
    }
    if (n > 0)
        memcpy(dst, j->in2 + (off - j->inlen), n);
}

/* Byte p and the little-endian word at p of the job's input in || in2. */
static inline uint8_t job_byte(const mlkem_job *j, size_t p)
{
    return p < j->inlen ? j->in[p] : j->in2[p - j->inlen];
}

static inline uint64_t job_word(const mlkem_job *j, size_t p)
{
    if (p + 8 <= j->inlen)
        return qv_load64_le(j->in + p);
    if (p >= j->inlen)
        return qv_load64_le(j->in2 + (p - j->inlen));
    uint8_t t[8]; /* straddles the two inputs */
    job_input(j, p, 8, t);
    return qv_load64_le(t);
}

/* The state of up to eight sponges: word i of lane l at w[i * lanes + l], which is the
 * layout of both qv_keccakx4 (lanes = 4) and qv_keccakx8 (lanes = 8). */
typedef union {
    qv_keccakx4 x4;
    qv_keccakx8 x8;
} lanes_state;

/* Compiled once per lane count (a constant here), so lane words are at fixed strides. */
__attribute__((always_inline)) static inline void run_jobs_lanes(mlkem_job *jobs, unsigned njobs,
                                                                 const unsigned lanes)
{
    lanes_state st;
    uint64_t *w = &st.x8.s[0][0];
    uint8_t block[200];
    int phase[8];
    mlkem_job *job[8];
    size_t offset[8], done[8];
    unsigned next = 0;

    for (unsigned l = 0; l < lanes; l++)
        phase[l] = LANE_IDLE;
    for (;;) {
        int active = 0;
        for (unsigned l = 0; l < lanes; l++) {
            if (phase[l] == LANE_IDLE && next < njobs) { /* a fresh sponge in this lane */
                job[l] = &jobs[next++];
                for (int i = 0; i < 25; i++)
                    w[i * lanes + l] = 0;
                offset[l] = done[l] = 0;
                phase[l] = LANE_ABSORB;
            }
            if (phase[l] == LANE_IDLE)
                continue;
            active = 1;
            if (phase[l] == LANE_ABSORB) {
                const mlkem_job *j = job[l];
                size_t total = j->inlen + j->in2len, left = total - offset[l];
                const int in_first = offset[l] + j->rate <= j->inlen;
                if (left >= j->rate && (in_first || offset[l] >= j->inlen)) {
                    /* a whole block straight from one of the two inputs */
                    const uint8_t *p =
                        in_first ? j->in + offset[l] : j->in2 + (offset[l] - j->inlen);
                    for (unsigned i = 0; i < j->rate / 8; i++)
                        w[i * lanes + l] ^= qv_load64_le(p + 8 * i);
                    offset[l] += j->rate;
                    continue;
                }
                size_t n = left < j->rate ? left : j->rate;
                if (n < j->rate) {
                    /* Last block: whole words straight from the input, the rest and the
                     * domain suffix assembled in a register, the final pad bit into the last
                     * word of the rate (no copy through a buffer). */
                    size_t i = 0;
                    for (; i + 8 <= n; i += 8)
                        w[(i / 8) * lanes + l] ^= job_word(j, offset[l] + i);
                    uint64_t v = 0;
                    for (size_t k = 0; i + k < n; k++)
                        v |= (uint64_t)job_byte(j, offset[l] + i + k) << (8 * k);
                    w[(i / 8) * lanes + l] ^= v ^ ((uint64_t)j->suffix << (8 * (n - i)));
                    w[(j->rate / 8 - 1) * lanes + l] ^= 0x80ULL << 56;
                    offset[l] += n;
                    phase[l] = LANE_SQUEEZE;
                    continue;
                }
                job_input(j, offset[l], n, block); /* a whole block across in and in2 */
                offset[l] += n;
                for (unsigned i = 0; i < j->rate / 8; i++)
                    w[i * lanes + l] ^= qv_load64_le(block + 8 * i);
            }
        }
        if (!active)
            break;
        if (lanes == 8)
            qv_keccak_f1600_x8(&st.x8);
        else
            qv_keccak_f1600_x4(&st.x4);
        for (unsigned l = 0; l < lanes; l++) {
            if (phase[l] != LANE_SQUEEZE)
                continue;
            mlkem_job *j = job[l];
            if (j->poly != NULL) {
                for (unsigned i = 0; i < j->rate / 8; i++)
                    qv_store64_le(block + 8 * i, w[i * lanes + l]); /* SampleNTT: until 256 coefficients are accepted */
                j->ctr = mlkem_rej_uniform(j->poly->c, j->ctr, block, j->rate);
                if (j->ctr >= MLKEM_N)
                    phase[l] = LANE_IDLE;
            } else {
                size_t n = j->outlen - done[l] < j->rate ? j->outlen - done[l] : j->rate;
                for (unsigned i = 0; i < (n + 7) / 8; i++)
                    qv_store64_le(block + 8 * i, w[i * lanes + l]);
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

void mlkem_run_jobs(mlkem_job *jobs, unsigned njobs)
{
    if (qv_keccakx8_available())
        run_jobs_lanes(jobs, njobs, 8);
    else
        run_jobs_lanes(jobs, njobs, 4);
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
