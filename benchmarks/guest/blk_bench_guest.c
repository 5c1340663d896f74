/* A freestanding guest that measures virtio-blk from the inside, the same binary under
 * QuantaVirt and under QEMU (benchmarks/bench_guest_io.py).
 *
 * It finds the modern virtio-blk function (1af4:1042) on bus 0 through 0xcf8/0xcfc, keeps the
 * BARs the firmware / VMM assigned (assigns the unassigned ones), walks the virtio capabilities
 * (wherever their BARs are: QuantaVirt has everything in BAR 0, QEMU in BAR 4), negotiates
 * VERSION_1 only, sets up queue 0 with interrupts off (the driver polls the used ring, so the
 * two VMMs are compared on the request path, not on interrupt delivery) and keeps DEPTH
 * requests in flight, kicking only when the device asks for it (VRING_USED_F_NO_NOTIFY).
 *
 * Workloads: sequential and random 4 KiB reads and writes, sequential 1 MiB reads and writes.
 * Each prints "S <name>" on COM1 before its first request and "E <name> <count> <bytes>"
 * after its last completion; the host timestamps the lines. Counts come from the command
 * line ("n4k=<requests> n1m=<requests>"). Exit status 0, or the number of the failed step. */
#include <stdint.h>

#define COM1 0x3f8
#define DEPTH 16u
#define MAX_QSIZE 128u

#define DESC_ADDR 0x300000ull
#define AVAIL_ADDR 0x301000ull
#define USED_ADDR 0x302000ull
#define HDR_ADDR 0x310000ull
#define STATUS_ADDR 0x318000ull
#define DATA_ADDR 0x1000000ull /* DEPTH x 1 MiB */
#define BAR_WINDOW 0xd0000000ull

#define R8(a) (*(volatile uint8_t *)(uintptr_t)(a))
#define R16(a) (*(volatile uint16_t *)(uintptr_t)(a))
#define R32(a) (*(volatile uint32_t *)(uintptr_t)(a))

static inline void outb(uint16_t p, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(p)); }
static inline uint8_t inb(uint16_t p) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline void outl(uint16_t p, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(p)); }
static inline uint32_t inl(uint16_t p) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline void barrier(void) { __asm__ volatile("mfence" ::: "memory"); }

static void putc_(char c)
{
    for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
        ;
    outb(COM1, (uint8_t)c);
}

static void puts_(const char *s)
{
    while (*s)
        putc_(*s++);
}

static void putu(uint64_t v)
{
    char b[24];
    int n = 0;
    do {
        b[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        putc_(b[--n]);
}

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

/* "key=<decimal>" from the command line, or def */
static uint32_t param(const char *cmdline, const char *key, uint32_t def)
{
    for (const char *p = cmdline; p && *p; p++) {
        const char *k = key, *q = p;
        while (*k && *q == *k) {
            k++;
            q++;
        }
        if (*k || *q != '=')
            continue;
        uint32_t v = 0;
        for (q++; *q >= '0' && *q <= '9'; q++)
            v = v * 10 + (uint32_t)(*q - '0');
        return v;
    }
    return def;
}

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

static uint64_t common, notify_addr, device_cfg;
static uint16_t qsize, avail_idx, used_seen;
static uint64_t capacity;

static uint64_t bar_address(unsigned dev, unsigned bar, uint64_t *next_free)
{
    unsigned off = 0x10 + 4 * bar;
    uint32_t lo = cfg_read(dev, off);
    int is64 = (lo & 6) == 4;
    uint64_t addr = lo & ~0xfull;
    if (is64)
        addr |= (uint64_t)cfg_read(dev, off + 4) << 32;
    if (addr)
        return addr; /* assigned by the firmware or the VMM */
    cfg_write(dev, off, 0xffffffffu);
    uint64_t size = ~(uint64_t)(cfg_read(dev, off) & ~0xfu) + 1;
    size &= 0xffffffffull;
    addr = (*next_free + size - 1) & ~(size - 1);
    *next_free = addr + size;
    cfg_write(dev, off, (uint32_t)addr);
    if (is64)
        cfg_write(dev, off + 4, 0);
    return addr;
}

static int setup(void)
{
    unsigned dev = 32;
    for (unsigned d = 0; d < 32; d++)
        if (cfg_read(d, 0) == 0x10421af4u) {
            dev = d;
            break;
        }
    if (dev == 32)
        return 1;
    cfg_write(dev, 4, cfg_read(dev, 4) | 0x6); /* memory decoding, bus master */
    uint64_t next_free = BAR_WINDOW;
    uint32_t mult = 0, notify_off_base = 0;
    uint64_t notify_base = 0;
    for (unsigned p = cfg_read(dev, 0x34) & 0xfc; p; p = (cfg_read(dev, p) >> 8) & 0xfc) {
        uint32_t hdr = cfg_read(dev, p);
        if ((hdr & 0xff) != 0x09)
            continue;
        unsigned type = hdr >> 24, bar = cfg_read(dev, p + 4) & 0xff;
        if (bar > 5)
            continue;
        uint64_t at = bar_address(dev, bar, &next_free) + cfg_read(dev, p + 8);
        if (at >= (4ull << 30))
            return 2; /* only the first 4 GiB are mapped */
        if (type == 1)
            common = at;
        else if (type == 2) {
            notify_base = at;
            mult = cfg_read(dev, p + 16);
        } else if (type == 4)
            device_cfg = at;
    }
    if (!common || !notify_base || !device_cfg)
        return 3;
    R8(common + 0x14) = 0;
    R8(common + 0x14) = 1;
    R8(common + 0x14) = 3;
    R32(common + 0x00) = 1;
    if (!(R32(common + 0x04) & 1)) /* VIRTIO_F_VERSION_1 */
        return 4;
    R32(common + 0x08) = 0;
    R32(common + 0x0c) = 0;
    R32(common + 0x08) = 1;
    R32(common + 0x0c) = 1;
    R8(common + 0x14) = 3 | 8;
    if (!(R8(common + 0x14) & 8))
        return 5;
    R16(common + 0x10) = 0xffff; /* no configuration interrupt */
    R16(common + 0x16) = 0;
    qsize = R16(common + 0x18);
    if (qsize > MAX_QSIZE)
        qsize = MAX_QSIZE;
    if (qsize < 3 * DEPTH)
        return 6;
    R16(common + 0x18) = qsize;
    R16(common + 0x1a) = 0xffff;
    R32(common + 0x20) = (uint32_t)DESC_ADDR;
    R32(common + 0x24) = 0;
    R32(common + 0x28) = (uint32_t)AVAIL_ADDR;
    R32(common + 0x2c) = 0;
    R32(common + 0x30) = (uint32_t)USED_ADDR;
    R32(common + 0x34) = 0;
    R16(AVAIL_ADDR) = 1; /* VRING_AVAIL_F_NO_INTERRUPT: we poll */
    R16(AVAIL_ADDR + 2) = 0;
    R16(common + 0x1c) = 1;
    notify_off_base = R16(common + 0x1e);
    notify_addr = notify_base + (uint64_t)notify_off_base * mult;
    R8(common + 0x14) = 3 | 8 | 4;
    capacity = (uint64_t)R32(device_cfg) | (uint64_t)R32(device_cfg + 4) << 32;
    return capacity ? 0 : 7;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void post(unsigned slot, uint32_t type, uint64_t sector, uint32_t bytes)
{
    volatile struct desc *d = (volatile struct desc *)(uintptr_t)DESC_ADDR;
    uint64_t hdr = HDR_ADDR + 16u * slot, status = STATUS_ADDR + slot;
    R32(hdr) = type;
    R32(hdr + 4) = 0;
    R32(hdr + 8) = (uint32_t)sector;
    R32(hdr + 12) = (uint32_t)(sector >> 32);
    R8(status) = 0xff;
    unsigned h = 3 * slot;
    d[h] = (struct desc){hdr, 16, 1, (uint16_t)(h + 1)};
    if (bytes) {
        d[h + 1] = (struct desc){DATA_ADDR + ((uint64_t)slot << 20), bytes,
                                 (uint16_t)(1 | (type == 0 ? 2 : 0)), (uint16_t)(h + 2)};
        d[h + 2] = (struct desc){status, 1, 2, 0};
    } else {
        d[h].next = (uint16_t)(h + 2);
        d[h + 2] = (struct desc){status, 1, 2, 0};
    }
    R16(AVAIL_ADDR + 4 + 2u * (avail_idx % qsize)) = (uint16_t)h;
    barrier();
    avail_idx++;
    R16(AVAIL_ADDR + 2) = avail_idx;
}

static void kick(void)
{
    barrier();
    if (!(R16(USED_ADDR) & 1)) /* VRING_USED_F_NO_NOTIFY */
        R16(notify_addr) = 0;
}

/* Wait for one completion; returns its slot, or -1 on a failed request. */
static int reap(void)
{
    while (R16(USED_ADDR + 2) == used_seen)
        __asm__ volatile("pause");
    barrier();
    uint32_t id = R32(USED_ADDR + 4 + 8u * (used_seen % qsize));
    used_seen++;
    unsigned slot = id / 3;
    if (slot >= DEPTH || R8(STATUS_ADDR + slot) != 0)
        return -1;
    return (int)slot;
}

static int run(const char *name, int write, int random, uint32_t bs, uint32_t count)
{
    uint64_t blocks = capacity / (bs / 512), next = 0, seed = 0x9e3779b97f4a7c15ull;
    uint32_t posted = 0, done = 0;
    puts_("S ");
    puts_(name);
    putc_('\n');
    for (unsigned s = 0; s < DEPTH && posted < count; s++, posted++)
        post(s, write ? 1 : 0, (random ? xorshift(&seed) % blocks : next++ % blocks) * (bs / 512),
             bs);
    kick();
    while (done < count) {
        int slot = reap();
        if (slot < 0)
            return -1;
        done++;
        if (posted < count) {
            post((unsigned)slot, write ? 1 : 0,
                 (random ? xorshift(&seed) % blocks : next++ % blocks) * (bs / 512), bs);
            posted++;
            kick();
        }
    }
    puts_("E ");
    puts_(name);
    putc_(' ');
    putu(count);
    putc_(' ');
    putu((uint64_t)count * bs);
    putc_('\n');
    return 0;
}

uint32_t guest_main(uint32_t start_info)
{
    const char *cmdline = 0;
    if (start_info && R32(start_info) == 0x336ec578u) /* hvm_start_info magic */
        cmdline = (const char *)(uintptr_t)R32(start_info + 24);
    uint32_t n4k = param(cmdline, "n4k", 2000), n1m = param(cmdline, "n1m", 64);
    int rc = setup();
    if (rc) {
        puts_("F setup ");
        putu((uint64_t)rc);
        putc_('\n');
        return 100 + (uint32_t)rc;
    }
    puts_("R capacity ");
    putu(capacity);
    putc_('\n');
    struct { const char *name; int write, random; uint32_t bs, count; } w[] = {
        {"seqread-4k", 0, 0, 4096, n4k}, {"randread-4k", 0, 1, 4096, n4k},
        {"seqwrite-4k", 1, 0, 4096, n4k}, {"randwrite-4k", 1, 1, 4096, n4k},
        {"seqread-1m", 0, 0, 1u << 20, n1m}, {"seqwrite-1m", 1, 0, 1u << 20, n1m}};
    for (unsigned i = 0; i < sizeof w / sizeof w[0]; i++)
        if (run(w[i].name, w[i].write, w[i].random, w[i].bs, w[i].count))
            return 10 + i;
    post(0, 4, 0, 0); /* a flush, then done */
    kick();
    if (reap() < 0)
        return 20;
    puts_("D\n");
    return 0;
}
