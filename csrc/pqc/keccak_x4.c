/* Keccak-f[1600] (FIPS 202 section 3) written for speed: the step mappings are loops over
 * constant indices that the compiler unrolls completely, so the 25 lanes live in registers.
 * The same round code runs on uint64_t (one state) and on __m256i (four states, AVX2). */
#include "pqc/keccak_x4.h"

#include <string.h>

#include "core/wipe.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QV_HAVE_AVX2_CODE 1
#endif

#define keccak_rc qv_keccak_round_constants

/* rho offset of lane x + 5y, and where pi moves it: B[y + 5((2x + 3y) mod 5)]. */
static const unsigned keccak_rho_off[25] = {0,  1,  62, 28, 27, 36, 44, 6,  55, 20, 3,  10, 43,
                                            25, 39, 41, 45, 15, 21, 8,  18, 2,  61, 56, 14};
static const unsigned keccak_pi_dst[25] = {0,  10, 20, 5,  15, 16, 1,  11, 21, 6,  7,  17, 2,
                                           12, 22, 23, 8,  18, 3,  13, 14, 24, 9,  19, 4};

/* One round over lanes of type T, given XOR, XOR3(a, b, c), CHI(a, b, c) = a ^ (~b & c)
 * and ROL(x, n). */
#define KECCAK_ROUND(T, a, XOR, XOR3, CHI, ROL, rc)                                             \
    do {                                                                                       \
        T c_[5], d_[5], b_[25];                                                                \
        _Pragma("GCC unroll 5") for (int x_ = 0; x_ < 5; x_++) c_[x_] =                        \
            XOR(XOR3(a[x_], a[x_ + 5], a[x_ + 10]), XOR(a[x_ + 15], a[x_ + 20]));               \
        _Pragma("GCC unroll 5") for (int x_ = 0; x_ < 5; x_++) d_[x_] =                        \
            XOR(c_[(x_ + 4) % 5], ROL(c_[(x_ + 1) % 5], 1));                                   \
        _Pragma("GCC unroll 25") for (int i_ = 0; i_ < 25; i_++) b_[keccak_pi_dst[i_]] =       \
            ROL(XOR(a[i_], d_[i_ % 5]), keccak_rho_off[i_]);                                   \
        _Pragma("GCC unroll 25") for (int i_ = 0; i_ < 25; i_++) a[i_] =                       \
            CHI(b_[i_], b_[i_ - i_ % 5 + (i_ + 1) % 5], b_[i_ - i_ % 5 + (i_ + 2) % 5]);       \
        a[0] = XOR(a[0], rc);                                                                  \
    } while (0)

/* One round from state A to state E (arrays of 25 lanes) for ISAs with a three-input XOR
 * and an immediate rotate, written out so that every rotation count is a literal. Theta's
 * column parities take two XOR3s each; D[x] = C[x-1] ^ ROL(C[x+1], 1) is formed once so
 * that only five values stay live beside the state, and the output is produced one plane
 * (5 lanes) at a time: fewer register spills than the generic round. */
#define KECCAK_ROUND_T3(T, A, E, XOR, XOR3, CHI, ROLI, rc)                                      \
    do {                                                                                        \
        T c0_ = XOR3(XOR3(A[0], A[5], A[10]), A[15], A[20]);                                    \
        T c1_ = XOR3(XOR3(A[1], A[6], A[11]), A[16], A[21]);                                    \
        T c2_ = XOR3(XOR3(A[2], A[7], A[12]), A[17], A[22]);                                    \
        T c3_ = XOR3(XOR3(A[3], A[8], A[13]), A[18], A[23]);                                    \
        T c4_ = XOR3(XOR3(A[4], A[9], A[14]), A[19], A[24]);                                    \
        T d0_ = XOR(c4_, ROLI(c1_, 1));                                                                   \
        T d1_ = XOR(c0_, ROLI(c2_, 1));                                                                   \
        T d2_ = XOR(c1_, ROLI(c3_, 1));                                                                   \
        T d3_ = XOR(c2_, ROLI(c4_, 1));                                                                   \
        T d4_ = XOR(c3_, ROLI(c0_, 1));                                                                   \
        {                                                                                       \
            T b0_ = XOR(A[0], d0_);                                                       \
            T b1_ = ROLI(XOR(A[6], d1_), 44);                                             \
            T b2_ = ROLI(XOR(A[12], d2_), 43);                                            \
            T b3_ = ROLI(XOR(A[18], d3_), 21);                                            \
            T b4_ = ROLI(XOR(A[24], d4_), 14);                                            \
            E[0] = CHI(b0_, b1_, b2_);                                                          \
            E[1] = CHI(b1_, b2_, b3_);                                                          \
            E[2] = CHI(b2_, b3_, b4_);                                                          \
            E[3] = CHI(b3_, b4_, b0_);                                                          \
            E[4] = CHI(b4_, b0_, b1_);                                                          \
        }                                                                                       \
        {                                                                                       \
            T b0_ = ROLI(XOR(A[3], d3_), 28);                                             \
            T b1_ = ROLI(XOR(A[9], d4_), 20);                                             \
            T b2_ = ROLI(XOR(A[10], d0_), 3);                                             \
            T b3_ = ROLI(XOR(A[16], d1_), 45);                                            \
            T b4_ = ROLI(XOR(A[22], d2_), 61);                                            \
            E[5] = CHI(b0_, b1_, b2_);                                                          \
            E[6] = CHI(b1_, b2_, b3_);                                                          \
            E[7] = CHI(b2_, b3_, b4_);                                                          \
            E[8] = CHI(b3_, b4_, b0_);                                                          \
            E[9] = CHI(b4_, b0_, b1_);                                                          \
        }                                                                                       \
        {                                                                                       \
            T b0_ = ROLI(XOR(A[1], d1_), 1);                                              \
            T b1_ = ROLI(XOR(A[7], d2_), 6);                                              \
            T b2_ = ROLI(XOR(A[13], d3_), 25);                                            \
            T b3_ = ROLI(XOR(A[19], d4_), 8);                                             \
            T b4_ = ROLI(XOR(A[20], d0_), 18);                                            \
            E[10] = CHI(b0_, b1_, b2_);                                                         \
            E[11] = CHI(b1_, b2_, b3_);                                                         \
            E[12] = CHI(b2_, b3_, b4_);                                                         \
            E[13] = CHI(b3_, b4_, b0_);                                                         \
            E[14] = CHI(b4_, b0_, b1_);                                                         \
        }                                                                                       \
        {                                                                                       \
            T b0_ = ROLI(XOR(A[4], d4_), 27);                                             \
            T b1_ = ROLI(XOR(A[5], d0_), 36);                                             \
            T b2_ = ROLI(XOR(A[11], d1_), 10);                                            \
            T b3_ = ROLI(XOR(A[17], d2_), 15);                                            \
            T b4_ = ROLI(XOR(A[23], d3_), 56);                                            \
            E[15] = CHI(b0_, b1_, b2_);                                                         \
            E[16] = CHI(b1_, b2_, b3_);                                                         \
            E[17] = CHI(b2_, b3_, b4_);                                                         \
            E[18] = CHI(b3_, b4_, b0_);                                                         \
            E[19] = CHI(b4_, b0_, b1_);                                                         \
        }                                                                                       \
        {                                                                                       \
            T b0_ = ROLI(XOR(A[2], d2_), 62);                                             \
            T b1_ = ROLI(XOR(A[8], d3_), 55);                                             \
            T b2_ = ROLI(XOR(A[14], d4_), 39);                                            \
            T b3_ = ROLI(XOR(A[15], d0_), 41);                                            \
            T b4_ = ROLI(XOR(A[21], d1_), 2);                                             \
            E[20] = CHI(b0_, b1_, b2_);                                                         \
            E[21] = CHI(b1_, b2_, b3_);                                                         \
            E[22] = CHI(b2_, b3_, b4_);                                                         \
            E[23] = CHI(b3_, b4_, b0_);                                                         \
            E[24] = CHI(b4_, b0_, b1_);                                                         \
        }                                                                                       \
        E[0] = XOR(E[0], rc);                                                                   \
    } while (0)

#define X64_XOR(a, b) ((a) ^ (b))
#define X64_XOR3(a, b, c) ((a) ^ (b) ^ (c))
#define X64_CHI(a, b, c) ((a) ^ (~(b) & (c)))
#define X64_ROL(x, n) (((x) << (n)) | ((x) >> ((64 - (n)) & 63)))

__attribute__((always_inline)) static inline void keccak_scalar(uint64_t s[25])
{
    uint64_t a[25];
    memcpy(a, s, sizeof a);
    for (int round = 0; round < 24; round++)
        KECCAK_ROUND(uint64_t, a, X64_XOR, X64_XOR3, X64_CHI, X64_ROL, keccak_rc[round]);
    memcpy(s, a, sizeof a);
}

static void keccak_scalar_portable(uint64_t s[25])
{
    keccak_scalar(s);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* BMI1's andn does chi's ~b & c in one instruction (about 15% faster here). */
__attribute__((target("bmi,bmi2"))) static void keccak_scalar_bmi(uint64_t s[25])
{
    keccak_scalar(s);
}
#endif

void qv_keccak_f1600_fast(uint64_t s[25])
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")) {
        keccak_scalar_bmi(s);
        return;
    }
#endif
    keccak_scalar_portable(s);
}

static void keccakx4_portable(qv_keccakx4 *st)
{
    for (int l = 0; l < 4; l++) {
        uint64_t a[25];
        for (int i = 0; i < 25; i++)
            a[i] = st->s[i][l];
        qv_keccak_f1600_fast(a);
        for (int i = 0; i < 25; i++)
            st->s[i][l] = a[i];
    }
}

#ifdef QV_HAVE_AVX2_CODE
#define V_XOR(a, b) _mm256_xor_si256((a), (b))
#define V_XOR3(a, b, c) V_XOR(V_XOR((a), (b)), (c))
#define V_CHI(a, b, c) V_XOR((a), _mm256_andnot_si256((b), (c)))
#define V_ROL(x, n)                                                                            \
    _mm256_or_si256(_mm256_sll_epi64((x), _mm_cvtsi32_si128((int)(n))),                        \
                    _mm256_srl_epi64((x), _mm_cvtsi32_si128((int)(64 - (n)))))

__attribute__((target("avx2"))) static void keccakx4_avx2(qv_keccakx4 *st)
{
    __m256i a[25];
    for (int i = 0; i < 25; i++)
        a[i] = _mm256_load_si256((const __m256i *)st->s[i]);
    for (int round = 0; round < 24; round++) {
        __m256i rc = _mm256_set1_epi64x((long long)keccak_rc[round]);
        KECCAK_ROUND(__m256i, a, V_XOR, V_XOR3, V_CHI, V_ROL, rc);
    }
    for (int i = 0; i < 25; i++)
        _mm256_store_si256((__m256i *)st->s[i], a[i]);
}

/* The same on 256-bit registers with AVX-512VL instructions: one-instruction rotations and
 * three-input logic (vpternlogq 0x96 = a ^ b ^ c, 0xD2 = a ^ (~b & c)). */
#define W_XOR3(a, b, c) _mm256_ternarylogic_epi64((a), (b), (c), 0x96)
#define W_CHI(a, b, c) _mm256_ternarylogic_epi64((a), (b), (c), 0xD2)
#define W_ROLI(x, n) _mm256_rol_epi64((x), (n))

__attribute__((target("avx2,avx512f,avx512vl"))) static void keccakx4_avx512vl(qv_keccakx4 *st)
{
    __m256i a[25], e[25];
    for (int i = 0; i < 25; i++)
        a[i] = _mm256_load_si256((const __m256i *)st->s[i]);
    for (int round = 0; round < 24; round += 2) {
        KECCAK_ROUND_T3(__m256i, a, e, V_XOR, W_XOR3, W_CHI, W_ROLI,
                        _mm256_set1_epi64x((long long)keccak_rc[round]));
        KECCAK_ROUND_T3(__m256i, e, a, V_XOR, W_XOR3, W_CHI, W_ROLI,
                        _mm256_set1_epi64x((long long)keccak_rc[round + 1]));
    }
    for (int i = 0; i < 25; i++)
        _mm256_store_si256((__m256i *)st->s[i], a[i]);
}

/* Eight states in 512-bit registers (AVX-512F): the same round as the AVX-512VL one. */
#define Z_XOR(a, b) _mm512_xor_si512((a), (b))
#define Z_XOR3(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0x96)
#define Z_CHI(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0xD2)
#define Z_ROLI(x, n) _mm512_rol_epi64((x), (n))

__attribute__((target("avx512f"))) static void keccakx8_avx512(qv_keccakx8 *st)
{
    __m512i a[25], e[25];
    for (int i = 0; i < 25; i++)
        a[i] = _mm512_load_si512((const void *)st->s[i]);
    for (int round = 0; round < 24; round += 2) {
        KECCAK_ROUND_T3(__m512i, a, e, Z_XOR, Z_XOR3, Z_CHI, Z_ROLI,
                        _mm512_set1_epi64((long long)keccak_rc[round]));
        KECCAK_ROUND_T3(__m512i, e, a, Z_XOR, Z_XOR3, Z_CHI, Z_ROLI,
                        _mm512_set1_epi64((long long)keccak_rc[round + 1]));
    }
    for (int i = 0; i < 25; i++)
        _mm512_store_si512((void *)st->s[i], a[i]);
}
#endif

/* Highest path allowed: 0 portable, 1 AVX2, 2 AVX-512VL, 3 AVX-512 8-lane (the default:
 * whatever CPUID has). */
static int max_level = 3;

static int cpu_avx2(void)
{
#ifdef QV_HAVE_AVX2_CODE
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static int cpu_avx512vl(void)
{
#ifdef QV_HAVE_AVX2_CODE
    return cpu_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static int cpu_avx512f(void)
{
#ifdef QV_HAVE_AVX2_CODE
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

static int level_of(int level)
{
    return level < 0 ? max_level : level;
}

int qv_keccakx8_available(void)
{
    return max_level >= 3 && cpu_avx512f();
}

void qv_keccak_f1600_x8_level(qv_keccakx8 *st, int level)
{
#ifdef QV_HAVE_AVX2_CODE
    if (level_of(level) >= 3 && cpu_avx512f()) {
        keccakx8_avx512(st);
        return;
    }
#endif
    for (int l = 0; l < 8; l++) {
        uint64_t a[25];
        for (int i = 0; i < 25; i++)
            a[i] = st->s[i][l];
        qv_keccak_f1600_fast(a);
        for (int i = 0; i < 25; i++)
            st->s[i][l] = a[i];
    }
}

void qv_keccak_f1600_x8(qv_keccakx8 *st)
{
    qv_keccak_f1600_x8_level(st, QV_KECCAK_LEVEL_DEFAULT);
}

const char *qv_keccakx4_code_path(void)
{
    return qv_keccakx8_available()                ? "avx512"
           : max_level >= 2 && cpu_avx512vl()    ? "avx512vl"
           : qv_keccakx4_uses_avx2()              ? "avx2"
                                                  : "portable";
}

int qv_keccakx4_uses_avx2(void)
{
    return max_level >= 1 && cpu_avx2();
}

void qv_keccakx4_set_max_level(int level)
{
    max_level = level < 0 ? 0 : level > 3 ? 3 : level;
}

void qv_keccak_f1600_x4_level(qv_keccakx4 *st, int level)
{
#ifdef QV_HAVE_AVX2_CODE
    level = level_of(level);
    if (level >= 2 && cpu_avx512vl()) {
        keccakx4_avx512vl(st);
        return;
    }
    if (level >= 1 && cpu_avx2()) {
        keccakx4_avx2(st);
        return;
    }
#endif
    keccakx4_portable(st);
}

void qv_keccak_f1600_x4(qv_keccakx4 *st)
{
    qv_keccak_f1600_x4_level(st, QV_KECCAK_LEVEL_DEFAULT);
}

/* Sponges on `lanes` (4 or 8) interleaved states, word i of state l at w[i * lanes + l]
 * (the layout of qv_keccakx4 and qv_keccakx8, whose first member w is). */
static void permute_lanes(uint64_t *w, unsigned lanes, int level)
{
    if (lanes == 8)
        qv_keccak_f1600_x8_level((qv_keccakx8 *)(void *)w, level);
    else
        qv_keccak_f1600_x4_level((qv_keccakx4 *)(void *)w, level);
}

static void absorb_lanes(uint64_t *w, unsigned lanes, int level, unsigned rate, uint8_t suffix,
                         const uint8_t *const *in, size_t len)
{
    uint8_t block[200];
    size_t off = 0;
    memset(w, 0, sizeof(uint64_t) * 25 * lanes);
    for (; len - off >= rate; off += rate) { /* whole blocks */
        for (unsigned l = 0; l < lanes; l++)
            for (unsigned i = 0; i < rate / 8; i++)
                w[i * lanes + l] ^= qv_load64_le(in[l] + off + 8 * i);
        permute_lanes(w, lanes, level);
    }
    for (unsigned l = 0; l < lanes; l++) { /* the last partial block with pad10*1 */
        memset(block, 0, rate);
        memcpy(block, in[l] + off, len - off);
        block[len - off] ^= suffix;
        block[rate - 1] ^= 0x80;
        for (unsigned i = 0; i < rate / 8; i++)
            w[i * lanes + l] ^= qv_load64_le(block + 8 * i);
    }
    qv_wipe(block, sizeof block); /* the inputs may be secret seeds */
}

static void squeeze_lanes(uint64_t *w, unsigned lanes, int level, unsigned rate,
                          uint8_t *const *out, size_t nblocks)
{
    for (size_t b = 0; b < nblocks; b++) {
        permute_lanes(w, lanes, level);
        for (unsigned l = 0; l < lanes; l++)
            for (unsigned i = 0; i < rate / 8; i++)
                qv_store64_le(out[l] + b * rate + 8 * i, w[i * lanes + l]);
    }
}

void qv_keccakx4_absorb(qv_keccakx4 *st, int level, unsigned rate, uint8_t suffix,
                        const uint8_t *const in[4], size_t len)
{
    absorb_lanes(&st->s[0][0], 4, level, rate, suffix, in, len);
}

void qv_keccakx4_squeeze_blocks(qv_keccakx4 *st, int level, unsigned rate,
                                uint8_t *const out[4], size_t nblocks)
{
    squeeze_lanes(&st->s[0][0], 4, level, rate, out, nblocks);
}

void qv_keccakx8_absorb(qv_keccakx8 *st, int level, unsigned rate, uint8_t suffix,
                        const uint8_t *const in[8], size_t len)
{
    absorb_lanes(&st->s[0][0], 8, level, rate, suffix, in, len);
}

void qv_keccakx8_squeeze_blocks(qv_keccakx8 *st, int level, unsigned rate,
                                uint8_t *const out[8], size_t nblocks)
{
    squeeze_lanes(&st->s[0][0], 8, level, rate, out, nblocks);
}

int qv_keccakx4_hash_lanes(unsigned rate, const uint8_t suffix[4], const uint8_t *const in[4],
                           const size_t len[4], uint8_t *const out[4], size_t outlen)
{
    /* Every lane must end its absorbing (the padded block) at the same permutation. */
    const size_t nblocks = len[0] / rate + 1;
    for (int l = 1; l < 4; l++)
        if (len[l] / rate + 1 != nblocks)
            return -1;
    qv_keccakx4 st;
    uint8_t block[4][200];
    memset(&st, 0, sizeof st);
    for (size_t b = 0; b + 1 < nblocks; b++) {
        for (int l = 0; l < 4; l++)
            for (unsigned i = 0; i < rate / 8; i++)
                st.s[i][l] ^= qv_load64_le(in[l] + b * rate + 8 * i);
        qv_keccak_f1600_x4(&st);
    }
    for (int l = 0; l < 4; l++) { /* the last partial block with pad10*1 */
        size_t off = (nblocks - 1) * rate;
        memset(block[l], 0, rate);
        memcpy(block[l], in[l] + off, len[l] - off);
        block[l][len[l] - off] ^= suffix[l];
        block[l][rate - 1] ^= 0x80;
        for (unsigned i = 0; i < rate / 8; i++)
            st.s[i][l] ^= qv_load64_le(block[l] + 8 * i);
    }
    for (size_t done = 0; done < outlen; done += rate) {
        size_t n = outlen - done < rate ? outlen - done : rate;
        qv_keccak_f1600_x4(&st);
        for (int l = 0; l < 4; l++) {
            for (unsigned i = 0; i < (n + 7) / 8; i++)
                qv_store64_le(block[l] + 8 * i, st.s[i][l]);
            memcpy(out[l] + done, block[l], n);
        }
    }
    /* The inputs may be secret (J hashes z): clear the copies. */
    qv_wipe(block, sizeof block);
    qv_wipe(&st, sizeof st);
    return 0;
}

void qv_keccakx4_hash(unsigned rate, uint8_t suffix, const uint8_t *const in[4], size_t len,
                      uint8_t *const out[4], size_t outlen)
{
    const uint8_t suffixes[4] = {suffix, suffix, suffix, suffix};
    const size_t lens[4] = {len, len, len, len};
    (void)qv_keccakx4_hash_lanes(rate, suffixes, in, lens, out, outlen);
}
