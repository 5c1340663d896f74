/* One hostile-driver scenario against the whole device stack: the virtio-pci transport with a
 * virtio-blk device on an in-memory disk (or virtio-rng, -console, -balloon). The input is a program of register accesses
 * (configuration space and BAR 0, any offset, size and value), guest RAM writes, kicks and
 * a "mostly valid bring-up" shortcut so the fuzzer reaches request processing. Shared by
 * fuzz_virtio_pci.c (libFuzzer) and tests/c/test_virtio_pci_random.c (deterministic).
 *
 * Guest RAM sits between PROT_NONE guard pages; the disk is a heap buffer under ASan; the
 * invariants checked after every step abort() when broken. */
#ifndef QV_PCI_EXERCISE_H
#define QV_PCI_EXERCISE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "quantavirt/memdisk.h"
#include "quantavirt/virtio_balloon.h"
#include "quantavirt/virtio_blk.h"
#include "quantavirt/virtio_console.h"
#include "quantavirt/virtio_pci.h"
#include "quantavirt/virtio_rng.h"

#define PX_RAM_GPA 0x100000ull
#define PX_RAM_SIZE 0x20000u
#define PX_DISK_SIZE 0x40000u

struct px_ram {
    uint8_t *map, *host;
    size_t map_len;
    struct qv_guest_memory mem;
};

static inline int px_ram_init(struct px_ram *r)
{
    size_t guard = (size_t)sysconf(_SC_PAGESIZE) * 4;
    r->map_len = 2 * guard + PX_RAM_SIZE;
    r->map = mmap(NULL, r->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->map == MAP_FAILED)
        return -1;
    r->host = r->map + guard;
    if (mprotect(r->host, PX_RAM_SIZE, PROT_READ | PROT_WRITE) != 0)
        return -1;
    memset(&r->mem, 0, sizeof r->mem);
    r->mem.nregions = 1;
    r->mem.regions[0] =
        (struct qv_guest_region){.gpa = PX_RAM_GPA, .size = PX_RAM_SIZE, .host = r->host};
    return 0;
}

struct px_in {
    const uint8_t *p;
    size_t len, pos;
};

static inline uint8_t px_u8(struct px_in *in)
{
    return in->pos < in->len ? in->p[in->pos++] : 0;
}

static inline uint16_t px_u16(struct px_in *in)
{
    uint8_t lo = px_u8(in);
    uint8_t hi = px_u8(in);
    return (uint16_t)(lo | hi << 8);
}

static inline uint32_t px_u32(struct px_in *in)
{
    uint16_t lo = px_u16(in);
    uint16_t hi = px_u16(in);
    return (uint32_t)lo | (uint32_t)hi << 16;
}

static unsigned px_msi_count;
static void px_msi(void *opaque, uint16_t vector, uint64_t addr, uint32_t data)
{
    (void)opaque;
    (void)addr;
    (void)data;
    if (vector >= 64)
        abort();
    px_msi_count++;
}

/* Device callbacks: every host range a device hands out must be inside guest RAM. */
static struct px_ram *px_current_ram;

static void px_check_range(const void *p, uint64_t len)
{
    const uint8_t *b = p, *lo = px_current_ram->host;
    if (b < lo || len > PX_RAM_SIZE || b + len > lo + PX_RAM_SIZE)
        abort();
}

static void px_discard(void *opaque, uint64_t gpa, void *host, uint64_t len)
{
    (void)opaque;
    if (gpa < PX_RAM_GPA || gpa - PX_RAM_GPA + len > PX_RAM_SIZE)
        abort();
    px_check_range(host, len);
    memset(host, 0, (size_t)len);
}

static ssize_t px_entropy(void *opaque, void *buf, size_t len)
{
    (void)opaque;
    memset(buf, 0x42, len);
    return (ssize_t)len;
}

static void px_output(void *opaque, const void *buf, size_t len)
{
    (void)opaque;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < len; i++)
        sink ^= ((const uint8_t *)buf)[i]; /* faults if the device handed out a bad range */
    (void)sink;
}

static ssize_t px_input(void *opaque, void *buf, size_t len)
{
    (void)opaque;
    size_t n = len < 5 ? len : 5;
    memcpy(buf, "input", n);
    return (ssize_t)n;
}

/* Statistics for the deterministic test: how far scenarios got. */
struct px_stats {
    unsigned long driver_ok, requests, needs_reset, completed_ok, completed_err;
};

static inline void px_bringup(struct qv_virtio_pci *pci, struct px_in *in, uint16_t nq)
{
    uint64_t feats = (1ull << QV_VIRTIO_F_VERSION_1) | ((uint64_t)px_u8(in) << 28 & (3ull << 28));
    if (px_u8(in) % 8 == 0)
        feats |= (uint64_t)px_u32(in); /* sometimes garbage feature bits */
    qv_virtio_pci_bar_write(pci, 0x14, 1, 0);
    qv_virtio_pci_bar_write(pci, 0x14, 1, 3);
    qv_virtio_pci_bar_write(pci, 0x08, 4, 0);
    qv_virtio_pci_bar_write(pci, 0x0c, 4, (uint32_t)feats);
    qv_virtio_pci_bar_write(pci, 0x08, 4, 1);
    qv_virtio_pci_bar_write(pci, 0x0c, 4, (uint32_t)(feats >> 32));
    qv_virtio_pci_bar_write(pci, 0x14, 1, 11);
    for (uint16_t q = 0; q < nq; q++) {
        qv_virtio_pci_bar_write(pci, 0x16, 2, q);
        uint8_t sz = px_u8(in);
        uint16_t size = (uint16_t)(1u << (sz % 16 == 0 ? sz / 16 % 6 : 2 + sz % 4)); /* 4..32 */
        qv_virtio_pci_bar_write(pci, 0x18, 2, size);
        /* rings inside RAM at input-chosen (aligned) offsets */
        /* rings inside the first 60 KiB (requests use the memory above) */
        uint64_t base = PX_RAM_GPA + (uint64_t)(px_u16(in) % 0xe00) * 16;
        qv_virtio_pci_bar_write(pci, 0x20, 8, base);
        qv_virtio_pci_bar_write(pci, 0x28, 8, base + 16u * size);
        qv_virtio_pci_bar_write(pci, 0x30, 8, (base + 16u * size + 6 + 2u * size + 3) & ~3ull);
        qv_virtio_pci_bar_write(pci, 0x1a, 2, px_u8(in) % 4);
        qv_virtio_pci_bar_write(pci, 0x1c, 2, 1);
    }
    qv_virtio_pci_bar_write(pci, 0x14, 1, 15);
}

/* Write a well-formed request chain for queue 0 (when it is laid out) at input-chosen
 * buffers, so the fuzzer does not have to discover the ring format byte by byte. */
static inline void px_post_request(struct qv_virtio_pci *pci, struct px_ram *r, struct px_in *in)
{
    qv_virtio_pci_bar_write(pci, 0x16, 2, 0);
    uint16_t size = (uint16_t)qv_virtio_pci_bar_read(pci, 0x18, 2);
    uint64_t desc = qv_virtio_pci_bar_read(pci, 0x20, 8);
    uint64_t avail = qv_virtio_pci_bar_read(pci, 0x28, 8);
    if (size == 0 || (size & (size - 1)) || size > 32 || desc < PX_RAM_GPA ||
        avail < PX_RAM_GPA || desc - PX_RAM_GPA + 16u * size > PX_RAM_SIZE ||
        avail - PX_RAM_GPA + 6u + 2u * size > PX_RAM_SIZE)
        return;
    uint8_t *d = r->host + (desc - PX_RAM_GPA), *a = r->host + (avail - PX_RAM_GPA);
    uint16_t head = (uint16_t)(px_u8(in) % size);
    uint16_t i1 = (uint16_t)((head + 1) % size), i2 = (uint16_t)((head + 2) % size);
    uint64_t hdr = PX_RAM_GPA + 0x10000 + (px_u8(in) % 64) * 16u;
    uint64_t buf = PX_RAM_GPA + 0x12000 + (px_u8(in) % 8) * 512u;
    uint32_t len = 512u * (1 + px_u8(in) % 8);
    uint64_t st = PX_RAM_GPA + 0x1f000;
    uint32_t type = px_u8(in) % 16, zero = 0;
    uint64_t sector = px_u16(in) % 600;
    memcpy(r->host + (hdr - PX_RAM_GPA), &type, 4);
    memcpy(r->host + (hdr - PX_RAM_GPA) + 4, &zero, 4);
    memcpy(r->host + (hdr - PX_RAM_GPA) + 8, &sector, 8);
    uint16_t wr = (type == 1 || type == 11 || type == 13) ? 0 : 2;
    struct {
        uint64_t addr;
        uint32_t len;
        uint16_t flags, next;
    } ds[3] = {{hdr, 16, 1, i1}, {buf, len, (uint16_t)(1 | wr), i2}, {st, 1, 2, 0}};
    memcpy(d + 16u * head, &ds[0], 16);
    memcpy(d + 16u * i1, &ds[1], 16);
    memcpy(d + 16u * i2, &ds[2], 16);
    uint16_t idx;
    memcpy(&idx, a + 2, 2);
    memcpy(a + 4 + 2u * (idx % size), &head, 2);
    idx++;
    __atomic_store_n((uint16_t *)(void *)(a + 2), idx, __ATOMIC_RELEASE);
}

static inline void px_run(struct px_ram *r, const uint8_t *data, size_t len, struct px_stats *st)
{
    struct px_in in = {data, len, 0};
    uint8_t setup = px_u8(&in);
    unsigned kind = setup >> 5; /* 0-4: blk, 5: rng, 6: console, 7: balloon */
    struct qv_virtio_blk_options o = {.num_queues = (uint16_t)(1 + setup % 4),
                                      .queue_size = 32,
                                      .seg_max = 8,
                                      .readonly = (setup >> 2) & 1,
                                      .discard = (setup >> 3) & 1,
                                      .serial = "fuzz"};
    memset(r->host, 0, PX_RAM_SIZE);
    px_current_ram = r;
    struct qv_disk *disk = NULL;
    struct qv_virtio_blk *blk = NULL;
    struct qv_virtio_rng *rng = NULL;
    struct qv_virtio_console *con = NULL;
    struct qv_virtio_balloon *balloon = NULL;
    struct qv_virtio_device *dev;
    if (kind == 5) {
        rng = qv_virtio_rng_new(px_entropy, NULL);
        dev = rng ? qv_virtio_rng_device(rng) : NULL;
    } else if (kind == 6) {
        struct qv_virtio_console_options co = {.output = px_output, .out_fd = -1, .log_fd = -1,
                                               .input = px_input};
        con = qv_virtio_console_new(&co);
        dev = con ? qv_virtio_console_device(con) : NULL;
    } else if (kind == 7) {
        struct qv_virtio_balloon_options bo = {.discard = px_discard};
        balloon = qv_virtio_balloon_new(&bo);
        dev = balloon ? qv_virtio_balloon_device(balloon) : NULL;
    } else {
        disk = qv_memdisk_new(PX_DISK_SIZE, 0);
        blk = disk ? qv_virtio_blk_new(disk, &o) : NULL;
        dev = blk ? qv_virtio_blk_device(blk) : NULL;
        if (blk && o.readonly)
            memset(qv_memdisk_data(disk), 0x5a, PX_DISK_SIZE);
    }
    if (!dev)
        abort();
    struct qv_virtio_pci_callbacks cb = {.msi = px_msi};
    uint16_t nq = dev->num_queues;
    struct qv_virtio_pci *pci = qv_virtio_pci_new(dev, &r->mem, (uint16_t)(nq + 1), &cb);
    if (!pci)
        abort();
    /* MSI-X on with unmasked vectors half the time */
    if (setup & 0x10) {
        for (unsigned v = 0; v <= nq; v++)
            qv_virtio_pci_bar_write(pci, QV_VIRTIO_PCI_MSIX_TABLE_OFFSET + 16u * v + 12, 4, 0);
        qv_virtio_pci_config_write(pci, 0x42, 2, 0x8000);
    }
    int seen_ok = 0, seen_reset = 0;
    for (unsigned step = 0; step < 400 && in.pos < in.len; step++) {
        uint8_t op = px_u8(&in);
        switch (op % 10) {
        case 0:
            qv_virtio_pci_config_write(pci, px_u8(&in) | (op & 0x80 ? 0x100u : 0),
                                       1u << (px_u8(&in) % 4), px_u32(&in));
            break;
        case 1:
            (void)qv_virtio_pci_config_read(pci, px_u16(&in) % 0x120, 1u << (px_u8(&in) % 4));
            break;
        case 2: {
            uint64_t off = px_u16(&in) & 0x7fff;
            if (op & 0x80)
                off = (off & 0x3f) | ((uint64_t)(op >> 5 & 3) << 12); /* common/isr/device */
            uint64_t val = px_u32(&in);
            if (op & 0x40)
                val |= (uint64_t)px_u32(&in) << 32;
            qv_virtio_pci_bar_write(pci, off, 1u << (px_u8(&in) % 4), val);
            break;
        }
        case 3: {
            uint64_t off = px_u16(&in);
            if (op & 0x80)
                off = (off & 0x3f) | ((uint64_t)(op >> 5 & 3) << 12);
            (void)qv_virtio_pci_bar_read(pci, off, 1u << (px_u8(&in) % 4));
            break;
        }
        case 4: { /* the guest writes its RAM: rings, descriptors, buffers */
            uint32_t off = (uint32_t)px_u16(&in) * 2u % (PX_RAM_SIZE - 3);
            uint32_t v = px_u32(&in);
            memcpy(r->host + off, &v, 4);
            break;
        }
        case 5:
        case 6:
            px_bringup(pci, &in, nq);
            break;
        case 7:
            if (balloon && (op & 0x80)) {
                qv_virtio_balloon_set_target(balloon, px_u16(&in));
                qv_virtio_pci_config_changed(pci);
                qv_virtio_balloon_request_stats(balloon);
            }
            px_post_request(pci, r, &in);
            if (st)
                st->requests++;
            /* fall through: kick it */
            /* FALLTHROUGH */
        case 8:
            qv_virtio_pci_bar_write(pci, QV_VIRTIO_PCI_NOTIFY_OFFSET + 4u * (px_u8(&in) % (nq + 1)),
                                    2, 0);
            break;
        default:
            (void)qv_virtio_pci_process_queue(pci, px_u8(&in) % (nq + 2));
            break;
        }
        uint8_t status = qv_virtio_pci_status(pci);
        /* invariants: DRIVER_OK only after FEATURES_OK; negotiated features were offered */
        if ((status & QV_VIRTIO_STATUS_DRIVER_OK) && !(status & QV_VIRTIO_STATUS_FEATURES_OK))
            abort();
        if (status & QV_VIRTIO_STATUS_FEATURES_OK) {
            uint64_t f = dev->features;
            if (!(f >> QV_VIRTIO_F_VERSION_1 & 1) || (f >> 34))
                abort();
        }
        seen_ok |= (status & QV_VIRTIO_STATUS_DRIVER_OK) != 0;
        seen_reset |= (status & QV_VIRTIO_STATUS_NEEDS_RESET) != 0;
    }
    /* readonly: the disk must never have been written, zeroed or discarded */
    if (blk && o.readonly) {
        const uint8_t *dd = qv_memdisk_data(disk);
        for (size_t i = 0; i < PX_DISK_SIZE; i++)
            if (dd[i] != 0x5a)
                abort();
    }
    if (st && blk) {
        struct qv_virtio_blk_stats bs;
        qv_virtio_blk_get_stats(blk, &bs);
        st->completed_ok += bs.rd_ops + bs.wr_ops + bs.flush_ops + bs.get_id_ops +
                            bs.discard_ops + bs.write_zeroes_ops;
        st->completed_err += bs.io_errors + bs.unsupported;
    }
    if (st) {
        st->driver_ok += (unsigned long)seen_ok;
        st->needs_reset += (unsigned long)seen_reset;
    }
    qv_virtio_pci_free(pci);
    qv_virtio_blk_free(blk);
    qv_virtio_rng_free(rng);
    qv_virtio_console_free(con);
    qv_virtio_balloon_free(balloon);
    if (disk)
        disk->ops->close(disk);
}

#endif
