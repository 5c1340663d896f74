/* ML-KEM (FIPS 203) encodings and samplers: ByteEncode/ByteDecode (Algorithms 5 and 6),
 * Compress/Decompress (section 4.2.1), SamplePolyCBD (Algorithm 8), the rejection step of
 * SampleNTT (Algorithm 7) and constant-time byte compare/select. Only SampleNTT branches on
 * data, and its input (the XOF stream of the public seed rho) is public. */
#include <string.h>

#include "pqc/mlkem/mlkem_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define MLKEM_AVX2_BUILT 1
#endif

/* Reduced (or any |a| < 2^15) coefficient -> its representative in [0, q), branch-free. */
static inline uint16_t to_unsigned(int16_t a)
{
    a = mlkem_barrett_reduce(a);
    a = (int16_t)(a + ((a >> 15) & MLKEM_Q));
    return (uint16_t)a;
}

void mlkem_poly_encode12(uint8_t out[MLKEM_POLY_BYTES], const mlkem_poly *p)
{
    uint16_t v[MLKEM_N];
#ifdef MLKEM_AVX2_BUILT
    if (mlkem_use_avx2()) {
        mlkem_poly_encode12_avx2(out, p);
        return;
    }
#endif
    for (unsigned i = 0; i < MLKEM_N; i++)
        v[i] = to_unsigned(p->c[i]);
    for (unsigned i = 0; i < MLKEM_N / 2; i++) {
        uint16_t t0 = v[2 * i], t1 = v[2 * i + 1];
        out[3 * i] = (uint8_t)t0;
        out[3 * i + 1] = (uint8_t)((t0 >> 8) | (t1 << 4));
        out[3 * i + 2] = (uint8_t)(t1 >> 4);
    }
}

/* 0xffff when t >= q, else 0, for 0 <= t < 2^12. */
static inline uint16_t ge_q_mask(uint16_t t)
{
    return (uint16_t)(((int32_t)(MLKEM_Q - 1) - (int32_t)t) >> 16);
}

uint16_t mlkem_poly_decode12(mlkem_poly *p, const uint8_t in[MLKEM_POLY_BYTES])
{
    uint16_t bad = 0;
#ifdef MLKEM_AVX2_BUILT
    if (mlkem_use_avx2())
        return mlkem_poly_decode12_avx2(p, in);
#endif
    for (unsigned i = 0; i < MLKEM_N / 2; i++) {
        uint16_t t0 = (uint16_t)(in[3 * i] | ((in[3 * i + 1] & 0x0f) << 8));
        uint16_t t1 = (uint16_t)((in[3 * i + 1] >> 4) | (in[3 * i + 2] << 4));
        uint16_t m0 = ge_q_mask(t0), m1 = ge_q_mask(t1);
        bad |= m0 | m1;
        p->c[2 * i] = (int16_t)(t0 - (m0 & MLKEM_Q));
        p->c[2 * i + 1] = (int16_t)(t1 - (m1 & MLKEM_Q));
    }
    return bad;
}

/* Compress_d(x) = round(2^d x / q) mod 2^d for x in [0, q): the division by q is a multiply
 * by ceil(2^40 / q) and a shift, exact for every x and d <= 11 (checked exhaustively). */
static inline uint32_t compress(uint16_t x, unsigned d)
{
    uint64_t t = ((uint64_t)x << d) + MLKEM_Q / 2;
    t = (t * 330282857u) >> 40;
    return (uint32_t)t & ((1u << d) - 1);
}

static inline int16_t decompress(uint32_t y, unsigned d)
{
    return (int16_t)((y * MLKEM_Q + (1u << (d - 1))) >> d);
}

/* Compress_d of every coefficient (not packed yet), on the widest SIMD the CPU allows. */
static void compress_values(uint16_t v[MLKEM_N], const mlkem_poly *p, unsigned d)
{
#ifdef MLKEM_AVX2_BUILT
    if (mlkem_use_avx512()) {
        mlkem_poly_compress_values_avx512(v, p, d);
        return;
    }
    if (mlkem_use_avx2()) {
        mlkem_poly_compress_values_avx2(v, p, d);
        return;
    }
#endif
    for (unsigned i = 0; i < MLKEM_N; i++)
        v[i] = (uint16_t)compress(to_unsigned(p->c[i]), d);
}

/* Bit packing of 256 d-bit values, least significant bit first (ByteEncode_d): groups of 8
 * values are exactly d bytes (4 values d / 2 bytes for even d). Always inlined and called with
 * a constant d, so each width gets straight-line code (a 128-bit accumulator for d = 11). */
#if defined(__SIZEOF_INT128__)
typedef unsigned __int128 pack_acc;
#else
typedef uint64_t pack_acc; /* only d <= 8 fits; wider d take the bytewise loop below */
#endif

__attribute__((always_inline)) static inline void pack_bits(uint8_t *out, const uint16_t *v,
                                                            unsigned d)
{
    if (d % 2 == 0) { /* 4 values = d / 2 bytes <= 6: a 64-bit accumulator is enough */
        for (unsigned g = 0; g < MLKEM_N / 4; g++) {
            uint64_t acc = 0;
            for (unsigned j = 0; j < 4; j++)
                acc |= (uint64_t)v[4 * g + j] << (d * j);
            for (unsigned b = 0; b < d / 2; b++)
                out[d / 2 * g + b] = (uint8_t)(acc >> (8 * b));
        }
        return;
    }
    if (8 * d <= 8 * sizeof(pack_acc)) {
        for (unsigned g = 0; g < MLKEM_N / 8; g++) {
            pack_acc acc = 0;
            for (unsigned j = 0; j < 8; j++)
                acc |= (pack_acc)v[8 * g + j] << (d * j);
            for (unsigned b = 0; b < d; b++)
                out[d * g + b] = (uint8_t)(acc >> (8 * b));
        }
        return;
    }
    uint32_t acc = 0;
    unsigned nbits = 0;
    size_t o = 0;
    for (unsigned i = 0; i < MLKEM_N; i++) {
        acc |= (uint32_t)v[i] << nbits;
        for (nbits += d; nbits >= 8; nbits -= 8, acc >>= 8)
            out[o++] = (uint8_t)acc;
    }
}

__attribute__((always_inline)) static inline void unpack_bits(uint16_t *v, const uint8_t *in,
                                                              unsigned d)
{
    if (d % 2 == 0) {
        for (unsigned g = 0; g < MLKEM_N / 4; g++) {
            uint64_t acc = 0;
            for (unsigned b = 0; b < d / 2; b++)
                acc |= (uint64_t)in[d / 2 * g + b] << (8 * b);
            for (unsigned j = 0; j < 4; j++)
                v[4 * g + j] = (uint16_t)((acc >> (d * j)) & ((1u << d) - 1));
        }
        return;
    }
    if (8 * d <= 8 * sizeof(pack_acc)) {
        for (unsigned g = 0; g < MLKEM_N / 8; g++) {
            pack_acc acc = 0;
            for (unsigned b = 0; b < d; b++)
                acc |= (pack_acc)in[d * g + b] << (8 * b);
            for (unsigned j = 0; j < 8; j++)
                v[8 * g + j] = (uint16_t)((acc >> (d * j)) & ((1u << d) - 1));
        }
        return;
    }
    uint32_t acc = 0;
    unsigned nbits = 0;
    size_t pos = 0;
    for (unsigned i = 0; i < MLKEM_N; i++) {
        for (; nbits < d; nbits += 8)
            acc |= (uint32_t)in[pos++] << nbits;
        v[i] = (uint16_t)(acc & ((1u << d) - 1));
        acc >>= d;
        nbits -= d;
    }
}

__attribute__((always_inline)) static inline void compress_d(uint8_t *out, const mlkem_poly *p,
                                                             unsigned d)
{
    uint16_t v[MLKEM_N];
    compress_values(v, p, d);
#ifdef MLKEM_AVX2_BUILT
    if (d == 10 && mlkem_use_avx2()) {
        mlkem_pack10_avx2(out, v);
        return;
    }
#endif
    pack_bits(out, v, d);
}

__attribute__((always_inline)) static inline void decompress_d(mlkem_poly *p, const uint8_t *in,
                                                               unsigned d)
{
    uint16_t v[MLKEM_N];
#ifdef MLKEM_AVX2_BUILT
    if (d == 10 && mlkem_use_avx2())
        mlkem_unpack10_avx2(v, in);
    else
#endif
        unpack_bits(v, in, d);
#ifdef MLKEM_AVX2_BUILT
    if (mlkem_use_avx2()) {
        mlkem_poly_decompress_values_avx2(p, v, d);
        return;
    }
#endif
    for (unsigned i = 0; i < MLKEM_N; i++)
        p->c[i] = decompress(v[i], d);
}

void mlkem_poly_compress(uint8_t *out, const mlkem_poly *p, unsigned d)
{
    switch (d) { /* the FIPS 203 widths: du in {10, 11}, dv in {4, 5} */
    case 4: compress_d(out, p, 4); break;
    case 5: compress_d(out, p, 5); break;
    case 10: compress_d(out, p, 10); break;
    default: compress_d(out, p, 11); break;
    }
}

void mlkem_poly_decompress(mlkem_poly *p, const uint8_t *in, unsigned d)
{
    switch (d) {
    case 4: decompress_d(p, in, 4); break;
    case 5: decompress_d(p, in, 5); break;
    case 10: decompress_d(p, in, 10); break;
    default: decompress_d(p, in, 11); break;
    }
}

void mlkem_poly_from_msg(mlkem_poly *p, const uint8_t m[32])
{
    /* Decompress_1(b) = b * round(q/2) = b * 1665, through a mask instead of a branch. */
    for (unsigned i = 0; i < 32; i++)
        for (unsigned j = 0; j < 8; j++)
            p->c[8 * i + j] = (int16_t)(-(int16_t)((m[i] >> j) & 1) & ((MLKEM_Q + 1) / 2));
}

void mlkem_poly_to_msg(uint8_t m[32], const mlkem_poly *p)
{
    uint16_t v[MLKEM_N];
    compress_values(v, p, 1);
    for (unsigned i = 0; i < 32; i++) {
        uint8_t byte = 0;
        for (unsigned j = 0; j < 8; j++)
            byte |= (uint8_t)(v[8 * i + j] << j);
        m[i] = byte;
    }
}

static inline uint32_t load24_le(const uint8_t *b)
{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16);
}

static inline uint32_t load32_le(const uint8_t *b)
{
    return load24_le(b) | ((uint32_t)b[3] << 24);
}

void mlkem_poly_cbd(mlkem_poly *p, const uint8_t *buf, unsigned eta)
{
#ifdef MLKEM_AVX2_BUILT
    if (eta == 2 && mlkem_use_avx2()) {
        mlkem_poly_cbd2_avx2(p, buf);
        return;
    }
#endif
    if (eta == 2) {
        /* 4 bits per coefficient: (b0 + b1) - (b2 + b3), summed bit pairs in parallel. */
        for (unsigned i = 0; i < MLKEM_N / 8; i++) {
            uint32_t t = load32_le(buf + 4 * i);
            uint32_t s = (t & 0x55555555u) + ((t >> 1) & 0x55555555u);
            for (unsigned j = 0; j < 8; j++) {
                int16_t a = (int16_t)((s >> (4 * j)) & 3), b = (int16_t)((s >> (4 * j + 2)) & 3);
                p->c[8 * i + j] = (int16_t)(a - b);
            }
        }
    } else {
        /* eta = 3: 6 bits per coefficient, (b0 + b1 + b2) - (b3 + b4 + b5). */
        for (unsigned i = 0; i < MLKEM_N / 4; i++) {
            uint32_t t = load24_le(buf + 3 * i);
            uint32_t s = (t & 0x249249u) + ((t >> 1) & 0x249249u) + ((t >> 2) & 0x249249u);
            for (unsigned j = 0; j < 4; j++) {
                int16_t a = (int16_t)((s >> (6 * j)) & 7), b = (int16_t)((s >> (6 * j + 3)) & 7);
                p->c[4 * i + j] = (int16_t)(a - b);
            }
        }
    }
}

unsigned mlkem_rej_uniform(int16_t *c, unsigned ctr, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (mlkem_use_avx2()) {
        /* The AVX2 bulk returns the new count and, in the upper bits, the bytes it used. */
        unsigned r = mlkem_rej_uniform_avx2(c, ctr, buf, len);
        ctr = r & 0xffff;
        pos = r >> 16;
    }
#endif
    /* While two more values always fit, store unconditionally and advance by the acceptance
     * bit: no unpredictable branch (rho is public, this is about speed, not secrecy). */
    while (ctr + 2 <= MLKEM_N && pos + 3 <= len) {
        uint16_t d1 = (uint16_t)(buf[pos] | ((buf[pos + 1] & 0x0f) << 8));
        uint16_t d2 = (uint16_t)((buf[pos + 1] >> 4) | (buf[pos + 2] << 4));
        pos += 3;
        c[ctr] = (int16_t)d1;
        ctr += d1 < MLKEM_Q;
        c[ctr] = (int16_t)d2;
        ctr += d2 < MLKEM_Q;
    }
    while (ctr < MLKEM_N && pos + 3 <= len) {
        uint16_t d1 = (uint16_t)(buf[pos] | ((buf[pos + 1] & 0x0f) << 8));
        uint16_t d2 = (uint16_t)((buf[pos + 1] >> 4) | (buf[pos + 2] << 4));
        pos += 3;
        if (d1 < MLKEM_Q)
            c[ctr++] = (int16_t)d1;
        if (d2 < MLKEM_Q && ctr < MLKEM_N)
            c[ctr++] = (int16_t)d2;
    }
    return ctr;
}

/* The barrier hides the value from the optimiser so the mask arithmetic is not turned back
 * into a branch. */
static inline uint8_t value_barrier(uint8_t x)
{
    __asm__("" : "+r"(x));
    return x;
}

uint8_t mlkem_ct_differ(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= (uint8_t)(a[i] ^ b[i]);
    /* acc != 0 -> the top bit of (0 - acc) as a 32-bit value is set. */
    return (uint8_t)(-(uint8_t)((0u - (uint32_t)value_barrier(acc)) >> 31));
}

void mlkem_ct_cmov(uint8_t *r, const uint8_t *b, size_t len, uint8_t mask)
{
    mask = value_barrier(mask);
    for (size_t i = 0; i < len; i++)
        r[i] = (uint8_t)(r[i] ^ (mask & (r[i] ^ b[i])));
}
