/* A freestanding test guest with a minimal virtio-pci driver for virtio-blk.
 *
 * It scans bus 0 through configuration mechanism 1 (0xcf8/0xcfc), checks the host bridge,
 * finds the virtio-blk function, sizes its BAR and assigns it an address of its own choosing,
 * walks the capability list, enables MSI-X (vectors 0x40 config, 0x41 queue, delivered to the
 * LAPIC), negotiates features, sets up queue 0 and then, by mode (u32 at 0x7000):
 *   0: read, write + read back, flush, discard, GET_ID; every check a result-port record;
 *   1: hostile rings (buffer outside guest RAM, a descriptor loop, a ring outside RAM): each
 *      must leave the device in DEVICE_NEEDS_RESET with a configuration interrupt, and a reset
 *      plus re-initialisation must bring it back (a good read afterwards);
 *   2: endless writes (sector 16 + i % 1024, pattern of i) with a flush after every 8, the
 *      count of flushed writes recorded at 0x7100 (the host kills the VMM meanwhile);
 *   3: plaintext pattern (the encrypted-disk tests): write PARAM_WRITE_BLOCKS 4 KiB blocks of
 *      readable text (pattern_text) from sector PARAM_WRITE_FIRST, flush, read them back and
 *      compare; then read PARAM_READ_BLOCKS 4 KiB blocks from sector PARAM_READ_FIRST and
 *      record each one's status and FNV-1a hash at BLOCK_RESULTS (not stopping at errors).
 * The exit status (debug-exit port) is 0 on success or the number of the failed check. */
#include <stdint.h>

#define RESULT_PORT 0xf8
#define PARAM_MODE ((volatile uint32_t *)0x7000)
#define PARAM_WRITES_DONE ((volatile uint32_t *)0x7100)
#define PARAM_WRITE_FIRST ((volatile uint32_t *)0x7004)
#define PARAM_WRITE_BLOCKS ((volatile uint32_t *)0x7008)
#define PARAM_READ_FIRST ((volatile uint32_t *)0x700c)
#define PARAM_READ_BLOCKS ((volatile uint32_t *)0x7010)
#define MAX_BLOCKS 512u
/* per probed block: u32 status (0xee: not done), u32 FNV-1a of the data read */
#define BLOCK_RESULTS 0x8000ull

#define BAR_ADDR 0xc8000000ull  /* our own choice inside the 32-bit window */
#define LAPIC 0xfee00000ull
#define QSIZE 8u

#define DESC_ADDR 0x300000ull
#define AVAIL_ADDR 0x301000ull
#define USED_ADDR 0x302000ull
#define HDR_ADDR 0x310000ull
#define DATA_ADDR 0x320000ull
#define STATUS_ADDR 0x330000ull
#define ID_ADDR 0x331000ull

#define VIRTIO_F_VERSION_1 32
#define BLK_F_FLUSH 9
#define BLK_F_DISCARD 13

static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void barrier(void) { __asm__ volatile("mfence" ::: "memory"); }

#define R8(a) (*(volatile uint8_t *)(uintptr_t)(a))
#define R16(a) (*(volatile uint16_t *)(uintptr_t)(a))
#define R32(a) (*(volatile uint32_t *)(uintptr_t)(a))
#define R64(a) (*(volatile uint64_t *)(uintptr_t)(a))

static volatile uint32_t irq_count[2];

void guest_irq(uint32_t vec)
{
    irq_count[vec - 0x40]++;
    R32(LAPIC + 0xb0) = 0; /* EOI */
}

static void result(uint32_t v) { outl(RESULT_PORT, v); }

static uint32_t cfg_read(unsigned dev, unsigned off)
{
    outl(0xcf8, 0x80000000u | (dev << 11) | (off & 0xfc));
    return inl(0xcfc);
}

static void cfg_write(unsigned dev, unsigned off, uint32_t v)
{
    outl(0xcf8, 0x80000000u | (dev << 11) | (off & 0xfc));
    outl(0xcfc, v);
}

static void *memset_(void *d, int c, uint64_t n)
{
    uint8_t *p = d;
    while (n--)
        *p++ = (uint8_t)c;
    return d;
}

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };

static uint64_t common, notify, device_cfg, msix_table;
static uint32_t notify_mult;
static unsigned slot;
static uint16_t avail_idx, used_seen;

static int find_caps(void)
{
    unsigned ptr = cfg_read(slot, 0x34) & 0xff;
    int found = 0;
    for (int guard = 0; ptr && guard < 48; guard++) {
        uint32_t head = cfg_read(slot, ptr);
        uint8_t id = head & 0xff, next = (head >> 8) & 0xff;
        if (id == 0x09) {
            uint8_t type = (head >> 24) & 0xff;
            uint32_t off = cfg_read(slot, ptr + 8);
            uint64_t at = BAR_ADDR + off;
            if (type == 1) { common = at; found |= 1; }
            if (type == 2) { notify = at; notify_mult = cfg_read(slot, ptr + 16); found |= 2; }
            if (type == 4) { device_cfg = at; found |= 4; }
        } else if (id == 0x11) {
            msix_table = BAR_ADDR + (cfg_read(slot, ptr + 4) & ~7u);
            /* enable MSI-X (message control bit 15), function unmasked */
            cfg_write(slot, ptr, (head & 0xffff) | (0x8000u << 16));
            found |= 8;
        }
        ptr = next;
    }
    return found == 15;
}

static void wait_irq(unsigned which, uint32_t before)
{
    for (;;) {
        __asm__ volatile("cli");
        if (irq_count[which] != before)
            break;
        __asm__ volatile("sti; hlt");
    }
    __asm__ volatile("sti");
}

/* Reset, negotiate, set up queue 0 with rings at the given addresses. Returns 0 or a check
 * number. */
static int init_device(uint64_t desc, int expect_ok)
{
    R8(common + 0x14) = 0;
    if (R8(common + 0x14) != 0)
        return 20;
    R8(common + 0x14) = 1;
    R8(common + 0x14) = 1 | 2;
    R32(common + 0x00) = 0;
    uint32_t f0 = R32(common + 0x04);
    R32(common + 0x00) = 1;
    uint32_t f1 = R32(common + 0x04);
    if (!(f1 & 1) || !(f0 & (1u << BLK_F_FLUSH)) || !(f0 & (1u << BLK_F_DISCARD)))
        return 21;
    R32(common + 0x08) = 0;
    R32(common + 0x0c) = (1u << BLK_F_FLUSH) | (1u << BLK_F_DISCARD);
    R32(common + 0x08) = 1;
    R32(common + 0x0c) = 1; /* VERSION_1 */
    R8(common + 0x14) = 1 | 2 | 8;
    if (!(R8(common + 0x14) & 8))
        return 22;
    R16(common + 0x10) = 0; /* config vector */
    if (R16(common + 0x10) != 0)
        return 23;
    R16(common + 0x16) = 0;
    if (R16(common + 0x18) < QSIZE)
        return 24;
    R16(common + 0x18) = QSIZE;
    R16(common + 0x1a) = 1;
    R64(common + 0x20) = desc;
    R64(common + 0x28) = AVAIL_ADDR;
    R64(common + 0x30) = USED_ADDR;
    memset_((void *)AVAIL_ADDR, 0, 0x1000);
    memset_((void *)USED_ADDR, 0, 0x1000);
    avail_idx = used_seen = 0;
    R16(common + 0x1c) = 1;
    R8(common + 0x14) = 1 | 2 | 8 | 4;
    uint8_t st = R8(common + 0x14);
    if (expect_ok && st != (1 | 2 | 8 | 4))
        return 25;
    return 0;
}

/* Post a request as descriptors 0..2 (header, optional data, status) and wait for it. */
static int request(uint32_t type, uint64_t sector, uint64_t data, uint32_t len, int data_in,
                   uint8_t *status_out)
{
    volatile struct desc *d = (volatile struct desc *)DESC_ADDR;
    R32(HDR_ADDR) = type;
    R32(HDR_ADDR + 4) = 0;
    R64(HDR_ADDR + 8) = sector;
    R8(STATUS_ADDR) = 0xee;
    d[0] = (struct desc){HDR_ADDR, 16, 1, 1};
    unsigned n = 1;
    if (len) {
        d[1] = (struct desc){data, len, (uint16_t)(1 | (data_in ? 2 : 0)), 2};
        n = 2;
    } else {
        d[0].next = 2;
    }
    d[2] = (struct desc){STATUS_ADDR, 1, 2, 0};
    (void)n;
    R16(AVAIL_ADDR + 4 + 2 * (avail_idx % QSIZE)) = 0;
    barrier();
    avail_idx++;
    R16(AVAIL_ADDR + 2) = avail_idx;
    barrier();
    uint32_t before = irq_count[1];
    R16(notify + 0 * notify_mult) = 0;
    wait_irq(1, before);
    if (R16(USED_ADDR + 2) != (uint16_t)(used_seen + 1))
        return 30;
    used_seen++;
    *status_out = R8(STATUS_ADDR);
    return 0;
}

static uint8_t pattern_initial(uint64_t sector, unsigned i) { return (uint8_t)(sector * 13 + i); }

static int normal_mode(void)
{
    uint8_t st;
    uint64_t capacity = R64(device_cfg);
    result((uint32_t)capacity); /* in 512-byte sectors */
    /* read sectors 2..3: the host's initial pattern */
    if (request(0, 2, DATA_ADDR, 1024, 1, &st) || st != 0)
        return 40;
    for (unsigned i = 0; i < 1024; i++)
        if (R8(DATA_ADDR + i) != pattern_initial(2 + i / 512, i % 512))
            return 41;
    result(0x200);
    /* write sectors 8..15, read them back */
    for (unsigned i = 0; i < 4096; i++)
        R8(DATA_ADDR + i) = (uint8_t)(0xa5 ^ i ^ (i >> 8));
    if (request(1, 8, DATA_ADDR, 4096, 0, &st) || st != 0)
        return 42;
    memset_((void *)DATA_ADDR, 0, 4096);
    if (request(0, 8, DATA_ADDR, 4096, 1, &st) || st != 0)
        return 43;
    for (unsigned i = 0; i < 4096; i++)
        if (R8(DATA_ADDR + i) != (uint8_t)(0xa5 ^ i ^ (i >> 8)))
            return 44;
    result(0x300);
    if (request(4, 0, 0, 0, 0, &st) || st != 0)
        return 45;
    result(0x400);
    /* discard one whole 64 KiB cluster (sectors 128..255): reads back as zeros */
    R64(DATA_ADDR + 0x1000) = 128;
    R32(DATA_ADDR + 0x1008) = 128;
    R32(DATA_ADDR + 0x100c) = 0;
    if (request(11, 0, DATA_ADDR + 0x1000, 16, 0, &st) || st != 0)
        return 46;
    memset_((void *)DATA_ADDR, 0xff, 4096);
    if (request(0, 128, DATA_ADDR, 4096, 1, &st) || st != 0)
        return 47;
    for (unsigned i = 0; i < 4096; i++)
        if (R8(DATA_ADDR + i) != 0)
            return 48;
    result(0x500);
    /* an out-of-range read fails with IOERR, the device stays usable */
    if (request(0, capacity, DATA_ADDR, 512, 1, &st) || st != 1)
        return 49;
    result(0x600);
    memset_((void *)ID_ADDR, 0, 32);
    if (request(8, 0, ID_ADDR, 20, 1, &st) || st != 0)
        return 50;
    result(R32(ID_ADDR));
    result(irq_count[1]);
    return 0;
}

static int expect_needs_reset(uint32_t cfg_irqs_before, int check)
{
    wait_irq(0, cfg_irqs_before);
    uint8_t s = R8(common + 0x14);
    result(0x1000 | s);
    if (!(s & 0x40))
        return check;
    return 0;
}

static int good_read(int check)
{
    uint8_t st;
    if (request(0, 2, DATA_ADDR, 512, 1, &st) || st != 0)
        return check;
    for (unsigned i = 0; i < 512; i++)
        if (R8(DATA_ADDR + i) != pattern_initial(2, i))
            return check + 1;
    return 0;
}

static void post_raw(void)
{
    R16(AVAIL_ADDR + 4 + 2 * (avail_idx % QSIZE)) = 0;
    barrier();
    avail_idx++;
    R16(AVAIL_ADDR + 2) = avail_idx;
    barrier();
    R16(notify) = 0;
}

static int hostile_mode(void)
{
    volatile struct desc *d = (volatile struct desc *)DESC_ADDR;
    int rc;
    /* 1: a data buffer far outside guest RAM */
    uint32_t before = irq_count[0];
    R32(HDR_ADDR) = 0;
    R64(HDR_ADDR + 8) = 0;
    d[0] = (struct desc){HDR_ADDR, 16, 1, 1};
    d[1] = (struct desc){0x4000000000ull, 512, 1 | 2, 2};
    d[2] = (struct desc){STATUS_ADDR, 1, 2, 0};
    post_raw();
    if ((rc = expect_needs_reset(before, 60)))
        return rc;
    if (R16(USED_ADDR + 2) != 0)
        return 61;
    if ((rc = init_device(DESC_ADDR, 1)) || (rc = good_read(62)))
        return rc;
    result(0x2001);
    /* 2: a descriptor chain that loops */
    before = irq_count[0];
    d[0] = (struct desc){HDR_ADDR, 16, 1, 1};
    d[1] = (struct desc){DATA_ADDR, 512, 1 | 2, 0};
    post_raw();
    if ((rc = expect_needs_reset(before, 64)))
        return rc;
    if ((rc = init_device(DESC_ADDR, 1)) || (rc = good_read(65)))
        return rc;
    result(0x2002);
    /* 3: a descriptor table outside guest RAM, caught at queue enable */
    if ((rc = init_device(0x7ff00000000ull, 0)))
        return rc;
    uint8_t s = R8(common + 0x14);
    result(0x1000 | s);
    if (!(s & 0x40))
        return 67;
    if ((rc = init_device(DESC_ADDR, 1)) || (rc = good_read(68)))
        return rc;
    result(0x2003);
    return 0;
}

static int crash_mode(void)
{
    uint8_t st;
    for (uint32_t i = 0;; i++) {
        for (unsigned b = 0; b < 4096; b++)
            R8(DATA_ADDR + b) = (uint8_t)(i * 31 + b);
        R32(DATA_ADDR) = i;
        if (request(1, 16 + (i % 1024) * 8, DATA_ADDR, 4096, 0, &st) || st != 0)
            return 70;
        if (i % 8 == 7) {
            if (request(4, 0, 0, 0, 0, &st) || st != 0)
                return 71;
            *PARAM_WRITES_DONE = i + 1;
        }
    }
}

/* 64 lines of 64 bytes: "QVGUEST plaintext block=XXXXXXXX line=YY " padded with '.' to 63,
 * then '\n' (the host builds the same bytes to look for them in the image file). */
static void pattern_text(uint8_t *p, uint32_t block)
{
    static const char head[] = "QVGUEST plaintext block=";
    static const char hex[] = "0123456789abcdef";
    for (unsigned line = 0; line < 64; line++, p += 64) {
        unsigned n = 0;
        for (; head[n]; n++)
            p[n] = (uint8_t)head[n];
        for (int d = 7; d >= 0; d--)
            p[n++] = (uint8_t)hex[(block >> (4 * d)) & 15];
        const char *l = " line=";
        while (*l)
            p[n++] = (uint8_t)*l++;
        p[n++] = (uint8_t)hex[line >> 4];
        p[n++] = (uint8_t)hex[line & 15];
        p[n++] = ' ';
        while (n < 63)
            p[n++] = '.';
        p[63] = '\n';
    }
}

static uint32_t fnv1a(const volatile uint8_t *p, unsigned n)
{
    uint32_t h = 2166136261u;
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

static int pattern_mode(void)
{
    uint8_t st;
    uint32_t wfirst = *PARAM_WRITE_FIRST, wblocks = *PARAM_WRITE_BLOCKS;
    uint32_t rfirst = *PARAM_READ_FIRST, rblocks = *PARAM_READ_BLOCKS;
    if (wblocks > MAX_BLOCKS || rblocks > MAX_BLOCKS)
        return 80;
    for (uint32_t b = 0; b < wblocks; b++) {
        pattern_text((uint8_t *)DATA_ADDR, b);
        if (request(1, wfirst + 8ull * b, DATA_ADDR, 4096, 0, &st) || st != 0)
            return 81;
    }
    if (request(4, 0, 0, 0, 0, &st) || st != 0)
        return 82;
    for (uint32_t b = 0; b < wblocks; b++) {
        memset_((void *)DATA_ADDR, 0, 4096);
        if (request(0, wfirst + 8ull * b, DATA_ADDR, 4096, 1, &st) || st != 0)
            return 83;
        pattern_text((uint8_t *)(DATA_ADDR + 0x1000), b);
        for (unsigned i = 0; i < 4096; i++)
            if (R8(DATA_ADDR + i) != R8(DATA_ADDR + 0x1000 + i))
                return 84;
    }
    result(0x3000 | wblocks);
    for (uint32_t b = 0; b < rblocks; b++) {
        memset_((void *)DATA_ADDR, 0, 4096);
        R32(BLOCK_RESULTS + 8 * b) = 0xee;
        if (request(0, rfirst + 8ull * b, DATA_ADDR, 4096, 1, &st))
            return 85;
        R32(BLOCK_RESULTS + 8 * b) = st;
        R32(BLOCK_RESULTS + 8 * b + 4) = fnv1a((const volatile uint8_t *)DATA_ADDR, 4096);
    }
    result(0x4000 | rblocks);
    return 0;
}

int guest_main(void)
{
    /* the LAPIC: software enable, spurious vector 0xff */
    R32(LAPIC + 0xf0) = 0x1ff;
    R32(LAPIC + 0x80) = 0;
    uint32_t id0 = cfg_read(0, 0);
    result(id0);
    if (id0 != 0x29c08086u || (cfg_read(0, 8) >> 8) != 0x060000)
        return 1;
    slot = 0;
    for (unsigned dev = 1; dev < 32; dev++) {
        uint32_t id = cfg_read(dev, 0);
        if (id == 0x10421af4u) {
            slot = dev;
            break;
        }
    }
    result(slot);
    if (!slot)
        return 2;
    /* size BAR 0 (64-bit memory) */
    cfg_write(slot, 0x04, 0);
    cfg_write(slot, 0x10, 0xffffffffu);
    cfg_write(slot, 0x14, 0xffffffffu);
    uint32_t lo = cfg_read(slot, 0x10), hi = cfg_read(slot, 0x14);
    if ((lo & 7) != 4)
        return 3;
    uint64_t size = ~(((uint64_t)hi << 32) | (lo & ~0xfu)) + 1;
    result((uint32_t)size);
    if (size < 0x6000 || (size & (size - 1)))
        return 4;
    cfg_write(slot, 0x10, (uint32_t)BAR_ADDR);
    cfg_write(slot, 0x14, 0);
    cfg_write(slot, 0x04, 0x6); /* memory + bus master */
    if (!find_caps())
        return 5;
    /* MSI-X table: entry 0 -> vector 0x40, entry 1 -> 0x41, both to APIC 0, unmasked */
    for (unsigned v = 0; v < 2; v++) {
        R32(msix_table + 16 * v + 0) = 0xfee00000u;
        R32(msix_table + 16 * v + 4) = 0;
        R32(msix_table + 16 * v + 8) = 0x40 + v;
        R32(msix_table + 16 * v + 12) = 0;
    }
    __asm__ volatile("sti");
    int rc = init_device(DESC_ADDR, 1);
    if (rc)
        return rc;
    uint32_t mode = *PARAM_MODE;
    if (mode == 1)
        return hostile_mode();
    if (mode == 2)
        return crash_mode();
    if (mode == 3)
        return pattern_mode();
    return normal_mode();
}
