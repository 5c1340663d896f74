/* Property test of the PCI host bridge (csrc/devices/pci.c) with two real virtio-pci
 * functions behind it: random configuration reads and writes of every width (0..8 bytes)
 * and offset through every entry point (qv_pci_config_*, 0xcf8/0xcfc port I/O, ECAM MMIO,
 * and MMIO into the BARs through the bus fallback), with BAR sizing, BAR moves and decode
 * toggles mixed in. Built with ASan/UBSan; checked after every step:
 *   - absent functions (bus != 0, function != 0, empty slot) read all ones of the width;
 *     misaligned or odd-width accesses read all ones (config) and change nothing;
 *   - the host bridge's identity and class never change (only its command word is writable);
 *   - the map callback's view of each function equals its decode state (BAR when memory
 *     decoding is on, else unmapped), and MMIO inside a mapped BAR reaches the function while
 *     MMIO outside every BAR (or straddling a BAR's end) is not taken;
 *   - BAR sizing returns the size mask (0xffff8004 / 0xffffffff for 32 KiB, 64-bit).
 * usage: test_pci_config_random [steps [seed]] */
#include "devices/bus.h"
#include "devices/pci.h"
#include "quantavirt/memdisk.h"
#include "quantavirt/virtio_blk.h"
#include "quantavirt/virtio_rng.h"
#include "vdriver.h"

#define ECAM_BASE 0xe0000000ull
#define BAR_SIZE 0x8000ull

static uint64_t seed = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static uint64_t mapped[QV_PCI_MAX_SLOTS];
static unsigned map_calls;

static void on_map(void *opaque, unsigned slot, uint64_t old_addr, uint64_t new_addr)
{
    (void)opaque;
    CHECK(slot < QV_PCI_MAX_SLOTS);
    CHECK_EQ(mapped[slot], old_addr);
    mapped[slot] = new_addr;
    map_calls++;
}


static const unsigned widths[] = {0, 1, 2, 3, 4, 5, 8};

static uint32_t ones(unsigned size)
{
    return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

static uint32_t pick_offset(void)
{
    static const uint32_t hot[] = {0x00, 0x04, 0x06, 0x10, 0x14, 0x18, 0x3c, 0x40, 0x42,
                                   0x50, 0x98, 0xa8, 0xfc, 0xff, 0x100, 0xffc, 0xfff};
    return rnd() % 3 ? hot[rnd() % (sizeof hot / sizeof hot[0])] + (uint32_t)(rnd() % 4)
                     : (uint32_t)(rnd() % 4200);
}

static uint32_t pick_value(void)
{
    switch (rnd() % 6) {
    case 0: return 0xffffffffu;
    case 1: return 0;
    case 2: return 0x6; /* memory + bus master */
    case 3: return (uint32_t)(0xc0000000u + (rnd() % 64) * BAR_SIZE); /* a BAR placement */
    case 4: return (uint32_t)(0xfffff000u + (rnd() % 0x1000)); /* near the top: may wrap */
    default: return (uint32_t)rnd();
    }
}

static void check_bridge(struct qv_pci_host *h)
{
    CHECK_EQ(qv_pci_config_read(h, 0, 0, 0, 0, 4),
             QV_PCI_HOST_DEVICE << 16 | QV_PCI_HOST_VENDOR);
    CHECK_EQ(qv_pci_config_read(h, 0, 0, 0, 8, 4), 0x06000000u);
}

static void check_mappings(struct qv_pci_host *h, struct qv_virtio_pci **fn, unsigned *slot,
                           unsigned n, struct qv_bus *bus)
{
    (void)h;
    for (unsigned i = 0; i < n; i++) {
        uint64_t want = 0;
        if (qv_virtio_pci_memory_enabled(fn[i])) {
            want = qv_virtio_pci_bar_address(fn[i]);
            if (want + BAR_SIZE < want)
                want = 0; /* wraps: decodes nothing */
        }
        CHECK_EQ(mapped[slot[i]], want);
    }
    /* MMIO at a mapped BAR reaches a function; straddling its end or outside: not taken */
    for (unsigned i = 0; i < n; i++) {
        uint64_t base = mapped[slot[i]];
        if (!base)
            continue;
        uint8_t data[8];
        /* overlapping BARs: some function takes it, whichever comes first */
        CHECK(qv_bus_dispatch(bus, QV_BUS_MMIO, base + (rnd() % BAR_SIZE & ~3ull), data, 4,
                              false));
        int inside_other = 0;
        for (unsigned j = 0; j < n; j++)
            if (j != i && mapped[slot[j]] && base + BAR_SIZE - 1 >= mapped[slot[j]] &&
                base + BAR_SIZE - 1 < mapped[slot[j]] + BAR_SIZE)
                inside_other = 1;
        if (!inside_other)
            CHECK(!qv_bus_dispatch(bus, QV_BUS_MMIO, base + BAR_SIZE - 1, data, 2, false));
    }
}

int main(int argc, char **argv)
{
    unsigned long steps = argc > 1 ? strtoul(argv[1], NULL, 0) : 200000;
    if (argc > 2)
        seed = strtoull(argv[2], NULL, 0) | 1;
    struct fake_ram ram;
    ram_init(&ram, 0x100000, 1u << 20);
    struct qv_bus bus;
    memset(&bus, 0, sizeof bus);
    struct qv_pci_host *h;
    CHECK(qv_pci_host_create(&bus, ECAM_BASE, 1u << 20, on_map, NULL, &h) == 0);

    struct qv_disk *disk = qv_memdisk_new(1u << 20, 0);
    CHECK(disk);
    struct qv_virtio_blk *blk = qv_virtio_blk_new(disk, NULL);
    struct qv_virtio_rng *rng = qv_virtio_rng_new(NULL, NULL);
    CHECK(blk && rng);
    struct qv_virtio_pci *fn[2];
    fn[0] = qv_virtio_pci_new(qv_virtio_blk_device(blk), &ram.mem, 2, NULL);
    fn[1] = qv_virtio_pci_new(qv_virtio_rng_device(rng), &ram.mem, 2, NULL);
    CHECK(fn[0] && fn[1]);
    unsigned slot[2];
    for (unsigned i = 0; i < 2; i++)
        CHECK(qv_pci_host_add(h, &qv_virtio_pci_function_ops, fn[i], BAR_SIZE, &slot[i]) == 0);

    /* BAR sizing, then a placement, through the real configuration path */
    for (unsigned i = 0; i < 2; i++) {
        qv_pci_config_write(h, 0, slot[i], 0, 0x10, 4, 0xffffffffu);
        CHECK_EQ(qv_pci_config_read(h, 0, slot[i], 0, 0x10, 4), 0xffff8004u);
        qv_pci_config_write(h, 0, slot[i], 0, 0x14, 4, 0xffffffffu);
        CHECK_EQ(qv_pci_config_read(h, 0, slot[i], 0, 0x14, 4), 0xffffffffu);
        qv_pci_config_write(h, 0, slot[i], 0, 0x14, 4, 0);
        qv_pci_config_write(h, 0, slot[i], 0, 0x10, 4, 0xc0000000u + (i + 1) * 0x10000u);
        qv_pci_config_write(h, 0, slot[i], 0, 0x04, 2, 0x6);
        CHECK_EQ(mapped[slot[i]], 0xc0000000u + (i + 1) * 0x10000u);
    }

    unsigned long counts[5] = {0};
    for (unsigned long step = 0; step < steps; step++) {
        unsigned kind = (unsigned)(rnd() % 5);
        counts[kind]++;
        unsigned size = widths[rnd() % (sizeof widths / sizeof widths[0])];
        uint32_t off = pick_offset();
        unsigned b = rnd() % 8 ? 0 : (unsigned)(rnd() % 256);
        unsigned dev = rnd() % 4 ? (unsigned)(rnd() % 4) : (unsigned)(rnd() % 40);
        unsigned f = rnd() % 8 ? 0 : (unsigned)(rnd() % 9);
        uint8_t data[8];
        switch (kind) {
        case 0: { /* direct read */
            uint32_t v = qv_pci_config_read(h, b, dev, f, off, size);
            int valid = (size == 1 || size == 2 || size == 4) && !(off & (size - 1)) &&
                        off < 4096;
            int present = b == 0 && f == 0 && (dev == 0 || dev == slot[0] || dev == slot[1]);
            if (!valid || !present)
                CHECK_EQ(v, ones(size));
            else if (off >= 256)
                CHECK_EQ(v, 0); /* no extended capabilities */
            break;
        }
        case 1: /* direct write */
            qv_pci_config_write(h, b, dev, f, off, size, pick_value());
            break;
        case 2: { /* port I/O: latch at 0xcf8, data at 0xcfc-0xcff */
            uint64_t port = 0xcf8 + rnd() % 8;
            unsigned len = (unsigned[]){1, 2, 4}[rnd() % 3];
            if (rnd() % 2) {
                uint32_t latch = 0x80000000u | b << 16 | dev << 11 | f << 8 | (off & 0xfc);
                if (rnd() % 8 == 0)
                    latch = (uint32_t)rnd();
                memcpy(data, &latch, 4);
                qv_bus_dispatch(&bus, QV_BUS_PIO, 0xcf8, data, 4, true);
            }
            uint32_t v = pick_value();
            memcpy(data, &v, 4);
            qv_bus_dispatch(&bus, QV_BUS_PIO, port, data, len, rnd() % 2);
            break;
        }
        case 3: { /* ECAM, widths 1..8 */
            uint64_t at = ECAM_BASE + ((uint64_t)dev << 15) + ((uint64_t)(f & 7) << 12) +
                          (off & 0xfff);
            unsigned len = (unsigned[]){1, 2, 4, 8}[rnd() % 4];
            if (at + len > ECAM_BASE + (1u << 20))
                break;
            uint64_t v = rnd();
            memcpy(data, &v, 8);
            int write = rnd() % 2;
            CHECK(qv_bus_dispatch(&bus, QV_BUS_MMIO, at, data, len, write));
            if (!write && len == 8)
                for (unsigned i = 0; i < 8; i++)
                    CHECK_EQ(data[i], 0xff); /* 8-byte configuration reads are refused */
            break;
        }
        default: { /* MMIO anywhere near the BARs (through the fallback) */
            uint64_t base = mapped[slot[rnd() % 2]];
            uint64_t at = (base ? base : 0xc0000000u) + rnd() % (4 * BAR_SIZE) - BAR_SIZE;
            unsigned len = (unsigned[]){1, 2, 4, 8}[rnd() % 4];
            uint64_t v = rnd();
            memcpy(data, &v, 8);
            qv_bus_dispatch(&bus, QV_BUS_MMIO, at, data, len, rnd() % 2);
            break;
        }
        }
        check_bridge(h);
        if (step % 64 == 0)
            check_mappings(h, fn, slot, 2, &bus);
    }
    check_mappings(h, fn, slot, 2, &bus);
    printf("steps %lu: direct reads %lu, writes %lu, port I/O %lu, ECAM %lu, MMIO %lu; "
           "BAR moves %u\n", steps, counts[0], counts[1], counts[2], counts[3], counts[4],
           map_calls);
    CHECK(map_calls > 10); /* the random writes really moved and toggled BARs */

    qv_pci_host_destroy(h);
    qv_virtio_pci_free(fn[0]);
    qv_virtio_pci_free(fn[1]);
    qv_virtio_blk_free(blk);
    qv_virtio_rng_free(rng);
    disk->ops->close(disk);
    ram_free(&ram);
    printf("PASS test_pci_config_random\n");
    return 0;
}
