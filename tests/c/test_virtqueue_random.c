/* Deterministic random hostile rings (always runs, under ASan/UBSan in the test build): the
 * same scenario harness as the libFuzzer target, fed by a seeded generator that builds inputs
 * which are mostly well-formed, so deep chains, indirect tables and wrap-around are reached,
 * with random corruption on top. */
#include <stdio.h>

#include "../fuzz/vq_exercise.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint8_t buf[VQX_RAM_SIZE + 4096];

static void put16(size_t *p, uint16_t v)
{
    buf[(*p)++] = (uint8_t)v;
    buf[(*p)++] = (uint8_t)(v >> 8);
}

/* An input whose RAM image holds a plausible ring: descriptors chained mostly forward,
 * a sane avail ring, then random guest writes and device operations. */
static size_t make_input(void)
{
    size_t p = 0;
    unsigned log2 = 1 + next_rand() % 8; /* 2..256 entries */
    buf[p++] = (uint8_t)log2;
    buf[p++] = (uint8_t)(next_rand() & 3);
    /* mostly steered descriptors; a third of the runs with RAM as two adjacent regions */
    buf[p++] = (uint8_t)(((next_rand() % 8 == 0) ? 1 : 2) | (next_rand() % 3 == 0 ? 4 : 0));
    if (buf[2] & 1) {
        put16(&p, (uint16_t)next_rand());
        put16(&p, (uint16_t)next_rand());
        put16(&p, (uint16_t)next_rand());
    }
    uint16_t size = (uint16_t)(1u << log2);
    size_t ram_len = 0x7000 + 8u * size;
    put16(&p, (uint16_t)ram_len);
    uint8_t *ram = buf + p;
    memset(ram, 0, ram_len);
    for (unsigned i = 0; i < size; i++) {
        uint8_t *d = ram + 16u * i;
        uint64_t addr = next_rand() % VQX_RAM_SIZE;
        if (next_rand() % 128 == 0)
            addr = next_rand(); /* wild */
        uint32_t len = (uint32_t)(next_rand() % 600);
        /* 4-entry stretches: readable, readable, writable, writable, chained within the
         * stretch, so most chains are well-formed; a few rule breakers on top */
        uint16_t flags = (uint16_t)(((i % 4 != 3) ? 1 : 0) | ((i % 4 >= 2) ? 2 : 0));
        if (next_rand() % 16 == 0)
            flags ^= (uint16_t)(1 + next_rand() % 3);
        if (i % 4 == 0 && next_rand() % 6 == 0)
            flags = 4; /* a lone indirect head */
        else if (next_rand() % 128 == 0)
            flags |= 4; /* indirect where it is not allowed */
        if (next_rand() % 64 == 0)
            flags = (uint16_t)next_rand();
        uint16_t nxt = (uint16_t)(i + 1);
        if (next_rand() % 16 == 0)
            nxt = (uint16_t)(next_rand() % (size + 2u));
        if (flags & 4) { /* an indirect table inside the buffer area */
            addr = 0x8000 + next_rand() % 0x7000;
            len = (uint32_t)(16 * (1 + next_rand() % 8));
            if (next_rand() % 16 == 0)
                len++;
        }
        memcpy(d, &addr, 8);
        memcpy(d + 8, &len, 4);
        memcpy(d + 12, &flags, 2);
        memcpy(d + 14, &nxt, 2);
    }
    /* indirect tables: random descriptors in the 0x8000.. area */
    for (size_t off = 0x8000; off + 16 <= ram_len && off < 0x8000 + 0x400; off += 16) {
        uint64_t addr = 0x100 + next_rand() % 0x7000;
        uint32_t len = (uint32_t)(next_rand() % 300);
        uint16_t flags = (uint16_t)(next_rand() % 4);
        if (next_rand() % 30 == 0)
            flags |= 4;
        uint16_t nxt = (uint16_t)((off - 0x8000) / 16 + 1);
        memcpy(ram + off, &addr, 8);
        memcpy(ram + off + 8, &len, 4);
        memcpy(ram + off + 12, &flags, 2);
        memcpy(ram + off + 14, &nxt, 2);
    }
    /* avail ring at 0x4000: idx and heads */
    unsigned overshoot = next_rand() % 32 == 0 ? 40 : 0;
    uint16_t avail_idx = (uint16_t)(next_rand() % (size + 1 + overshoot));
    memcpy(ram + 0x4002, &avail_idx, 2);
    for (unsigned i = 0; i < size; i++) {
        unsigned bad = next_rand() % 32 == 0;
        uint16_t head = (uint16_t)(next_rand() % (size + bad));
        memcpy(ram + 0x4004 + 2 * i, &head, 2);
    }
    /* a few random corruptions of the image */
    for (unsigned k = next_rand() % 4; k > 0; k--) {
        size_t at = next_rand() % ram_len;
        ram[at] = (uint8_t)next_rand();
    }
    p += ram_len;
    /* the script: mostly pops, some guest writes (idx bumps) and pushes */
    for (unsigned k = 0; k < 200 && p + 5 < sizeof buf; k++) {
        unsigned r = (unsigned)(next_rand() % 10);
        if (r < 6) {
            buf[p++] = (uint8_t)((next_rand() % 4 == 0) ? 0x84 : 0); /* 0x84: pop, complete later */
        } else if (r < 8) {
            buf[p++] = 2;
            uint16_t off = (next_rand() % 2) ? 0x4002 : (uint16_t)(next_rand() % 0x7000);
            uint16_t v = (uint16_t)(avail_idx + next_rand() % 4);
            if (off == 0x4002)
                avail_idx = v;
            else
                v = (uint16_t)next_rand();
            put16(&p, off);
            put16(&p, v);
        } else {
            buf[p++] = (uint8_t)(3 + next_rand() % 3);
            buf[p++] = (uint8_t)next_rand();
        }
    }
    return p;
}

int main(int argc, char **argv)
{
    unsigned runs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 100000;
    struct vqx_ram ram;
    if (vqx_ram_init(&ram) != 0)
        return 1;
    /* optional: write the first inputs as a seed corpus for the libFuzzer target */
    const char *seed_dir = argc > 2 ? argv[2] : NULL;
    unsigned long long popped = 0, nonempty = 0, outcome[QV_VQ_ERR_DEVICE + 2] = {0};
    for (unsigned i = 0; i < runs; i++) {
        size_t n = make_input();
        if (seed_dir && i < 64) {
            char path[4096];
            snprintf(path, sizeof path, "%s/seed-%02u", seed_dir, i);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(buf, 1, n, f) != n)
                return 1;
            fclose(f);
        }
        unsigned got = vqx_run(&ram, buf, n);
        popped += got;
        nonempty += got > 0;
        outcome[vqx_last_outcome + 1]++;
    }
    printf("outcomes (setup refused, intact, then per qv_vq_error):");
    for (unsigned i = 0; i < sizeof outcome / sizeof outcome[0]; i++)
        printf(" %llu", outcome[i]);
    printf("\n");
    printf("runs %u, chains popped %llu, runs with chains %llu\n", runs, popped, nonempty);
    /* the generator must actually reach the parsing code, not just fail at setup */
    if (popped < runs || nonempty < runs / 4) {
        printf("FAIL: too few chains parsed\n");
        return 1;
    }
    printf("PASS test_virtqueue_random\n");
    return 0;
}
