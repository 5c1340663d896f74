/* ML-DSA (FIPS 204, final, August 2024): ML-DSA-44/65/87 key generation, pure signing with a
 * context string (deterministic or hedged) and verification. The algorithm is here in portable
 * C; mldsa_avx2.c holds the AVX2 / AVX-512 kernels and keccak_x4.c (shared with ML-KEM) the
 * multi-lane SHAKE, chosen at run time from CPUID (qv_mldsa_code_path) and bit-identical to the C.
 *
 * Arithmetic is mod q = 8380417 in signed 32-bit lanes with Montgomery multiplication
 * (R = 2^32); polynomials are multiplied in the NTT domain. Everything that touches secret
 * data (s1, s2, t0, K, rnd, rho'', y and the intermediate w, c of rejected iterations) is free
 * of secret-dependent branches and memory indices. What FIPS 204 lets leak is marked with
 * QV_CT_DECLASSIFY: the decision of each rejection-sampling step (whether a candidate sample or
 * a signing attempt is rejected: it tells nothing about the values that are kept), public-key
 * parts that the secret key carries (rho, tr), and the final signature. The constant-time test
 * (tests/c/test_mldsa_ct.c) defines the macro as a valgrind client request and includes this
 * file, so memcheck flags any other use of secret data in a branch or an address. */
#include "quantavirt/mldsa.h"

#include <string.h>
#include <sys/random.h>

#include "core/wipe.h"
#include "pqc/mldsa_internal.h"
#include "quantavirt/errors.h"
#include "quantavirt/keccak.h"

#ifndef QV_CT_DECLASSIFY
#define QV_CT_DECLASSIFY(ptr, len) ((void)(ptr), (void)(len))
#endif

/* Whole-polynomial coefficient loops are written once and compiled twice: for the baseline
 * CPU and, on x86-64, for AVX2 (where the compiler vectorises them eight lanes wide). The
 * code path in force (qv_mldsa_path, so also qv_mldsa_set_path_limit) picks the copy.
 * POLY_KERNEL(ret, name, (params), (args), body) defines name_portable, name_avx2 and the
 * dispatching name; POLY_KERNEL_VOID the same for functions without a result. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QV_AVX2_TARGET __attribute__((target("avx2")))
#define POLY_KERNEL(ret, name, params, args, ...)                                          \
    static ret name##_portable params __VA_ARGS__                                          \
    QV_AVX2_TARGET static ret name##_avx2 params __VA_ARGS__                               \
    static ret name params                                                                 \
    {                                                                                      \
        return use_avx2() ? name##_avx2 args : name##_portable args;                       \
    }
#define POLY_KERNEL_VOID(name, params, args, ...)                                          \
    static void name##_portable params __VA_ARGS__                                         \
    QV_AVX2_TARGET static void name##_avx2 params __VA_ARGS__                              \
    static void name params                                                                \
    {                                                                                      \
        if (use_avx2())                                                                    \
            name##_avx2 args;                                                              \
        else                                                                               \
            name##_portable args;                                                          \
    }
#else
#define POLY_KERNEL(ret, name, params, args, ...) static ret name params __VA_ARGS__
#define POLY_KERNEL_VOID(name, params, args, ...) static void name params __VA_ARGS__
#endif

#define N 256
#define Q 8380417
#define QINV 58728449u /* q^-1 mod 2^32 */
#define D 13
#define K_MAX 8
#define L_MAX 7
#define CTILDE_MAX 64
#define SIGN_MAX_ATTEMPTS 1000 /* FIPS 204 Appendix C: a limit, if any, must be >= 814 */

typedef struct {
    int32_t c[N];
} poly;

typedef struct {
    int alg;
    unsigned k, l, eta, tau, beta, omega;
    int32_t gamma1, gamma2;
    unsigned ctilde_bytes; /* lambda / 4 */
    unsigned eta_bits;     /* bitlen(2 eta) */
    unsigned z_bits;       /* 1 + bitlen(gamma1 - 1) */
    unsigned w1_bits;      /* bitlen((q - 1) / (2 gamma2) - 1) */
    size_t pk_bytes, sk_bytes, sig_bytes;
} mldsa_params;

/* FIPS 204 Table 1 and Table 2. */
static const mldsa_params mldsa_param_sets[] = {
    {QV_MLDSA_44, 4, 4, 2, 39, 78, 80, 1 << 17, (Q - 1) / 88, 32, 3, 18, 6, 1312, 2560, 2420},
    {QV_MLDSA_65, 6, 5, 4, 49, 196, 55, 1 << 19, (Q - 1) / 32, 48, 4, 20, 4, 1952, 4032, 3309},
    {QV_MLDSA_87, 8, 7, 2, 60, 120, 75, 1 << 19, (Q - 1) / 32, 64, 3, 20, 4, 2592, 4896, 4627},
};

static const mldsa_params *mldsa_params_of(int alg)
{
    for (size_t i = 0; i < sizeof mldsa_param_sets / sizeof mldsa_param_sets[0]; i++)
        if (mldsa_param_sets[i].alg == alg)
            return &mldsa_param_sets[i];
    return NULL;
}

/* zeta^brv8(i) * 2^32 mod q, centred, for zeta = 1753 (FIPS 204 Appendix B in Montgomery
 * form); entry 0 is unused. */
const int32_t qv_mldsa_zetas[N] = {
    -4186625, 25847, -2608894, -518909, 237124, -777960, -876248, 466468,
    1826347, 2353451, -359251, -2091905, 3119733, -2884855, 3111497, 2680103,
    2725464, 1024112, -1079900, 3585928, -549488, -1119584, 2619752, -2108549,
    -2118186, -3859737, -1399561, -3277672, 1757237, -19422, 4010497, 280005,
    2706023, 95776, 3077325, 3530437, -1661693, -3592148, -2537516, 3915439,
    -3861115, -3043716, 3574422, -2867647, 3539968, -300467, 2348700, -539299,
    -1699267, -1643818, 3505694, -3821735, 3507263, -2140649, -1600420, 3699596,
    811944, 531354, 954230, 3881043, 3900724, -2556880, 2071892, -2797779,
    -3930395, -1528703, -3677745, -3041255, -1452451, 3475950, 2176455, -1585221,
    -1257611, 1939314, -4083598, -1000202, -3190144, -3157330, -3632928, 126922,
    3412210, -983419, 2147896, 2715295, -2967645, -3693493, -411027, -2477047,
    -671102, -1228525, -22981, -1308169, -381987, 1349076, 1852771, -1430430,
    -3343383, 264944, 508951, 3097992, 44288, -1100098, 904516, 3958618,
    -3724342, -8578, 1653064, -3249728, 2389356, -210977, 759969, -1316856,
    189548, -3553272, 3159746, -1851402, -2409325, -177440, 1315589, 1341330,
    1285669, -1584928, -812732, -1439742, -3019102, -3881060, -3628969, 3839961,
    2091667, 3407706, 2316500, 3817976, -3342478, 2244091, -2446433, -3562462,
    266997, 2434439, -1235728, 3513181, -3520352, -3759364, -1197226, -3193378,
    900702, 1859098, 909542, 819034, 495491, -1613174, -43260, -522500,
    -655327, -3122442, 2031748, 3207046, -3556995, -525098, -768622, -3595838,
    342297, 286988, -2437823, 4108315, 3437287, -3342277, 1735879, 203044,
    2842341, 2691481, -2590150, 1265009, 4055324, 1247620, 2486353, 1595974,
    -3767016, 1250494, 2635921, -3548272, -2994039, 1869119, 1903435, -1050970,
    -1333058, 1237275, -3318210, -1430225, -451100, 1312455, 3306115, -1962642,
    -1279661, 1917081, -2546312, -1374803, 1500165, 777191, 2235880, 3406031,
    -542412, -2831860, -1671176, -1846953, -2584293, -3724270, 594136, -3776993,
    -2013608, 2432395, 2454455, -164721, 1957272, 3369112, 185531, -1207385,
    -3183426, 162844, 1616392, 3014001, 810149, 1652634, -3694233, -1799107,
    -3038916, 3523897, 3866901, 269760, 2213111, -975884, 1717735, 472078,
    -426683, 1723600, -1803090, 1910376, -1667432, -1104333, -260646, -3833893,
    -2939036, -2235985, -420899, -2286327, 183443, -976891, 1612842, -3545687,
    -554416, 3919660, -48306, -1362209, 3937738, 1400424, -846154, 1976782,
};

/* ---- arithmetic mod q ------------------------------------------------------------------ */

/* a * 2^-32 mod q for |a| < 2^31 q; result in (-q, q). */
static inline int32_t mont_reduce(int64_t a)
{
    int32_t t = (int32_t)(uint32_t)((uint64_t)a * QINV);
    return (int32_t)((a - (int64_t)t * Q) >> 32);
}

/* a mod q in [-6283008, 6283008] for a <= 2^31 - 2^22 - 1. */
static inline int32_t reduce32(int32_t a)
{
    int32_t t = (a + (1 << 22)) >> 23;
    return a - t * Q;
}

/* Adds q when a is negative, without a branch. */
static inline int32_t caddq(int32_t a)
{
    return a + ((a >> 31) & Q);
}

/* All-ones when a == b, else zero (a, b < 2^31). */
static inline uint32_t ct_eq_mask(uint32_t a, uint32_t b)
{
    return (uint32_t)0 - (((a ^ b) - 1u) >> 31);
}

static void poly_ntt_portable(poly *a)
{
    unsigned k = 0;
    for (unsigned len = 128; len > 0; len >>= 1) {
        for (unsigned start = 0; start < N; start += 2 * len) {
            int64_t zeta = qv_mldsa_zetas[++k];
            for (unsigned j = start; j < start + len; j++) {
                int32_t t = mont_reduce(zeta * a->c[j + len]);
                a->c[j + len] = a->c[j] - t;
                a->c[j] = a->c[j] + t;
            }
        }
    }
}

/* Inverse NTT, leaving the result multiplied by 2^32 (undoing one Montgomery factor of a
 * pointwise product). Input coefficients must be below q in absolute value. */
static void poly_invntt_tomont_portable(poly *a)
{
    unsigned k = N;
    for (unsigned len = 1; len < N / 2; len <<= 1) {
        for (unsigned start = 0; start < N; start += 2 * len) {
            int64_t zeta = -qv_mldsa_zetas[--k];
            for (unsigned j = start; j < start + len; j++) {
                int32_t t = a->c[j];
                a->c[j] = t + a->c[j + len];
                a->c[j + len] = mont_reduce(zeta * (t - a->c[j + len]));
            }
        }
    }
    /* Last layer with the final scaling by f = 2^64 / 256 folded in: the sum gets f, the
     * difference f * zeta / 2^32 (coefficients are below 128 q here, so t + u fits). */
    for (unsigned j = 0; j < N / 2; j++) {
        int32_t t = a->c[j], u = a->c[j + N / 2];
        a->c[j] = mont_reduce((int64_t)QV_MLDSA_INVNTT_F * (t + u));
        a->c[j + N / 2] = mont_reduce((int64_t)QV_MLDSA_INVNTT_FZ * (t - u));
    }
}

static void poly_pointwise_portable(poly *r, const poly *a, const poly *b)
{
    for (unsigned i = 0; i < N; i++)
        r->c[i] = mont_reduce((int64_t)a->c[i] * b->c[i]);
}

static void poly_pointwise_acc_portable(poly *r, const poly *a, const poly *b)
{
    for (unsigned i = 0; i < N; i++)
        r->c[i] += mont_reduce((int64_t)a->c[i] * b->c[i]);
}

/* The code path: AVX2 kernels when the CPU has them (mldsa_avx2.c decides from CPUID),
 * else portable C. Both give identical results. */
static inline int use_avx2(void)
{
    return qv_mldsa_path() >= QV_MLDSA_PATH_AVX2;
}

const char *qv_mldsa_code_path(void)
{
    switch (qv_mldsa_path()) {
    case QV_MLDSA_PATH_AVX512:
        return "avx2+avx512";
    case QV_MLDSA_PATH_AVX2:
        return "avx2";
    default:
        return "portable";
    }
}

static void poly_ntt(poly *a)
{
    int path = qv_mldsa_path();
    if (path >= QV_MLDSA_PATH_AVX512)
        qv_mldsa_ntt_avx512(a->c);
    else if (path >= QV_MLDSA_PATH_AVX2)
        qv_mldsa_ntt_avx2(a->c);
    else
        poly_ntt_portable(a);
}

static void poly_invntt_tomont(poly *a)
{
    int path = qv_mldsa_path();
    if (path >= QV_MLDSA_PATH_AVX512)
        qv_mldsa_invntt_tomont_avx512(a->c);
    else if (path >= QV_MLDSA_PATH_AVX2)
        qv_mldsa_invntt_tomont_avx2(a->c);
    else
        poly_invntt_tomont_portable(a);
}

static void poly_pointwise(poly *r, const poly *a, const poly *b)
{
    int path = qv_mldsa_path();
    if (path >= QV_MLDSA_PATH_AVX512)
        qv_mldsa_pointwise_avx512(r->c, a->c, b->c);
    else if (path >= QV_MLDSA_PATH_AVX2)
        qv_mldsa_pointwise_avx2(r->c, a->c, b->c);
    else
        poly_pointwise_portable(r, a, b);
}

static void poly_pointwise_acc(poly *r, const poly *a, const poly *b)
{
    int path = qv_mldsa_path();
    if (path >= QV_MLDSA_PATH_AVX512)
        qv_mldsa_pointwise_acc_avx512(r->c, a->c, b->c);
    else if (path >= QV_MLDSA_PATH_AVX2)
        qv_mldsa_pointwise_acc_avx2(r->c, a->c, b->c);
    else
        poly_pointwise_acc_portable(r, a, b);
}

POLY_KERNEL_VOID(poly_reduce, (poly *a), (a),
{
    for (unsigned i = 0; i < N; i++)
        a->c[i] = reduce32(a->c[i]);
})

/* Canonical representative in [0, q). */
POLY_KERNEL_VOID(poly_freeze, (poly *a), (a),
{
    for (unsigned i = 0; i < N; i++)
        a->c[i] = caddq(reduce32(a->c[i]));
})

/* 1 when some |a_i| >= bound, else 0; coefficients must be centred and reduced. Branch-free:
 * the caller decides (and declassifies) the rejection. */
POLY_KERNEL(uint32_t, poly_exceeds, (const poly *a, int32_t bound), (a, bound),
{
    uint32_t bad = 0;
    for (unsigned i = 0; i < N; i++) {
        int32_t s = a->c[i] >> 31;
        int32_t abs = a->c[i] - (s & (2 * a->c[i]));
        bad |= (uint32_t)(bound - 1 - abs) >> 31;
    }
    return bad;
})

/* ---- rounding (FIPS 204 section 7.4), all branch-free ---------------------------------- */

/* Power2Round: r = r1 2^d + r0 with r0 in (-2^(d-1), 2^(d-1)], for r in [0, q). */
static inline void power2round(int32_t r, int32_t *r1, int32_t *r0)
{
    *r1 = (r + (1 << (D - 1)) - 1) >> D;
    *r0 = r - (*r1 << D);
}

/* Decompose: r = r1 2 gamma2 + r0 with r0 = r mod+- 2 gamma2, and the special case r - r0 =
 * q - 1 mapped to r1 = 0, r0 - 1. Input in [0, q). */
static inline void decompose(int32_t r, int32_t gamma2, int32_t *r1, int32_t *r0)
{
    int32_t a1 = (r + 127) >> 7; /* ceil(r / 128): a multiple of 128 divides 2 gamma2 */
    if (gamma2 == (Q - 1) / 32) {
        /* 1025 / 2^22 ~ 128 / (2 gamma2); the & wraps 16 (the r near q - 1 case) to 0. */
        a1 = (a1 * 1025 + (1 << 21)) >> 22;
        a1 &= 15;
    } else {
        /* 11275 / 2^24 ~ 128 / (2 gamma2); 44 (r near q - 1) becomes 0. */
        a1 = (a1 * 11275 + (1 << 23)) >> 24;
        a1 ^= ((43 - a1) >> 31) & a1;
    }
    int32_t a0 = r - a1 * 2 * gamma2;
    a0 -= (((Q - 1) / 2 - a0) >> 31) & Q; /* centre: r0 - q when r0 > (q - 1) / 2 */
    *r1 = a1;
    *r0 = a0;
}

static inline int32_t highbits(int32_t r, int32_t gamma2)
{
    int32_t r1, r0;
    decompose(r, gamma2, &r1, &r0);
    return r1;
}

/* UseHint: the high bits of r moved by one step (mod m) in the direction of r0 when h = 1. */
static inline int32_t use_hint(int32_t h, int32_t r, int32_t gamma2)
{
    int32_t r1, r0;
    decompose(r, gamma2, &r1, &r0);
    int32_t m = (Q - 1) / (2 * gamma2);
    int32_t up = (int32_t)((uint32_t)(-r0) >> 31);  /* 1 when r0 > 0 */
    int32_t step = (h & 1) * (2 * up - 1);           /* +1, -1 or 0 */
    int32_t v = r1 + step;                           /* in [-1, m] */
    v += (v >> 31) & m;                              /* -1 -> m - 1 */
    v -= m & ~((v - m) >> 31);                       /* m -> 0 */
    return v;
}

/* ---- whole-polynomial steps of Sign and Verify (compiled twice through POLY_KERNEL) ---- */

/* w <- w mod+ q and w1 = HighBits(w). */
POLY_KERNEL_VOID(poly_freeze_highbits, (poly *w, poly *w1, int32_t gamma2),
                 (w, w1, gamma2),
{
    for (unsigned n = 0; n < N; n++) {
        w->c[n] = caddq(reduce32(w->c[n]));
        w1->c[n] = highbits(w->c[n], gamma2);
    }
})

/* z = y + c s1 (cs1 straight out of the inverse NTT); 1 if ||z|| >= bound. */
POLY_KERNEL(uint32_t, poly_add_check,
            (poly *z, const poly *y, const poly *cs1, int32_t bound), (z, y, cs1, bound),
{
    uint32_t bad = 0;
    for (unsigned n = 0; n < N; n++) {
        int32_t v = y->c[n] + reduce32(cs1->c[n]);
        z->c[n] = v;
        int32_t abs = v - ((v >> 31) & (2 * v));
        bad |= (uint32_t)(bound - 1 - abs) >> 31;
    }
    return bad;
})

/* r = (w - c s2) mod+ q, (r1, r0) = Decompose(r); 1 if ||r0|| >= bound. */
POLY_KERNEL(uint32_t, poly_lowbits_check,
            (poly *r, poly *r1, poly *r0, const poly *w, const poly *cs2, int32_t gamma2,
             int32_t bound),
            (r, r1, r0, w, cs2, gamma2, bound),
{
    uint32_t bad = 0;
    for (unsigned n = 0; n < N; n++) {
        r->c[n] = caddq(reduce32(w->c[n] - reduce32(cs2->c[n])));
        decompose(r->c[n], gamma2, &r1->c[n], &r0->c[n]);
        int32_t v = r0->c[n];
        int32_t abs = v - ((v >> 31) & (2 * v));
        bad |= (uint32_t)(bound - 1 - abs) >> 31;
    }
    return bad;
})

/* h = MakeHint(-c t0, r + c t0) = [HighBits(r + c t0) != HighBits(r)], with r1 =
 * HighBits(r); returns the number of ones. */
POLY_KERNEL(uint32_t, poly_make_hint,
            (poly *h, const poly *r, const poly *r1, const poly *ct0, int32_t gamma2),
            (h, r, r1, ct0, gamma2),
{
    uint32_t ones = 0;
    for (unsigned n = 0; n < N; n++) {
        int32_t v = caddq(reduce32(r->c[n] + ct0->c[n]));
        uint32_t diff = (uint32_t)(highbits(v, gamma2) ^ r1->c[n]);
        uint32_t bit = (diff | (0u - diff)) >> 31;
        h->c[n] = (int32_t)bit;
        ones += bit;
    }
    return ones;
})

/* w <- UseHint(h, w mod+ q). */
POLY_KERNEL_VOID(poly_use_hint, (poly *w, const poly *h, int32_t gamma2), (w, h, gamma2),
{
    for (unsigned n = 0; n < N; n++)
        w->c[n] = use_hint(h->c[n], caddq(reduce32(w->c[n])), gamma2);
})

/* ---- single-stream SHAKE256 ------------------------------------------------------------ */

/* H = SHAKE256 for the one-stream uses (mu, rho'', c~, SampleInBall, tr, KeyGen's seed
 * expansion). With AVX2 the sponge runs in lane 0 of the four-way permutation, which there
 * costs about half of one scalar Keccak-f[1600]; otherwise it is the scalar qv_keccak. Same
 * output either way. */
typedef struct {
    union {
        qv_keccak scalar;
        qv_keccakx4 x4;
    } u;
    unsigned offset; /* x4 only: byte position in the current block of lane 0 */
    int fast, squeezing;
} xof1;

static void xof_init(xof1 *h)
{
    h->fast = use_avx2();
    h->offset = 0;
    h->squeezing = 0;
    if (h->fast) {
        memset(&h->u.x4, 0, sizeof h->u.x4);
    } else {
        qv_shake256_init(&h->u.scalar);
    }
}

static void xof_absorb(xof1 *h, const uint8_t *in, size_t len)
{
    if (!h->fast) {
        qv_keccak_absorb(&h->u.scalar, in, len);
        return;
    }
    uint64_t *s = &h->u.x4.s[0][0];
    while (len > 0) {
        if (h->offset % 8 == 0 && len >= 8) { /* whole lanes */
            uint64_t v = 0;
            for (int i = 7; i >= 0; i--)
                v = (v << 8) | in[i];
            s[4 * (h->offset / 8)] ^= v;
            h->offset += 8;
            in += 8;
            len -= 8;
        } else {
            s[4 * (h->offset / 8)] ^= (uint64_t)*in++ << (8 * (h->offset % 8));
            h->offset++;
            len--;
        }
        if (h->offset == QV_SHAKE256_RATE) {
            qv_keccak_f1600_x4_level(&h->u.x4, qv_mldsa_keccak_level());
            h->offset = 0;
        }
    }
}

static void xof_squeeze(xof1 *h, uint8_t *out, size_t len)
{
    if (!h->fast) {
        qv_keccak_squeeze(&h->u.scalar, out, len);
        return;
    }
    uint64_t *s = &h->u.x4.s[0][0];
    if (!h->squeezing) { /* SHAKE padding, then the first permutation */
        s[4 * (h->offset / 8)] ^= (uint64_t)0x1F << (8 * (h->offset % 8));
        s[4 * ((QV_SHAKE256_RATE - 1) / 8)] ^= (uint64_t)0x80 << (8 * ((QV_SHAKE256_RATE - 1) % 8));
        qv_keccak_f1600_x4_level(&h->u.x4, qv_mldsa_keccak_level());
        h->offset = 0;
        h->squeezing = 1;
    }
    while (len > 0) {
        if (h->offset == QV_SHAKE256_RATE) {
            qv_keccak_f1600_x4_level(&h->u.x4, qv_mldsa_keccak_level());
            h->offset = 0;
        }
        *out++ = (uint8_t)(s[4 * (h->offset / 8)] >> (8 * (h->offset % 8)));
        h->offset++;
        len--;
    }
}

static void xof_wipe(xof1 *h)
{
    qv_wipe(h, sizeof *h);
}

static void shake256(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen)
{
    xof1 h;
    xof_init(&h);
    xof_absorb(&h, in, inlen);
    xof_squeeze(&h, out, outlen);
    xof_wipe(&h);
}

/* ---- bit packing (FIPS 204 section 7.1): 256 values of `bits` bits, LSB first -------- */

static void pack_bits(uint8_t *out, const uint32_t v[N], unsigned bits)
{
    if (bits == 4) { /* w1 of ML-DSA-65/87: two per byte */
        for (unsigned i = 0; i < N / 2; i++)
            out[i] = (uint8_t)(v[2 * i] | (v[2 * i + 1] << 4));
        return;
    }
    /* bits <= 24: the accumulator never holds more than 55 bits; 256 * bits is a multiple of
     * 32, so it ends empty. The flush depends on `bits` only. */
    uint64_t acc = 0;
    unsigned nacc = 0;
    size_t o = 0;
    for (unsigned i = 0; i < N; i++) {
        acc |= (uint64_t)v[i] << nacc;
        nacc += bits;
        if (nacc >= 32) {
            out[o] = (uint8_t)acc;
            out[o + 1] = (uint8_t)(acc >> 8);
            out[o + 2] = (uint8_t)(acc >> 16);
            out[o + 3] = (uint8_t)(acc >> 24);
            o += 4;
            acc >>= 32;
            nacc -= 32;
        }
    }
}

static void unpack_bits(uint32_t v[N], const uint8_t *in, unsigned bits)
{
    /* Coefficient i sits at bit i * bits: read the 4 bytes that hold it (bits <= 24), except
     * near the end of the input where fewer remain. Offsets depend on `bits` only. */
    const size_t total = (size_t)N * bits / 8;
    const uint32_t mask = (1u << bits) - 1;
    for (unsigned i = 0; i < N; i++) {
        size_t off = (size_t)i * bits, byte = off / 8;
        uint32_t w = 0;
        if (byte + 4 <= total) {
            w = (uint32_t)in[byte] | ((uint32_t)in[byte + 1] << 8) |
                ((uint32_t)in[byte + 2] << 16) | ((uint32_t)in[byte + 3] << 24);
        } else {
            for (size_t b = byte; b < total; b++)
                w |= (uint32_t)in[b] << (8 * (b - byte));
        }
        v[i] = (w >> (off % 8)) & mask;
    }
}

/* BitPack(w, a, b): stores b - w_i. */
static void pack_offset(uint8_t *out, const poly *a, int32_t b, unsigned bits)
{
    uint32_t v[N];
    for (unsigned i = 0; i < N; i++)
        v[i] = (uint32_t)(b - a->c[i]);
    pack_bits(out, v, bits);
    qv_wipe(v, sizeof v);
}

static void unpack_offset(poly *a, const uint8_t *in, int32_t b, unsigned bits)
{
    uint32_t v[N];
    unpack_bits(v, in, bits);
    for (unsigned i = 0; i < N; i++)
        a->c[i] = b - (int32_t)v[i];
    qv_wipe(v, sizeof v);
}

static void pack_simple(uint8_t *out, const poly *a, unsigned bits)
{
    uint32_t v[N];
    for (unsigned i = 0; i < N; i++)
        v[i] = (uint32_t)a->c[i];
    pack_bits(out, v, bits);
}

static void unpack_simple(poly *a, const uint8_t *in, unsigned bits)
{
    uint32_t v[N];
    unpack_bits(v, in, bits);
    for (unsigned i = 0; i < N; i++)
        a->c[i] = (int32_t)v[i];
}

/* ---- sampling (FIPS 204 section 7.3) ---------------------------------------------------- */

/* RejNTTPoly's parsing: coefficients mod q from 3-byte groups of SHAKE128 output (public
 * data), appended to a from position j; returns the new count. len is a multiple of 3. */
static unsigned rej_uniform(poly *a, unsigned j, const uint8_t *buf, size_t len)
{
    if (use_avx2())
        return qv_mldsa_rej_uniform_avx2(a->c, j, buf, len);
    for (size_t p = 0; p + 3 <= len && j < N; p += 3) {
        uint32_t z = buf[p] | ((uint32_t)buf[p + 1] << 8) | ((uint32_t)(buf[p + 2] & 0x7f) << 16);
        if (z < Q)
            a->c[j++] = (int32_t)z;
    }
    return j;
}

/* RejBoundedPoly's parsing: coefficients in [-eta, eta] from the half-bytes of SHAKE256
 * output, appended from position j. The samples are secret; only whether each half-byte is
 * rejected is revealed. */
static unsigned rej_bounded(poly *a, unsigned j, const uint8_t *buf, size_t len, unsigned eta)
{
    const uint32_t limit = eta == 2 ? 15 : 9;
    for (size_t p = 0; p < len && j < N; p++) {
        uint32_t half[2] = {buf[p] & 15u, (uint32_t)buf[p] >> 4};
        for (unsigned h = 0; h < 2 && j < N; h++) {
            uint32_t b = half[h];
            uint32_t accept = (b - limit) >> 31; /* b < limit */
            QV_CT_DECLASSIFY(&accept, sizeof accept);
            /* Written at j in every case and kept only when accepted: no branch to
             * mispredict. eta = 2: 2 - (b mod 5), b mod 5 = b - 5 floor(205 b / 2^10). */
            a->c[j] = eta == 2 ? 2 - (int32_t)(b - 5 * ((205 * b) >> 10)) : 4 - (int32_t)b;
            j += accept;
        }
    }
    return j;
}

/* SampleInBall(ctilde): tau coefficients +-1. Its input is secret until the signature is
 * released, so the swap c_i <- c_j, c_j <- +-1 scans every position instead of indexing. */
static void sample_in_ball(poly *c, const uint8_t *ctilde, size_t len, unsigned tau)
{
    uint8_t buf[QV_SHAKE256_RATE];
    xof1 st;
    xof_init(&st);
    xof_absorb(&st, ctilde, len);
    xof_squeeze(&st, buf, sizeof buf);
    uint64_t signs = 0;
    for (unsigned i = 0; i < 8; i++)
        signs |= (uint64_t)buf[i] << (8 * i);
    unsigned pos = 8;
    memset(c, 0, sizeof *c);
    /* The AVX2 path works on one byte per coefficient (8 registers for the polynomial). */
    const int bytes = use_avx2();
    int8_t cb[N];
    memset(cb, 0, sizeof cb);
    for (uint32_t i = N - tau; i < N; i++) {
        uint32_t j;
        for (;;) {
            if (pos == sizeof buf) {
                xof_squeeze(&st, buf, sizeof buf);
                pos = 0;
            }
            j = buf[pos++];
            uint32_t reject = (i - j) >> 31; /* j > i */
            QV_CT_DECLASSIFY(&reject, sizeof reject);
            if (!reject)
                break;
        }
        int32_t sign = 1 - 2 * (int32_t)(signs & 1);
        signs >>= 1;
        if (bytes) {
            qv_mldsa_ball_swap_avx2(cb, i, j, (int8_t)sign);
            continue;
        }
        int32_t cj = 0;
        for (uint32_t p = 0; p < N; p++)
            cj |= c->c[p] & (int32_t)ct_eq_mask(p, j);
        c->c[i] = cj;
        for (uint32_t p = 0; p < N; p++) {
            int32_t m = (int32_t)ct_eq_mask(p, j);
            c->c[p] = (c->c[p] & ~m) | (sign & m);
        }
    }
    if (bytes)
        for (unsigned n = 0; n < N; n++)
            c->c[n] = cb[n];
    qv_wipe(cb, sizeof cb);
    qv_wipe(buf, sizeof buf);
    xof_wipe(&st);
}

#define SHAKE128_BLOCKS_A 5 /* 840 bytes: enough for 256 coefficients almost always */
#define SHAKE256_BLOCKS_S 2
#define SHAKE256_BLOCKS_Y 5 /* 680 >= 32 * 20 bytes */

/* Many same-length XOF streams, run `lanes` at a time: 8 with AVX-512 (Keccak on 512-bit
 * registers), else 4. Lane l of a group gets seed[l]; spare lanes of a last group repeat a
 * real seed and their output is ignored. */
#define XOF_LANES_MAX 8
typedef struct {
    union {
        qv_keccakx4 x4;
        qv_keccakx8 x8;
    } st;
    unsigned lanes, rate;
    uint8_t buf[XOF_LANES_MAX][SHAKE128_BLOCKS_A * QV_SHAKE128_RATE];
    uint8_t seed[XOF_LANES_MAX][66];
} xof_multi;

static void xof_multi_init(xof_multi *x)
{
    x->lanes = qv_mldsa_path() >= QV_MLDSA_PATH_AVX512 ? 8 : 4;
}

static void xof_multi_squeeze(xof_multi *x, size_t nblocks)
{
    uint8_t *out[XOF_LANES_MAX];
    for (unsigned l = 0; l < XOF_LANES_MAX; l++)
        out[l] = x->buf[l];
    if (x->lanes == 8)
        qv_keccakx8_squeeze_blocks(&x->st.x8, qv_mldsa_keccak_level(), x->rate, out, nblocks);
    else
        qv_keccakx4_squeeze_blocks(&x->st.x4, qv_mldsa_keccak_level(), x->rate, out, nblocks);
}

static void xof_multi_start(xof_multi *x, unsigned rate, size_t seed_len, size_t nblocks)
{
    const uint8_t *in[XOF_LANES_MAX];
    for (unsigned l = 0; l < XOF_LANES_MAX; l++)
        in[l] = x->seed[l];
    x->rate = rate;
    if (x->lanes == 8) /* SHAKE128 / SHAKE256: domain suffix 1111 */
        qv_keccakx8_absorb(&x->st.x8, qv_mldsa_keccak_level(), rate, 0x1F, in, seed_len);
    else
        qv_keccakx4_absorb(&x->st.x4, qv_mldsa_keccak_level(), rate, 0x1F, in, seed_len);
    xof_multi_squeeze(x, nblocks);
}

static int all_full(const unsigned *cnt, unsigned lanes)
{
    unsigned low = 0;
    for (unsigned l = 0; l < lanes; l++)
        low |= cnt[l] < N;
    return !low;
}

/* ExpandA: A_hat[r][s] = RejNTTPoly(rho || s || r), already in the NTT domain. */
static void expand_a(poly a[K_MAX][L_MAX], const uint8_t rho[32], const mldsa_params *p)
{
    const unsigned total = p->k * p->l;
    xof_multi x;
    xof_multi_init(&x);
    poly spare;
    for (unsigned base = 0; base < total; base += x.lanes) {
        poly *dst[XOF_LANES_MAX];
        unsigned cnt[XOF_LANES_MAX];
        for (unsigned l = 0; l < x.lanes; l++) {
            unsigned idx = base + l < total ? base + l : base;
            memcpy(x.seed[l], rho, 32);
            x.seed[l][32] = (uint8_t)(idx % p->l); /* s: column */
            x.seed[l][33] = (uint8_t)(idx / p->l); /* r: row */
            dst[l] = base + l < total ? &a[idx / p->l][idx % p->l] : &spare;
        }
        xof_multi_start(&x, QV_SHAKE128_RATE, 34, SHAKE128_BLOCKS_A);
        for (unsigned l = 0; l < x.lanes; l++)
            cnt[l] = rej_uniform(dst[l], 0, x.buf[l], SHAKE128_BLOCKS_A * QV_SHAKE128_RATE);
        while (!all_full(cnt, x.lanes)) {
            xof_multi_squeeze(&x, 1);
            for (unsigned l = 0; l < x.lanes; l++)
                cnt[l] = rej_uniform(dst[l], cnt[l], x.buf[l], QV_SHAKE128_RATE);
        }
    }
}

/* ExpandS: s1[r] = RejBoundedPoly(rho' || r), s2[r] = RejBoundedPoly(rho' || l + r). */
static void expand_s(poly s1[L_MAX], poly s2[K_MAX], const uint8_t rhop[64],
                     const mldsa_params *p)
{
    const unsigned total = p->k + p->l;
    xof_multi x;
    xof_multi_init(&x);
    poly spare;
    for (unsigned base = 0; base < total; base += x.lanes) {
        poly *dst[XOF_LANES_MAX];
        unsigned cnt[XOF_LANES_MAX];
        for (unsigned l = 0; l < x.lanes; l++) {
            unsigned idx = base + l < total ? base + l : base;
            memcpy(x.seed[l], rhop, 64);
            x.seed[l][64] = (uint8_t)idx;
            x.seed[l][65] = (uint8_t)(idx >> 8);
            dst[l] = base + l >= total ? &spare : idx < p->l ? &s1[idx] : &s2[idx - p->l];
        }
        xof_multi_start(&x, QV_SHAKE256_RATE, 66, SHAKE256_BLOCKS_S);
        for (unsigned l = 0; l < x.lanes; l++)
            cnt[l] = rej_bounded(dst[l], 0, x.buf[l], SHAKE256_BLOCKS_S * QV_SHAKE256_RATE,
                                 p->eta);
        while (!all_full(cnt, x.lanes)) {
            xof_multi_squeeze(&x, 1);
            for (unsigned l = 0; l < x.lanes; l++)
                cnt[l] = rej_bounded(dst[l], cnt[l], x.buf[l], QV_SHAKE256_RATE, p->eta);
        }
    }
    qv_wipe(&x, sizeof x);
    qv_wipe(&spare, sizeof spare);
}

/* ExpandMask(rho'', kappa): y_r = BitUnpack(H(rho'' || kappa + r), gamma1 - 1, gamma1).
 * The masks are made a group of `lanes` nonces at a time, aligned to multiples of the group
 * size, and the last group is kept: attempt n + 1 starts where attempt n stopped, so the
 * spare lanes of one attempt serve the next. The cache holds secrets and lives in the signing
 * state. */
typedef struct {
    poly y[XOF_LANES_MAX];
    unsigned base, lanes; /* nonce of y[0]; group size (0: empty) */
} mask_cache;

static void expand_mask(poly y[L_MAX], const uint8_t rhopp[64], unsigned kappa,
                        const mldsa_params *p, mask_cache *mc)
{
    xof_multi x;
    xof_multi_init(&x);
    for (unsigned r = 0; r < p->l; r++) {
        unsigned nonce = kappa + r, base = nonce - nonce % x.lanes;
        if (mc->lanes != x.lanes || mc->base != base) {
            for (unsigned l = 0; l < x.lanes; l++) {
                memcpy(x.seed[l], rhopp, 64);
                x.seed[l][64] = (uint8_t)(base + l);
                x.seed[l][65] = (uint8_t)((base + l) >> 8);
            }
            xof_multi_start(&x, QV_SHAKE256_RATE, 66, SHAKE256_BLOCKS_Y);
            for (unsigned l = 0; l < x.lanes; l++) {
                if (use_avx2()) /* the buffer has room past the 32 z_bits bytes it reads */
                    qv_mldsa_unpack_mask_avx2(mc->y[l].c, x.buf[l], p->z_bits, p->gamma1);
                else
                    unpack_offset(&mc->y[l], x.buf[l], p->gamma1, p->z_bits);
            }
            mc->base = base;
            mc->lanes = x.lanes;
        }
        y[r] = mc->y[nonce - base];
    }
    qv_wipe(&x, sizeof x);
}

/* ---- encodings (FIPS 204 section 7.2) ----------------------------------------------------- */

static size_t sk_s_offset(void)
{
    return 32 + 32 + 64;
}

static void w1_encode(uint8_t *out, const poly w1[K_MAX], const mldsa_params *p)
{
    for (unsigned i = 0; i < p->k; i++)
        pack_simple(out + i * 32 * p->w1_bits, &w1[i], p->w1_bits);
}

/* HintBitUnpack: 0, or -1 when the encoding is malformed (indices not strictly increasing
 * within a polynomial, counts decreasing or above omega, non-zero padding). */
static int hint_unpack(poly h[K_MAX], const uint8_t *y, const mldsa_params *p)
{
    unsigned idx = 0;
    for (unsigned i = 0; i < p->k; i++) {
        memset(&h[i], 0, sizeof h[i]);
        unsigned end = y[p->omega + i];
        if (end < idx || end > p->omega)
            return -1;
        for (unsigned m = idx; m < end; m++) {
            if (m > idx && y[m - 1] >= y[m])
                return -1;
            h[i].c[y[m]] = 1;
        }
        idx = end;
    }
    for (unsigned m = idx; m < p->omega; m++)
        if (y[m] != 0)
            return -1;
    return 0;
}

/* ---- random bytes ------------------------------------------------------------------------ */

static int random_bytes(uint8_t *out, size_t len)
{
    while (len > 0) {
        ssize_t got = getrandom(out, len, 0);
        if (got < 0)
            return PQC_ERR_RANDOM;
        out += got;
        len -= (size_t)got;
    }
    return 0;
}

/* ---- ML-DSA.KeyGen_internal (Algorithm 6) ---------------------------------------------- */

typedef struct {
    uint8_t seeds[128]; /* rho || rho' || K */
    poly a[K_MAX][L_MAX];
    poly s1[L_MAX], s1hat[L_MAX], s2[K_MAX], t[K_MAX], t1[K_MAX], t0[K_MAX];
} keygen_state;

int qv_mldsa_sizes(int alg, size_t *pk_bytes, size_t *sk_bytes, size_t *sig_bytes)
{
    const mldsa_params *p = mldsa_params_of(alg);
    if (!p)
        return PQC_ERR_ALGORITHM;
    if (pk_bytes)
        *pk_bytes = p->pk_bytes;
    if (sk_bytes)
        *sk_bytes = p->sk_bytes;
    if (sig_bytes)
        *sig_bytes = p->sig_bytes;
    return 0;
}

int qv_mldsa_keygen_seed(int alg, uint8_t *pk, uint8_t *sk, const uint8_t *xi)
{
    const mldsa_params *p = mldsa_params_of(alg);
    if (!p)
        return PQC_ERR_ALGORITHM;
    if (!pk || !sk || !xi)
        return QV_ERR_INVAL;
    keygen_state st;
    uint8_t in[34];
    memcpy(in, xi, 32);
    in[32] = (uint8_t)p->k; /* domain separation by parameter set (final FIPS 204) */
    in[33] = (uint8_t)p->l;
    shake256(st.seeds, sizeof st.seeds, in, sizeof in);
    qv_wipe(in, sizeof in);
    const uint8_t *rho = st.seeds, *rhop = st.seeds + 32, *key = st.seeds + 96;
    QV_CT_DECLASSIFY(st.seeds, 32); /* rho is part of the public key */

    expand_a(st.a, rho, p);
    expand_s(st.s1, st.s2, rhop, p);

    for (unsigned j = 0; j < p->l; j++) {
        st.s1hat[j] = st.s1[j];
        poly_ntt(&st.s1hat[j]);
    }
    for (unsigned i = 0; i < p->k; i++) {
        poly_pointwise(&st.t[i], &st.a[i][0], &st.s1hat[0]);
        for (unsigned j = 1; j < p->l; j++)
            poly_pointwise_acc(&st.t[i], &st.a[i][j], &st.s1hat[j]);
        poly_reduce(&st.t[i]);
        poly_invntt_tomont(&st.t[i]);
        for (unsigned n = 0; n < N; n++)
            st.t[i].c[n] += st.s2[i].c[n];
        poly_freeze(&st.t[i]);
        for (unsigned n = 0; n < N; n++)
            power2round(st.t[i].c[n], &st.t1[i].c[n], &st.t0[i].c[n]);
    }

    /* pkEncode(rho, t1) */
    memcpy(pk, rho, 32);
    for (unsigned i = 0; i < p->k; i++)
        pack_simple(pk + 32 + i * 320, &st.t1[i], 10);
    /* skEncode(rho, K, tr, s1, s2, t0) with tr = H(pk, 64) */
    memcpy(sk, rho, 32);
    memcpy(sk + 32, key, 32);
    shake256(sk + 64, 64, pk, p->pk_bytes);
    uint8_t *o = sk + sk_s_offset();
    const size_t sbytes = 32 * p->eta_bits;
    for (unsigned r = 0; r < p->l; r++, o += sbytes)
        pack_offset(o, &st.s1[r], (int32_t)p->eta, p->eta_bits);
    for (unsigned r = 0; r < p->k; r++, o += sbytes)
        pack_offset(o, &st.s2[r], (int32_t)p->eta, p->eta_bits);
    for (unsigned r = 0; r < p->k; r++, o += 32 * D)
        pack_offset(o, &st.t0[r], 1 << (D - 1), D);
    qv_wipe(&st, sizeof st);
    return 0;
}

int qv_mldsa_keygen(int alg, uint8_t *pk, uint8_t *sk)
{
    if (!mldsa_params_of(alg))
        return PQC_ERR_ALGORITHM;
    uint8_t xi[32];
    int rc = random_bytes(xi, sizeof xi);
    if (rc == 0)
        rc = qv_mldsa_keygen_seed(alg, pk, sk, xi);
    qv_wipe(xi, sizeof xi);
    return rc;
}

/* ---- ML-DSA.Sign_internal (Algorithm 7) --------------------------------------------------- */

typedef struct {
    uint8_t rho[32], key[32], tr[64], mu[64], rhopp[64];
    uint8_t ctilde[CTILDE_MAX];
    uint8_t w1buf[K_MAX * 32 * 6];
    poly a[K_MAX][L_MAX];
    poly s1hat[L_MAX], s2hat[K_MAX], t0hat[K_MAX];
    poly y[L_MAX], z[L_MAX];
    poly w[K_MAX], w1[K_MAX], r0[K_MAX], ct0[K_MAX], h[K_MAX];
    poly c, chat, tmp, r, r1;
    mask_cache masks;
} sign_state;

/* mu = H(tr || M', 64) with M' = 0 || len(ctx) || ctx || msg (the pure external interface). */
static void message_representative(uint8_t mu[64], const uint8_t tr[64], const uint8_t *msg,
                                   size_t msg_len, const uint8_t *ctx, size_t ctx_len)
{
    uint8_t prefix[2] = {0, (uint8_t)ctx_len};
    xof1 h;
    xof_init(&h);
    xof_absorb(&h, tr, 64);
    xof_absorb(&h, prefix, 2);
    if (ctx_len)
        xof_absorb(&h, ctx, ctx_len);
    if (msg_len)
        xof_absorb(&h, msg, msg_len);
    xof_squeeze(&h, mu, 64);
}

static int sign_internal(const mldsa_params *p, uint8_t *sig, const uint8_t *sk,
                         const uint8_t *msg, size_t msg_len, const uint8_t *ctx, size_t ctx_len,
                         const uint8_t rnd[32], sign_state *st)
{
    /* skDecode */
    memcpy(st->rho, sk, 32);
    memcpy(st->key, sk + 32, 32);
    memcpy(st->tr, sk + 64, 64);
    QV_CT_DECLASSIFY(st->rho, sizeof st->rho); /* public-key parts the secret key carries */
    QV_CT_DECLASSIFY(st->tr, sizeof st->tr);
    const uint8_t *o = sk + sk_s_offset();
    const size_t sbytes = 32 * p->eta_bits;
    for (unsigned r = 0; r < p->l; r++, o += sbytes)
        unpack_offset(&st->s1hat[r], o, (int32_t)p->eta, p->eta_bits);
    for (unsigned r = 0; r < p->k; r++, o += sbytes)
        unpack_offset(&st->s2hat[r], o, (int32_t)p->eta, p->eta_bits);
    for (unsigned r = 0; r < p->k; r++, o += 32 * D)
        unpack_offset(&st->t0hat[r], o, 1 << (D - 1), D);
    for (unsigned r = 0; r < p->l; r++)
        poly_ntt(&st->s1hat[r]);
    for (unsigned r = 0; r < p->k; r++) {
        poly_ntt(&st->s2hat[r]);
        poly_ntt(&st->t0hat[r]);
    }
    expand_a(st->a, st->rho, p);

    message_representative(st->mu, st->tr, msg, msg_len, ctx, ctx_len);
    {   /* rho'' = H(K || rnd || mu, 64) */
        xof1 h;
        xof_init(&h);
        xof_absorb(&h, st->key, 32);
        xof_absorb(&h, rnd, 32);
        xof_absorb(&h, st->mu, 64);
        xof_squeeze(&h, st->rhopp, 64);
        xof_wipe(&h);
    }

    const size_t w1_bytes = (size_t)p->k * 32 * p->w1_bits;
    for (unsigned attempt = 0, kappa = 0; attempt < SIGN_MAX_ATTEMPTS; attempt++, kappa += p->l) {
        expand_mask(st->y, st->rhopp, kappa, p, &st->masks);
        /* w = NTT^-1(A_hat o NTT(y)) */
        for (unsigned j = 0; j < p->l; j++) {
            st->z[j] = st->y[j];
            poly_ntt(&st->z[j]);
        }
        for (unsigned i = 0; i < p->k; i++) {
            poly_pointwise(&st->w[i], &st->a[i][0], &st->z[0]);
            for (unsigned j = 1; j < p->l; j++)
                poly_pointwise_acc(&st->w[i], &st->a[i][j], &st->z[j]);
            poly_reduce(&st->w[i]);
            poly_invntt_tomont(&st->w[i]);
            poly_freeze_highbits(&st->w[i], &st->w1[i], p->gamma2);
        }
        /* ctilde = H(mu || w1Encode(w1), lambda / 4); c = SampleInBall(ctilde) */
        w1_encode(st->w1buf, st->w1, p);
        {
            xof1 h;
            xof_init(&h);
            xof_absorb(&h, st->mu, 64);
            xof_absorb(&h, st->w1buf, w1_bytes);
            xof_squeeze(&h, st->ctilde, p->ctilde_bytes);
            xof_wipe(&h);
        }
        sample_in_ball(&st->c, st->ctilde, p->ctilde_bytes, p->tau);
        st->chat = st->c;
        poly_ntt(&st->chat);

        uint32_t reject = 0;
        /* z = y + c s1 */
        for (unsigned j = 0; j < p->l; j++) {
            poly_pointwise(&st->tmp, &st->chat, &st->s1hat[j]);
            poly_invntt_tomont(&st->tmp);
            reject |= poly_add_check(&st->z[j], &st->y[j], &st->tmp,
                                     p->gamma1 - (int32_t)p->beta);
        }
        uint32_t ones = 0;
        for (unsigned i = 0; i < p->k; i++) {
            /* r = w - c s2: r0 = LowBits(r) must stay below gamma2 - beta */
            poly_pointwise(&st->tmp, &st->chat, &st->s2hat[i]);
            poly_invntt_tomont(&st->tmp);
            reject |= poly_lowbits_check(&st->r, &st->r1, &st->r0[i], &st->w[i], &st->tmp,
                                         p->gamma2, p->gamma2 - (int32_t)p->beta);
            /* c t0 below gamma2, and h = MakeHint(-c t0, w - c s2 + c t0) */
            poly_pointwise(&st->ct0[i], &st->chat, &st->t0hat[i]);
            poly_invntt_tomont(&st->ct0[i]);
            poly_reduce(&st->ct0[i]);
            reject |= poly_exceeds(&st->ct0[i], p->gamma2);
            ones += poly_make_hint(&st->h[i], &st->r, &st->r1, &st->ct0[i], p->gamma2);
        }
        reject |= ((uint32_t)p->omega - ones) >> 31; /* more than omega hints */
        QV_CT_DECLASSIFY(&reject, sizeof reject);
        if (reject)
            continue;

        /* Accepted: ctilde, z and h are the signature. */
        QV_CT_DECLASSIFY(st->ctilde, p->ctilde_bytes);
        QV_CT_DECLASSIFY(st->z, sizeof st->z);
        QV_CT_DECLASSIFY(st->h, sizeof st->h);
        memcpy(sig, st->ctilde, p->ctilde_bytes);
        uint8_t *out = sig + p->ctilde_bytes;
        for (unsigned j = 0; j < p->l; j++, out += 32 * p->z_bits)
            pack_offset(out, &st->z[j], p->gamma1, p->z_bits);
        /* HintBitPack */
        memset(out, 0, p->omega + p->k);
        unsigned idx = 0;
        for (unsigned i = 0; i < p->k; i++) {
            for (unsigned n = 0; n < N; n++)
                if (st->h[i].c[n])
                    out[idx++] = (uint8_t)n;
            out[p->omega + i] = (uint8_t)idx;
        }
        return 0;
    }
    return PQC_ERR_INTERNAL;
}

int qv_mldsa_sign_rnd(int alg, uint8_t *sig, const uint8_t *sk, const uint8_t *msg,
                      size_t msg_len, const uint8_t *ctx, size_t ctx_len, const uint8_t *rnd)
{
    const mldsa_params *p = mldsa_params_of(alg);
    if (!p)
        return PQC_ERR_ALGORITHM;
    if (ctx_len > QV_MLDSA_MAX_CONTEXT)
        return PQC_ERR_CONTEXT;
    if (!sig || !sk || !rnd || (msg_len && !msg) || (ctx_len && !ctx))
        return QV_ERR_INVAL;
    sign_state st;
    st.masks.lanes = 0;
    int rc = sign_internal(p, sig, sk, msg, msg_len, ctx, ctx_len, rnd, &st);
    qv_wipe(&st, sizeof st);
    return rc;
}

int qv_mldsa_sign(int alg, uint8_t *sig, const uint8_t *sk, const uint8_t *msg, size_t msg_len,
                  const uint8_t *ctx, size_t ctx_len, int deterministic)
{
    if (!mldsa_params_of(alg))
        return PQC_ERR_ALGORITHM;
    uint8_t rnd[32] = {0};
    if (!deterministic) {
        int rc = random_bytes(rnd, sizeof rnd);
        if (rc)
            return rc;
    }
    int rc = qv_mldsa_sign_rnd(alg, sig, sk, msg, msg_len, ctx, ctx_len, rnd);
    qv_wipe(rnd, sizeof rnd);
    return rc;
}

/* ---- ML-DSA.Verify_internal (Algorithm 8) ------------------------------------------------ */

typedef struct {
    uint8_t tr[64], mu[64], ctilde2[CTILDE_MAX];
    uint8_t w1buf[K_MAX * 32 * 6];
    poly a[K_MAX][L_MAX];
    poly z[L_MAX], t1[K_MAX], h[K_MAX], w[K_MAX];
    poly c, tmp;
} verify_state;

static int verify_internal(const mldsa_params *p, const uint8_t *pk, const uint8_t *msg,
                           size_t msg_len, const uint8_t *sig, const uint8_t *ctx,
                           size_t ctx_len, verify_state *st)
{
    /* sigDecode; a malformed hint encoding is a failed verification */
    const uint8_t *ctilde = sig;
    const uint8_t *in = sig + p->ctilde_bytes;
    for (unsigned j = 0; j < p->l; j++, in += 32 * p->z_bits)
        unpack_offset(&st->z[j], in, p->gamma1, p->z_bits);
    if (hint_unpack(st->h, in, p) != 0)
        return PQC_ERR_VERIFY;
    uint32_t too_big = 0;
    for (unsigned j = 0; j < p->l; j++)
        too_big |= poly_exceeds(&st->z[j], p->gamma1 - (int32_t)p->beta);
    if (too_big)
        return PQC_ERR_VERIFY;

    /* pkDecode */
    for (unsigned i = 0; i < p->k; i++)
        unpack_simple(&st->t1[i], pk + 32 + i * 320, 10);
    expand_a(st->a, pk, p);
    shake256(st->tr, 64, pk, p->pk_bytes);
    message_representative(st->mu, st->tr, msg, msg_len, ctx, ctx_len);
    sample_in_ball(&st->c, ctilde, p->ctilde_bytes, p->tau);
    poly_ntt(&st->c);

    /* w'_approx = NTT^-1(A_hat o NTT(z) - NTT(c) o NTT(t1 2^d)); w1' = UseHint(h, w'_approx) */
    for (unsigned j = 0; j < p->l; j++)
        poly_ntt(&st->z[j]);
    for (unsigned i = 0; i < p->k; i++) {
        poly_pointwise(&st->w[i], &st->a[i][0], &st->z[0]);
        for (unsigned j = 1; j < p->l; j++)
            poly_pointwise_acc(&st->w[i], &st->a[i][j], &st->z[j]);
        for (unsigned n = 0; n < N; n++)
            st->tmp.c[n] = st->t1[i].c[n] << D;
        poly_ntt(&st->tmp);
        poly_pointwise(&st->tmp, &st->c, &st->tmp);
        for (unsigned n = 0; n < N; n++)
            st->w[i].c[n] -= st->tmp.c[n];
        poly_reduce(&st->w[i]);
        poly_invntt_tomont(&st->w[i]);
        poly_use_hint(&st->w[i], &st->h[i], p->gamma2);
    }
    w1_encode(st->w1buf, st->w, p);
    xof1 h;
    xof_init(&h);
    xof_absorb(&h, st->mu, 64);
    xof_absorb(&h, st->w1buf, (size_t)p->k * 32 * p->w1_bits);
    xof_squeeze(&h, st->ctilde2, p->ctilde_bytes);
    uint8_t diff = 0;
    for (unsigned i = 0; i < p->ctilde_bytes; i++)
        diff |= ctilde[i] ^ st->ctilde2[i];
    return diff == 0 ? 0 : PQC_ERR_VERIFY;
}

int qv_mldsa_verify(int alg, const uint8_t *pk, size_t pk_len, const uint8_t *msg,
                    size_t msg_len, const uint8_t *sig, size_t sig_len, const uint8_t *ctx,
                    size_t ctx_len)
{
    const mldsa_params *p = mldsa_params_of(alg);
    if (!p)
        return PQC_ERR_ALGORITHM;
    if (ctx_len > QV_MLDSA_MAX_CONTEXT)
        return PQC_ERR_CONTEXT;
    if (!pk || (msg_len && !msg) || (sig_len && !sig) || (ctx_len && !ctx))
        return QV_ERR_INVAL;
    if (pk_len != p->pk_bytes)
        return PQC_ERR_SIZE;
    if (sig_len != p->sig_bytes)
        return PQC_ERR_VERIFY;
    verify_state st;
    return verify_internal(p, pk, msg, msg_len, sig, ctx, ctx_len, &st);
}

/* ---- batches ------------------------------------------------------------------------------ */

int qv_mldsa_keygen_batch(int alg, size_t n, uint8_t *pks, uint8_t *sks, const uint8_t *seeds)
{
    const mldsa_params *p = mldsa_params_of(alg);
    if (!p)
        return PQC_ERR_ALGORITHM;
    if (n && (!pks || !sks))
        return QV_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        uint8_t *pk = pks + i * p->pk_bytes, *sk = sks + i * p->sk_bytes;
        int rc = seeds ? qv_mldsa_keygen_seed(alg, pk, sk, seeds + i * QV_MLDSA_SEED_BYTES)
                       : qv_mldsa_keygen(alg, pk, sk);
        if (rc)
            return rc;
    }
    return 0;
}

int qv_mldsa_sign_batch(int alg, size_t n, uint8_t *sigs, const uint8_t *sks,
                        const uint8_t *msgs, size_t msg_len, const uint8_t *ctx, size_t ctx_len,
                        int deterministic)
{
    const mldsa_params *p = mldsa_params_of(alg);
    if (!p)
        return PQC_ERR_ALGORITHM;
    if (n && (!sigs || !sks || (msg_len && !msgs)))
        return QV_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = qv_mldsa_sign(alg, sigs + i * p->sig_bytes, sks + i * p->sk_bytes,
                               msgs ? msgs + i * msg_len : NULL, msg_len, ctx, ctx_len,
                               deterministic);
        if (rc)
            return rc;
    }
    return 0;
}

int qv_mldsa_verify_batch(int alg, size_t n, uint8_t *ok, const uint8_t *pks,
                          const uint8_t *msgs, size_t msg_len, const uint8_t *sigs,
                          const uint8_t *ctx, size_t ctx_len)
{
    const mldsa_params *p = mldsa_params_of(alg);
    if (!p)
        return PQC_ERR_ALGORITHM;
    if (ctx_len > QV_MLDSA_MAX_CONTEXT)
        return PQC_ERR_CONTEXT;
    if (n && (!ok || !pks || !sigs || (msg_len && !msgs)))
        return QV_ERR_INVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = qv_mldsa_verify(alg, pks + i * p->pk_bytes, p->pk_bytes,
                                 msgs ? msgs + i * msg_len : NULL, msg_len,
                                 sigs + i * p->sig_bytes, p->sig_bytes, ctx, ctx_len);
        if (rc != 0 && rc != PQC_ERR_VERIFY)
            return rc;
        ok[i] = rc == 0;
    }
    return 0;
}
