/* ML-KEM (FIPS 203) internals shared by the files under csrc/pqc/mlkem/ and csrc/pqc/mlkem.c.
 * Coefficients are int16_t modulo q = 3329; "reduced" means the centred Barrett range
 * [-(q-1)/2, (q-1)/2] unless a comment says otherwise. Nothing here branches on or indexes
 * memory with secret values. */
#ifndef QV_PQC_MLKEM_INTERNAL_H
#define QV_PQC_MLKEM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define MLKEM_N 256
#define MLKEM_Q 3329
#define MLKEM_KMAX 4
#define MLKEM_POLY_BYTES 384 /* ByteEncode12 of one polynomial */
#define MLKEM_SYM_BYTES 32

typedef struct mlkem_poly {
    int16_t c[MLKEM_N];
} mlkem_poly;

typedef struct mlkem_params {
    unsigned k, eta1, eta2, du, dv;
    size_t ek_bytes, dk_bytes, ct_bytes;
} mlkem_params;

/* ---- arithmetic and NTT (ntt.c) ---- */
#define MLKEM_QINV 62209u     /* q^-1 mod 2^16 */
#define MLKEM_BARRETT_V 20159 /* round(2^26 / q) */

/* a * 2^-16 mod q, |result| < q for |a| < q * 2^15. Relies on arithmetic right shift of
 * negative values (GCC and Clang guarantee it). */
static inline int16_t mlkem_montgomery_reduce(int32_t a)
{
    int16_t t = (int16_t)(uint16_t)((uint32_t)a * MLKEM_QINV);
    return (int16_t)((a - (int32_t)t * MLKEM_Q) >> 16);
}

/* a mod q in the centred range [-(q-1)/2, (q-1)/2], for any int16_t a. */
static inline int16_t mlkem_barrett_reduce(int16_t a)
{
    int16_t t = (int16_t)(((int32_t)MLKEM_BARRETT_V * a + (1 << 25)) >> 26);
    return (int16_t)(a - t * MLKEM_Q);
}

/* zeta^BitRev7(i) * 2^16 mod q and gamma_i = zeta^(2 BitRev7(i) + 1) * 2^16 mod q, centred. */
extern const int16_t mlkem_zetas[128];
extern const int16_t mlkem_gammas[128];

/* 1 when the AVX2 code paths serve ML-KEM (CPUID has AVX2 and they are not switched off). */
int mlkem_use_avx2(void);

/* NTT (FIPS 203 Algorithm 9) in place; input |c| < q, output reduced. */
void mlkem_ntt(mlkem_poly *p);
/* NTT^-1 (Algorithm 10) in place; input reduced, output times the Montgomery factor R = 2^16
 * (this cancels the R^-1 that mlkem_poly_basemul_acc leaves), |c| < q. */
void mlkem_invntt(mlkem_poly *p);
/* r = sum_i a[i] o b[i] (MultiplyNTTs, Algorithm 11) for i < k, times R^-1, reduced. */
void mlkem_polyvec_basemul_acc(mlkem_poly *r, const mlkem_poly *a, const mlkem_poly *b,
                               unsigned k);
/* The AVX2 versions (ntt_avx2.c); only call them when mlkem_use_avx2(). */
void mlkem_ntt_avx2(mlkem_poly *p);
void mlkem_invntt_avx2(mlkem_poly *p);
void mlkem_polyvec_basemul_acc_avx2(mlkem_poly *r, const mlkem_poly *a, const mlkem_poly *b,
                                    unsigned k);
/* 1 when the AVX-512 (F + BW) arithmetic serves ML-KEM: the CPU has it and the code path is
 * "avx512" (the 8-lane Keccak one). The AVX-512 versions (ntt_avx512.c) give the same
 * results as the AVX2 ones; only call them when mlkem_use_avx512(). */
int mlkem_use_avx512(void);
void mlkem_ntt_avx512(mlkem_poly *p);
void mlkem_invntt_avx512(mlkem_poly *p);
void mlkem_polyvec_basemul_acc_avx512(mlkem_poly *r, const mlkem_poly *a, const mlkem_poly *b,
                                      unsigned k);
/* Multiply every coefficient by R (undo a basemul R^-1 without an NTT^-1), |result| < q. */
void mlkem_poly_tomont(mlkem_poly *p);
void mlkem_poly_reduce(mlkem_poly *p);
void mlkem_poly_add(mlkem_poly *r, const mlkem_poly *a, const mlkem_poly *b);
void mlkem_poly_sub(mlkem_poly *r, const mlkem_poly *a, const mlkem_poly *b);

/* ---- encodings and sampling (poly.c) ---- */
/* ByteEncode12 of a reduced polynomial (coefficients mapped to [0, q) first). */
void mlkem_poly_encode12(uint8_t out[MLKEM_POLY_BYTES], const mlkem_poly *p);
/* ByteDecode12 with the mod-q reduction FIPS 203 prescribes; returns a nonzero mask when
 * some 12-bit value was >= q (what the encapsulation-key modulus check looks for). */
uint16_t mlkem_poly_decode12(mlkem_poly *p, const uint8_t in[MLKEM_POLY_BYTES]);
/* ByteEncode_d(Compress_d(p)) and Decompress_d(ByteDecode_d(in)) for d in {4,5,10,11}. */
void mlkem_poly_compress(uint8_t *out, const mlkem_poly *p, unsigned d);
void mlkem_poly_decompress(mlkem_poly *p, const uint8_t *in, unsigned d);
/* Decompress_1(ByteDecode_1(m)) and ByteEncode_1(Compress_1(p)). */
void mlkem_poly_from_msg(mlkem_poly *p, const uint8_t m[32]);
void mlkem_poly_to_msg(uint8_t m[32], const mlkem_poly *p);
/* AVX2 helpers (poly_avx2.c), only when mlkem_use_avx2(): coefficients to [0, q); the
 * Compress_d values (d <= 11) before packing; Decompress_d of unpacked values. */
void mlkem_poly_to_unsigned_avx2(uint16_t out[MLKEM_N], const mlkem_poly *p);
void mlkem_poly_compress_values_avx2(uint16_t out[MLKEM_N], const mlkem_poly *p, unsigned d);
void mlkem_poly_decompress_values_avx2(mlkem_poly *p, const uint16_t in[MLKEM_N], unsigned d);
/* The same Compress_d values, AVX-512 (poly_avx512.c), only when mlkem_use_avx512(). */
void mlkem_poly_compress_values_avx512(uint16_t out[MLKEM_N], const mlkem_poly *p, unsigned d);
/* ByteDecode12 (returns 0xffff when a value was >= q, else 0) and ByteEncode12, AVX2. */
uint16_t mlkem_poly_decode12_avx2(mlkem_poly *p, const uint8_t in[MLKEM_POLY_BYTES]);
void mlkem_poly_encode12_avx2(uint8_t out[MLKEM_POLY_BYTES], const mlkem_poly *p);
/* SamplePolyCBD_2 from 128 bytes, AVX2. */
void mlkem_poly_cbd2_avx2(mlkem_poly *p, const uint8_t buf[128]);
/* ByteEncode_10 / ByteDecode_10 of 256 values, AVX2. */
void mlkem_pack10_avx2(uint8_t out[320], const uint16_t v[MLKEM_N]);
void mlkem_unpack10_avx2(uint16_t v[MLKEM_N], const uint8_t in[320]);
/* SamplePolyCBD_eta (Algorithm 8) from 64*eta bytes, eta in {2, 3}. */
void mlkem_poly_cbd(mlkem_poly *p, const uint8_t *buf, unsigned eta);
/* SampleNTT (Algorithm 7) rejection step: fill p->c[ctr..] from buf (public data only).
 * Returns the new count. */
unsigned mlkem_rej_uniform(int16_t *c, unsigned ctr, const uint8_t *buf, size_t len);
/* Its AVX2 bulk (rej_avx2.c): returns count | (bytes consumed << 16); len < 2^15. */
unsigned mlkem_rej_uniform_avx2(int16_t *c, unsigned ctr, const uint8_t *buf, size_t len);

/* ---- hashing (symmetric.c): H and G alone; J, PRF and XOF run as 4-lane jobs ---- */
void mlkem_hash_h(uint8_t out[32], const uint8_t *in, size_t len);
void mlkem_hash_g(uint8_t out[64], const uint8_t *in, size_t len);
/* A Keccak job for the 4-lane runner: a sponge (rate 136 or 168, domain suffix) over
 * in || in2, either hashing to out[0..outlen) or, with poly set, SampleNTT into poly. */
typedef struct mlkem_job {
    unsigned rate;
    uint8_t suffix;
    const uint8_t *in, *in2;
    size_t inlen, in2len;
    uint8_t *out;
    size_t outlen;
    mlkem_poly *poly;
    unsigned ctr; /* SampleNTT progress */
} mlkem_job;

/* Runs all jobs on the 4-lane permutation, each lane taking the next job as soon as its
 * current one ends, so lanes stay busy even when jobs differ in length. Which job runs when
 * depends on public data only (lengths and SampleNTT's rejections on the public rho). */
void mlkem_run_jobs(mlkem_job *jobs, unsigned njobs);
void mlkem_job_sample_ntt(mlkem_job *j, mlkem_poly *p, const uint8_t seed34[34]);
void mlkem_job_hash(mlkem_job *j, unsigned rate, uint8_t suffix, const uint8_t *in, size_t inlen,
                    const uint8_t *in2, size_t in2len, uint8_t *out, size_t outlen);

/* Declassification for the constant-time check (tests/c/test_mlkem_ct.c): built with
 * -DQV_CT_CHECK, values that are secret-derived but public by design (rho, which is part of
 * the public key) are marked defined for valgrind's memcheck, which otherwise flags every
 * branch or index on them. A no-op in normal builds. */
#if defined(QV_CT_CHECK) && defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MLKEM_DECLASSIFY(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#endif
#endif
#ifndef MLKEM_DECLASSIFY
#define MLKEM_DECLASSIFY(p, n) ((void)(p), (void)(n))
#endif

/* Constant-time helpers. */
/* 0 when equal, 0xff otherwise, without branching on the contents. */
uint8_t mlkem_ct_differ(const uint8_t *a, const uint8_t *b, size_t len);
/* r = mask ? b : r (mask is 0x00 or 0xff), branch-free. */
void mlkem_ct_cmov(uint8_t *r, const uint8_t *b, size_t len, uint8_t mask);

#endif
