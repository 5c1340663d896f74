/* Exhaustive and randomized checks of the ML-DSA kernels against the literal FIPS 204
 * definitions: Decompose / HighBits / LowBits and UseHint for both gamma2 over every r in
 * [0, q), Power2Round over [0, q), the norm check at its bound, and NTT-domain
 * multiplication against schoolbook multiplication in Z_q[X]/(X^256 + 1). The
 * implementation is included so its static kernels can be called. */
#include <stdio.h>
#include <stdlib.h>

#include "pqc/mldsa.c"

static int failures;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            if (failures++ < 10) {                                                         \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                      \
                fprintf(stderr, __VA_ARGS__);                                              \
                fprintf(stderr, "\n");                                                     \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* r mod+- m: the representative in (-m/2, m/2] (m even). */
static int64_t mod_pm(int64_t r, int64_t m)
{
    int64_t v = ((r % m) + m) % m;
    return v > m / 2 ? v - m : v;
}

static void ref_decompose(int32_t r, int32_t gamma2, int32_t *r1, int32_t *r0)
{
    int64_t a0 = mod_pm(r, 2 * (int64_t)gamma2);
    if (r - a0 == Q - 1) {
        *r1 = 0;
        *r0 = (int32_t)(a0 - 1);
    } else {
        *r1 = (int32_t)((r - a0) / (2 * gamma2));
        *r0 = (int32_t)a0;
    }
}

static int32_t ref_use_hint(int32_t h, int32_t r, int32_t gamma2)
{
    int32_t m = (Q - 1) / (2 * gamma2), r1, r0;
    ref_decompose(r, gamma2, &r1, &r0);
    if (h == 1 && r0 > 0)
        return (r1 + 1) % m;
    if (h == 1 && r0 <= 0)
        return (r1 - 1 + m) % m;
    return r1;
}

static void check_rounding(void)
{
    const int32_t gammas[2] = {(Q - 1) / 88, (Q - 1) / 32};
    for (int g = 0; g < 2; g++) {
        int32_t gamma2 = gammas[g];
        for (int32_t r = 0; r < Q; r++) {
            int32_t r1, r0, e1, e0;
            decompose(r, gamma2, &r1, &r0);
            ref_decompose(r, gamma2, &e1, &e0);
            CHECK(r1 == e1 && r0 == e0, "decompose(%d, %d) = (%d, %d), want (%d, %d)", r,
                  gamma2, r1, r0, e1, e0);
            CHECK(highbits(r, gamma2) == e1, "highbits(%d)", r);
            for (int32_t h = 0; h < 2; h++)
                CHECK(use_hint(h, r, gamma2) == ref_use_hint(h, r, gamma2),
                      "use_hint(%d, %d, %d)", h, r, gamma2);
        }
    }
    for (int32_t r = 0; r < Q; r++) {
        int32_t r1, r0;
        power2round(r, &r1, &r0);
        int64_t e0 = mod_pm(r, 1 << D);
        CHECK(r0 == e0 && r1 == (r - e0) >> D, "power2round(%d)", r);
    }
}

static void check_norm(void)
{
    poly a;
    memset(&a, 0, sizeof a);
    const int32_t bound = (1 << 17) - 78;
    CHECK(poly_exceeds(&a, bound) == 0, "zero poly exceeds");
    a.c[77] = bound - 1;
    CHECK(poly_exceeds(&a, bound) == 0, "bound - 1 exceeds");
    a.c[77] = -(bound - 1);
    CHECK(poly_exceeds(&a, bound) == 0, "-(bound - 1) exceeds");
    a.c[77] = bound;
    CHECK(poly_exceeds(&a, bound) == 1, "bound accepted");
    a.c[77] = -bound;
    CHECK(poly_exceeds(&a, bound) == 1, "-bound accepted");
    a.c[77] = 0;
    a.c[255] = 4190208;
    CHECK(poly_exceeds(&a, bound) == 1, "(q-1)/2 accepted");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void check_ntt(void)
{
    for (int trial = 0; trial < 50; trial++) {
        poly a, b, ah, bh, c;
        int64_t want[N] = {0};
        for (int i = 0; i < N; i++) {
            a.c[i] = (int32_t)(rng() % Q);
            b.c[i] = (int32_t)(rng() % Q);
            if (trial % 2) /* small signed inputs as s1, y and c are */
                b.c[i] = (int32_t)(rng() % 9) - 4;
        }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                int64_t prod = (int64_t)a.c[i] * b.c[j] % Q;
                if (i + j < N)
                    want[i + j] = (want[i + j] + prod) % Q;
                else
                    want[i + j - N] = (want[i + j - N] - prod) % Q;
            }
        ah = a;
        bh = b;
        poly_ntt(&ah);
        poly_ntt(&bh);
        poly_pointwise(&c, &ah, &bh);
        poly_reduce(&c);
        poly_invntt_tomont(&c);
        poly_freeze(&c);
        for (int i = 0; i < N; i++) {
            int64_t w = (want[i] % Q + Q) % Q;
            CHECK(c.c[i] == w, "ntt product trial %d coefficient %d: %d want %lld", trial, i,
                  c.c[i], (long long)w);
        }
    }
}

/* The AVX2 kernels give exactly the portable results, including at the input bounds. */
static void check_avx2_matches_portable(void)
{
    if (qv_mldsa_path() < QV_MLDSA_PATH_AVX2) {
        printf("no AVX2 on this CPU: AVX2 kernels not compared\n");
        return;
    }
    for (int trial = 0; trial < 2000; trial++) {
        poly a, b, p1, p2;
        for (int i = 0; i < N; i++) {
            /* inputs up to q in absolute value, extremes included */
            int32_t v = (int32_t)(rng() % (2 * Q - 1)) - (Q - 1);
            if (trial < 4)
                v = trial == 0   ? Q - 1
                    : trial == 1 ? -(Q - 1)
                    : trial == 2 ? 0
                                 : (i & 1 ? Q - 1 : -(Q - 1));
            a.c[i] = v;
            b.c[i] = (int32_t)(rng() % (18 * Q + 1)) - 9 * Q; /* NTT outputs: |b| < 9q */
        }
        p1 = a;
        p2 = a;
        poly_ntt_portable(&p1);
        qv_mldsa_ntt_avx2(p2.c);
        CHECK(memcmp(&p1, &p2, sizeof p1) == 0, "ntt avx2 differs (trial %d)", trial);
        p1 = a;
        p2 = a;
        poly_invntt_tomont_portable(&p1);
        qv_mldsa_invntt_tomont_avx2(p2.c);
        CHECK(memcmp(&p1, &p2, sizeof p1) == 0, "invntt avx2 differs (trial %d)", trial);
        poly_pointwise_portable(&p1, &a, &b);
        qv_mldsa_pointwise_avx2(p2.c, a.c, b.c);
        CHECK(memcmp(&p1, &p2, sizeof p1) == 0, "pointwise avx2 differs (trial %d)", trial);
        poly_pointwise_acc_portable(&p1, &b, &a);
        qv_mldsa_pointwise_acc_avx2(p2.c, b.c, a.c);
        CHECK(memcmp(&p1, &p2, sizeof p1) == 0, "pointwise_acc avx2 differs (trial %d)", trial);
        if (qv_mldsa_path() >= QV_MLDSA_PATH_AVX512) {
            poly p3 = a;
            p1 = a;
            poly_ntt_portable(&p1);
            qv_mldsa_ntt_avx512(p3.c);
            CHECK(memcmp(&p1, &p3, sizeof p1) == 0, "ntt avx512 differs (trial %d)", trial);
            p1 = a;
            p3 = a;
            poly_invntt_tomont_portable(&p1);
            qv_mldsa_invntt_tomont_avx512(p3.c);
            CHECK(memcmp(&p1, &p3, sizeof p1) == 0, "invntt avx512 differs (trial %d)", trial);
            poly_pointwise_portable(&p1, &a, &b);
            qv_mldsa_pointwise_avx512(p3.c, a.c, b.c);
            CHECK(memcmp(&p1, &p3, sizeof p1) == 0, "pointwise avx512 differs (trial %d)", trial);
            poly_pointwise_acc_portable(&p1, &b, &a);
            qv_mldsa_pointwise_acc_avx512(p3.c, b.c, a.c);
            CHECK(memcmp(&p1, &p3, sizeof p1) == 0, "pointwise_acc avx512 differs (%d)", trial);
        }
    }
    for (int trial = 0; trial < 3000; trial++) {
        uint8_t ctilde[64];
        for (unsigned i = 0; i < sizeof ctilde; i++)
            ctilde[i] = (uint8_t)rng();
        const unsigned taus[3] = {39, 49, 60};
        poly c1, c2;
        qv_mldsa_set_path_limit(QV_MLDSA_PATH_PORTABLE);
        sample_in_ball(&c1, ctilde, 32 + 16 * (trial % 3), taus[trial % 3]);
        qv_mldsa_set_path_limit(-1);
        sample_in_ball(&c2, ctilde, 32 + 16 * (trial % 3), taus[trial % 3]);
        CHECK(memcmp(&c1, &c2, sizeof c1) == 0, "sample_in_ball avx2 differs (trial %d)", trial);
        int weight = 0;
        for (int n = 0; n < N; n++) {
            CHECK(c1.c[n] >= -1 && c1.c[n] <= 1, "sample_in_ball coefficient out of range");
            weight += c1.c[n] != 0;
        }
        CHECK(weight == (int)taus[trial % 3], "sample_in_ball weight %d", weight);
    }
    /* RejNTTPoly parsing: random streams, with high bytes biased so rejections happen often,
     * and every starting count */
    for (int trial = 0; trial < 3000; trial++) {
        uint8_t buf[5 * 168];
        for (unsigned i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)rng();
        if (trial % 2)
            for (unsigned i = 2; i < sizeof buf; i += 3)
                buf[i] |= (uint8_t)(rng() & 0x7f) | 0x7f;
        unsigned start = (unsigned)(trial % 257);
        size_t len = (size_t)3 * (rng() % (sizeof buf / 3 + 1));
        poly p1, p2;
        memset(&p1, 0, sizeof p1);
        memset(&p2, 0, sizeof p2);
        qv_mldsa_set_path_limit(QV_MLDSA_PATH_PORTABLE);
        unsigned n1 = rej_uniform(&p1, start, buf, len);
        qv_mldsa_set_path_limit(-1);
        unsigned n2 = rej_uniform(&p2, start, buf, len);
        CHECK(n1 == n2 && memcmp(p1.c, p2.c, sizeof(int32_t) * n1) == 0,
              "rej_uniform avx2 differs (trial %d: %u vs %u)", trial, n1, n2);
    }
    for (int trial = 0; trial < 1000; trial++) { /* ExpandMask's unpacking, 18 and 20 bits */
        uint8_t buf[32 * 20 + 32];
        for (unsigned i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)rng();
        unsigned bits = trial % 2 ? 20 : 18;
        int32_t gamma1 = 1 << (bits - 1);
        poly y1, y2;
        unpack_offset(&y1, buf, gamma1, bits);
        qv_mldsa_unpack_mask_avx2(y2.c, buf, bits, gamma1);
        CHECK(memcmp(&y1, &y2, sizeof y1) == 0, "unpack_mask avx2 differs (%u bits)", bits);
    }
    for (int trial = 0; trial < 200; trial++) { /* packing round trips for every width */
        const unsigned widths[] = {3, 4, 6, 10, 13, 18, 20};
        unsigned bits = widths[trial % 7];
        uint32_t v[N], w[N];
        uint8_t packed[32 * 20];
        for (int i = 0; i < N; i++)
            v[i] = rng() & ((1u << bits) - 1);
        pack_bits(packed, v, bits);
        unpack_bits(w, packed, bits);
        CHECK(memcmp(v, w, sizeof v) == 0, "pack/unpack %u bits", bits);
        /* bit i*bits+k of the stream is bit k of v[i], little-endian */
        for (unsigned k = 0; k < 8 * 32 * bits; k += 37)
            CHECK(((packed[k / 8] >> (k % 8)) & 1) == ((v[k / bits] >> (k % bits)) & 1),
                  "bit %u of a %u-bit packing", k, bits);
    }
    printf("AVX2 kernels equal the portable ones\n");
}

/* Each lane of the four-way sponge equals the scalar SHAKE of its input, for input lengths
 * around the rate and several output blocks. */
static void check_keccak_x4(void)
{
    static uint8_t in[4][400], got[4][3 * 168], want[3 * 168];
    const unsigned rates[2] = {QV_SHAKE128_RATE, QV_SHAKE256_RATE};
    const size_t lens[] = {0, 1, 34, 66, 135, 136, 137, 167, 168, 169, 300, 400};
    for (int path = 0; path <= QV_MLDSA_PATH_AVX512; path++) {
        qv_mldsa_set_path_limit(path);
        if (qv_mldsa_path() != path)
            continue; /* the CPU lacks it */
        for (unsigned r = 0; r < 2; r++) {
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                for (unsigned l = 0; l < 4; l++)
                    for (size_t i = 0; i < sizeof in[l]; i++)
                        in[l][i] = (uint8_t)rng();
                const uint8_t *ins[4] = {in[0], in[1], in[2], in[3]};
                uint8_t *outs[4] = {got[0], got[1], got[2], got[3]};
                qv_keccakx4 st;
                qv_keccakx4_absorb(&st, qv_mldsa_keccak_level(), rates[r], 0x1F, ins, lens[li]);
                qv_keccakx4_squeeze_blocks(&st, qv_mldsa_keccak_level(), rates[r], outs, 2);
                uint8_t *more[4] = {got[0] + 2 * rates[r], got[1] + 2 * rates[r],
                                    got[2] + 2 * rates[r], got[3] + 2 * rates[r]};
                qv_keccakx4_squeeze_blocks(&st, qv_mldsa_keccak_level(), rates[r], more, 1);
                for (unsigned l = 0; l < 4; l++) {
                    if (rates[r] == QV_SHAKE128_RATE)
                        qv_shake128(want, 3 * rates[r], in[l], lens[li]);
                    else
                        qv_shake256(want, 3 * rates[r], in[l], lens[li]);
                    CHECK(memcmp(want, got[l], 3 * rates[r]) == 0,
                          "keccak x4 (path %d) rate %u len %zu lane %u differs", path,
                          rates[r], lens[li], l);
                }
            }
        }
    }
    /* The eight-way sponge, on the AVX-512 path and the portable fallback. */
    for (int path = QV_MLDSA_PATH_PORTABLE; path <= QV_MLDSA_PATH_AVX512; path += 2) {
        qv_mldsa_set_path_limit(path);
        if (qv_mldsa_path() != path)
            continue;
        for (unsigned r = 0; r < 2; r++) {
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                static uint8_t in8[8][400], got8[8][3 * 168];
                const uint8_t *ins[8];
                uint8_t *outs[8], *more[8];
                for (unsigned l = 0; l < 8; l++) {
                    for (size_t i = 0; i < sizeof in8[l]; i++)
                        in8[l][i] = (uint8_t)rng();
                    ins[l] = in8[l];
                    outs[l] = got8[l];
                    more[l] = got8[l] + 2 * rates[r];
                }
                qv_keccakx8 st8;
                qv_keccakx8_absorb(&st8, qv_mldsa_keccak_level(), rates[r], 0x1F, ins, lens[li]);
                qv_keccakx8_squeeze_blocks(&st8, qv_mldsa_keccak_level(), rates[r], outs, 2);
                qv_keccakx8_squeeze_blocks(&st8, qv_mldsa_keccak_level(), rates[r], more, 1);
                for (unsigned l = 0; l < 8; l++) {
                    if (rates[r] == QV_SHAKE128_RATE)
                        qv_shake128(want, 3 * rates[r], in8[l], lens[li]);
                    else
                        qv_shake256(want, 3 * rates[r], in8[l], lens[li]);
                    CHECK(memcmp(want, got8[l], 3 * rates[r]) == 0,
                          "keccak x8 (path %d) rate %u len %zu lane %u differs", path,
                          rates[r], lens[li], l);
                }
            }
        }
    }
    qv_mldsa_set_path_limit(-1);

    /* The single-stream SHAKE256 (lane 0 of the four-way permutation on AVX2 and up): pieces
     * of every size absorbed incrementally, output squeezed in pieces too. */
    for (int path = 0; path <= QV_MLDSA_PATH_AVX512; path++) {
        qv_mldsa_set_path_limit(path);
        if (qv_mldsa_path() != path)
            continue;
        for (int trial = 0; trial < 300; trial++) {
            static uint8_t xmsg[3000], xwant[700], xgot[700];
            size_t len = rng() % sizeof xmsg, outlen = 1 + rng() % sizeof xwant;
            for (size_t i = 0; i < len; i++)
                xmsg[i] = (uint8_t)rng();
            qv_shake256(xwant, outlen, xmsg, len);
            xof1 h;
            xof_init(&h);
            for (size_t off = 0; off < len;) {
                size_t piece = 1 + rng() % 200;
                if (piece > len - off)
                    piece = len - off;
                xof_absorb(&h, xmsg + off, piece);
                off += piece;
            }
            for (size_t off = 0; off < outlen;) {
                size_t piece = 1 + rng() % 150;
                if (piece > outlen - off)
                    piece = outlen - off;
                xof_squeeze(&h, xgot + off, piece);
                off += piece;
            }
            CHECK(memcmp(xwant, xgot, outlen) == 0, "xof1 (path %d) differs: len %zu out %zu",
                  path, len, outlen);
        }
    }
    qv_mldsa_set_path_limit(-1);
}

int main(void)
{
    check_keccak_x4();
    check_rounding();
    check_norm();
    for (int path = 0; path <= QV_MLDSA_PATH_AVX512; path++) { /* NTT product on each path */
        qv_mldsa_set_path_limit(path);
        check_ntt();
    }
    qv_mldsa_set_path_limit(-1);
    check_avx2_matches_portable();
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("ML-DSA kernels: rounding exhaustive, norm bound, NTT products, 4/8-way SHAKE: OK\n");
    return 0;
}
