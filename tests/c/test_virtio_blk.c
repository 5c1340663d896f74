/* virtio-blk through the modern PCI transport, driven by the test driver in vdriver.h over an
 * in-memory disk: data paths, error statuses, features, interrupts, reset, broken rings,
 * rate limits. QV_BLK_IO=inline|threads|native picks where requests run (every case must
 * hold for each: with an engine, the driver waits for the completions after each kick). */
#include "quantavirt/memdisk.h"
#include "quantavirt/virtio_blk.h"
#include "vdriver.h"

#define DISK_BYTES (4u << 20) /* 8192 sectors */
#define F(bit) (1ull << (bit))
#define BASE_FEATURES (F(QV_VIRTIO_F_VERSION_1))

struct rig {
    struct fake_ram ram;
    struct qv_disk *disk;
    struct qv_virtio_blk *blk;
    struct vdrv d;
    uint64_t hdr, data, status; /* request buffers in guest RAM */
};

static uint32_t io_mode = QV_VIRTIO_BLK_IO_INLINE;

/* Wait until the engine finished everything, then let the transport push it (no-op inline). */
static void settle(struct rig *r)
{
    qv_virtio_blk_drain(r->blk);
    qv_virtio_pci_complete(r->d.pci, NULL);
}

static void kick(struct rig *r, uint16_t q)
{
    vdrv_kick(&r->d, q);
    settle(r);
}

static uint64_t process(struct rig *r, uint16_t q)
{
    uint64_t deadline = qv_virtio_pci_process_queue(r->d.pci, q);
    settle(r);
    return deadline;
}

static uint64_t fake_now;
static uint64_t fake_clock(void *opaque)
{
    (void)opaque;
    return fake_now;
}

static void rig_up(struct rig *r, const struct qv_virtio_blk_options *opts, int readonly,
                   uint64_t features)
{
    ram_init(&r->ram, 0x100000, 8u << 20);
    r->disk = qv_memdisk_new(DISK_BYTES, readonly);
    CHECK(r->disk != NULL);
    struct qv_virtio_blk_options o = opts ? *opts : (struct qv_virtio_blk_options){0};
    o.io_mode = io_mode;
    r->blk = qv_virtio_blk_new(r->disk, &o);
    CHECK(r->blk != NULL);
    struct qv_virtio_device *dev = qv_virtio_blk_device(r->blk);
    vdrv_init(&r->d, dev, &r->ram, (uint16_t)(dev->num_queues + 1), 1);
    vdrv_enable_msix(&r->d);
    CHECK(vdrv_negotiate(&r->d, features));
    bar_wr(&r->d, r->d.common + 0x10, 2, 0); /* config vector 0 */
    for (uint16_t q = 0; q < dev->num_queues; q++)
        vdrv_setup_queue(&r->d, q, 64, (uint16_t)(q + 1));
    vdrv_driver_ok(&r->d);
    r->hdr = ram_alloc(&r->ram, 16, 16);
    r->data = ram_alloc(&r->ram, 1u << 20, 4096);
    r->status = ram_alloc(&r->ram, 1, 1);
}

static void rig_down(struct rig *r)
{
    vdrv_fini(&r->d);
    qv_virtio_blk_free(r->blk);
    r->disk->ops->close(r->disk);
    ram_free(&r->ram);
}

static void set_hdr(struct rig *r, uint32_t type, uint64_t sector)
{
    uint8_t *h = ram_ptr(&r->ram, r->hdr);
    memset(h, 0, 16);
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    *(uint8_t *)ram_ptr(&r->ram, r->status) = 0xee;
}

/* One request: header, data (direction by type), status. Returns the status byte. */
static uint8_t request(struct rig *r, uint16_t q, uint32_t type, uint64_t sector, uint32_t len,
                       int indirect, uint32_t *used_len)
{
    set_hdr(r, type, sector);
    struct buf b[3] = {{r->hdr, 16, 0},
                       {r->data, len, type != QV_VIRTIO_BLK_T_OUT &&
                                          type != QV_VIRTIO_BLK_T_DISCARD &&
                                          type != QV_VIRTIO_BLK_T_WRITE_ZEROES},
                       {r->status, 1, 1}};
    unsigned n = 3;
    if (len == 0) {
        b[1] = b[2];
        n = 2;
    }
    uint16_t head = vdrv_post(&r->d, q, b, n, indirect);
    kick(r, q);
    uint16_t id;
    uint32_t ulen;
    CHECK(vdrv_get_used(&r->d, q, &id, &ulen, indirect ? 1 : n));
    CHECK_EQ(id, head);
    if (used_len)
        *used_len = ulen;
    return *(uint8_t *)ram_ptr(&r->ram, r->status);
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 7 + seed + (i >> 9));
}

static void test_config_and_features(void)
{
    struct rig r;
    struct qv_virtio_blk_options o = {.serial = "qv-serial-1", .discard = 1};
    rig_up(&r, &o, 0, BASE_FEATURES);
    uint64_t f = vdrv_device_features(&r.d);
    CHECK(f & F(QV_VIRTIO_F_VERSION_1));
    CHECK(f & F(QV_VIRTIO_F_INDIRECT_DESC));
    CHECK(f & F(QV_VIRTIO_F_EVENT_IDX));
    CHECK(f & F(QV_VIRTIO_BLK_F_FLUSH));
    CHECK(f & F(QV_VIRTIO_BLK_F_SEG_MAX));
    CHECK(f & F(QV_VIRTIO_BLK_F_BLK_SIZE));
    CHECK(f & F(QV_VIRTIO_BLK_F_DISCARD));
    CHECK(f & F(QV_VIRTIO_BLK_F_WRITE_ZEROES));
    CHECK(!(f & F(QV_VIRTIO_BLK_F_RO)));
    CHECK(!(f & F(QV_VIRTIO_BLK_F_MQ)));
    CHECK_EQ(r.d.device_len, QV_VIRTIO_BLK_CONFIG_SIZE);
    uint64_t cap = bar_rd(&r.d, r.d.device + 0, 8);
    CHECK_EQ(cap, DISK_BYTES / 512);
    CHECK_EQ(bar_rd(&r.d, r.d.device + 0, 4), DISK_BYTES / 512); /* low half */
    CHECK_EQ(bar_rd(&r.d, r.d.device + 12, 4), 126);                /* seg_max */
    CHECK_EQ(bar_rd(&r.d, r.d.device + 20, 4), 512);                /* blk_size */
    CHECK_EQ(bar_rd(&r.d, r.d.device + 34, 2), 1);                  /* num_queues */
    CHECK_EQ(bar_rd(&r.d, r.d.device + 40, 4), QV_VIRTIO_BLK_MAX_DISCARD_SEG);
    /* beyond the config / misaligned / odd size: zero */
    CHECK_EQ(bar_rd(&r.d, r.d.device + 60, 4), 0);
    CHECK_EQ(bar_rd(&r.d, r.d.device + 58, 4), 0);
    CHECK_EQ(bar_rd(&r.d, r.d.device + 1, 2), 0);
    CHECK_EQ(bar_rd(&r.d, r.d.device, 3), 0);
    CHECK_EQ(bar_rd(&r.d, QV_VIRTIO_PCI_BAR_SIZE, 4), 0);
    CHECK_EQ(bar_rd(&r.d, UINT64_MAX - 3, 4), 0);
    CHECK_EQ(cfg_rd(&r.d, 255, 2), 0);
    CHECK_EQ(cfg_rd(&r.d, 256, 1), 0);
    CHECK_EQ(cfg_rd(&r.d, 0x02, 2), 0x1042);
    CHECK_EQ(cfg_rd(&r.d, 0x2e, 2), 0x42);
    CHECK_EQ(cfg_rd(&r.d, 0x0b, 1), 0x01); /* class: mass storage */
    /* read-only registers ignore writes */
    cfg_wr(&r.d, 0x00, 4, 0x12345678);
    CHECK_EQ(cfg_rd(&r.d, 0x00, 2), 0x1af4);
    bar_wr(&r.d, r.d.common + 0x12, 2, 99);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x12, 2), 1);
    /* the PCI configuration access capability reads BAR registers */
    CHECK(r.d.have_pcicfg);
    cfg_wr(&r.d, r.d.pcicfg_cap + 4, 1, 0);
    cfg_wr(&r.d, r.d.pcicfg_cap + 8, 4, r.d.common + 0x12);
    cfg_wr(&r.d, r.d.pcicfg_cap + 12, 4, 2);
    CHECK_EQ(cfg_rd(&r.d, r.d.pcicfg_cap + 16, 2), 1);
    cfg_wr(&r.d, r.d.pcicfg_cap + 8, 4, r.d.device);
    cfg_wr(&r.d, r.d.pcicfg_cap + 12, 4, 4);
    CHECK_EQ(cfg_rd(&r.d, r.d.pcicfg_cap + 16, 4), DISK_BYTES / 512);
    /* bad construction arguments are refused, not half-built */
    struct qv_virtio_pci_callbacks cb = {0};
    CHECK(qv_virtio_pci_new(qv_virtio_blk_device(r.blk), &r.ram.mem, 0, &cb) == NULL);
    CHECK(qv_virtio_pci_new(qv_virtio_blk_device(r.blk), &r.ram.mem, 65, &cb) == NULL);
    CHECK(qv_virtio_pci_new(NULL, &r.ram.mem, 2, &cb) == NULL);
    struct qv_virtio_blk_options bad_size = {.queue_size = 48};
    CHECK(qv_virtio_blk_new(r.disk, &bad_size) == NULL);
    struct qv_virtio_blk_options bad_serial = {.serial = "123456789012345678901"};
    CHECK(qv_virtio_blk_new(r.disk, &bad_serial) == NULL);
    struct qv_virtio_blk_options bad_queues = {.num_queues = 65};
    CHECK(qv_virtio_blk_new(r.disk, &bad_queues) == NULL);
    CHECK(qv_virtio_blk_new(NULL, NULL) == NULL);
    rig_down(&r);
    pass("config_and_features");
}

static void test_read_write(int indirect)
{
    struct rig r;
    uint64_t feat = BASE_FEATURES | (indirect ? F(QV_VIRTIO_F_INDIRECT_DESC) : 0);
    rig_up(&r, NULL, 0, feat);
    uint8_t *data = ram_ptr(&r.ram, r.data);
    uint8_t *disk = qv_memdisk_data(r.disk);
    uint32_t ulen;
    /* write 64 KiB at sector 100 */
    fill_pattern(data, 65536, 3);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_OUT, 100, 65536, indirect, &ulen), 0);
    CHECK_EQ(ulen, 1);
    CHECK(memcmp(disk + 100 * 512, data, 65536) == 0);
    /* read it back into a clean buffer */
    memset(data, 0, 65536);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_IN, 100, 65536, indirect, &ulen), 0);
    CHECK_EQ(ulen, 65536 + 1);
    CHECK(memcmp(disk + 100 * 512, data, 65536) == 0);
    /* the last sector of the disk is reachable */
    fill_pattern(data, 512, 9);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_OUT, DISK_BYTES / 512 - 1, 512, indirect, NULL), 0);
    CHECK(memcmp(disk + DISK_BYTES - 512, data, 512) == 0);
    struct qv_virtio_blk_stats st;
    qv_virtio_blk_get_stats(r.blk, &st);
    CHECK_EQ(st.wr_ops, 2);
    CHECK_EQ(st.wr_bytes, 65536 + 512);
    CHECK_EQ(st.rd_ops, 1);
    CHECK_EQ(st.rd_bytes, 65536);
    CHECK(r.d.irq.msi[1] >= 3); /* queue 0 uses vector 1 */
    CHECK_EQ(r.d.irq.last_data, 0x4001);
    CHECK_EQ(r.d.irq.last_addr, 0xfee01000u);
    CHECK_EQ(qv_virtio_pci_status(r.d.pci) & QV_VIRTIO_STATUS_NEEDS_RESET, 0);
    rig_down(&r);
    pass(indirect ? "read_write_indirect" : "read_write");
}

/* Header split over two descriptors and data over many small ones. */
static void test_scattered(void)
{
    struct rig r;
    rig_up(&r, NULL, 0, BASE_FEATURES);
    uint8_t *data = ram_ptr(&r.ram, r.data);
    uint8_t *disk = qv_memdisk_data(r.disk);
    set_hdr(&r, QV_VIRTIO_BLK_T_OUT, 7);
    struct buf b[2 + 16 + 1];
    b[0] = (struct buf){r.hdr, 5, 0};
    b[1] = (struct buf){r.hdr + 5, 11, 0};
    for (unsigned i = 0; i < 16; i++)
        b[2 + i] = (struct buf){r.data + 4096ull * i + 13, 256, 0}; /* 4 KiB total */
    b[18] = (struct buf){r.status, 1, 1};
    for (unsigned i = 0; i < 16; i++)
        fill_pattern(data + 4096ull * i + 13, 256, i);
    uint16_t head = vdrv_post(&r.d, 0, b, 19, 0);
    kick(&r, 0);
    uint16_t id;
    uint32_t len;
    CHECK(vdrv_get_used(&r.d, 0, &id, &len, 19));
    CHECK_EQ(id, head);
    CHECK_EQ(*(uint8_t *)ram_ptr(&r.ram, r.status), 0);
    for (unsigned i = 0; i < 16; i++)
        CHECK(memcmp(disk + 7 * 512 + 256 * i, data + 4096ull * i + 13, 256) == 0);
    rig_down(&r);
    pass("scattered");
}

static void test_flush_getid_unsupp(void)
{
    struct rig r;
    struct qv_virtio_blk_options o = {.serial = "QV-DISK-0123456789AB"}; /* exactly 20 */
    rig_up(&r, &o, 0, BASE_FEATURES);
    uint32_t ulen;
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, &ulen), 0);
    CHECK_EQ(ulen, 1);
    CHECK_EQ(qv_memdisk_flush_count(r.disk), 1);
    uint8_t *data = ram_ptr(&r.ram, r.data);
    memset(data, 0xaa, 64);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_GET_ID, 0, 64, 0, &ulen), 0);
    CHECK_EQ(ulen, 21);
    CHECK(memcmp(data, "QV-DISK-0123456789AB", 20) == 0);
    CHECK_EQ(data[20], 0xaa);
    CHECK_EQ(request(&r, 0, 99, 0, 512, 0, NULL), QV_VIRTIO_BLK_S_UNSUPP);
    CHECK_EQ(request(&r, 0, 14 /* SECURE_ERASE */, 0, 16, 0, NULL), QV_VIRTIO_BLK_S_UNSUPP);
    /* discard without the discard option is unsupported */
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_DISCARD, 0, 16, 0, NULL), QV_VIRTIO_BLK_S_UNSUPP);
    struct qv_virtio_blk_stats st;
    qv_virtio_blk_get_stats(r.blk, &st);
    CHECK_EQ(st.flush_ops, 1);
    CHECK_EQ(st.get_id_ops, 1);
    CHECK_EQ(st.unsupported, 3);
    rig_down(&r);
    pass("flush_getid_unsupp");
}

static void put_seg(uint8_t *p, uint64_t sector, uint32_t num, uint32_t flags)
{
    memcpy(p, &sector, 8);
    memcpy(p + 8, &num, 4);
    memcpy(p + 12, &flags, 4);
}

static void test_discard_write_zeroes(void)
{
    struct rig r;
    struct qv_virtio_blk_options o = {.discard = 1};
    rig_up(&r, &o, 0, BASE_FEATURES | F(QV_VIRTIO_BLK_F_DISCARD) |
                          F(QV_VIRTIO_BLK_F_WRITE_ZEROES));
    uint8_t *disk = qv_memdisk_data(r.disk);
    uint8_t *seg = ram_ptr(&r.ram, r.data);
    memset(disk, 0x5a, DISK_BYTES);
    /* two discard ranges */
    put_seg(seg, 10, 4, 0);
    put_seg(seg + 16, 100, 8, 0);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_DISCARD, 0, 32, 0, NULL), 0);
    for (unsigned i = 0; i < 4 * 512; i++)
        CHECK_EQ(disk[10 * 512 + i], 0);
    for (unsigned i = 0; i < 8 * 512; i++)
        CHECK_EQ(disk[100 * 512 + i], 0);
    CHECK_EQ(disk[10 * 512 - 1], 0x5a);
    CHECK_EQ(disk[14 * 512], 0x5a);
    CHECK_EQ(disk[108 * 512], 0x5a);
    CHECK_EQ(qv_memdisk_discard_count(r.disk), 2);
    /* unmap on discard and reserved flags: unsupported, nothing changes */
    put_seg(seg, 200, 1, 1);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_DISCARD, 0, 16, 0, NULL), QV_VIRTIO_BLK_S_UNSUPP);
    put_seg(seg, 200, 1, 2);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, 0, NULL),
             QV_VIRTIO_BLK_S_UNSUPP);
    CHECK_EQ(disk[200 * 512], 0x5a);
    /* write zeroes with unmap allowed */
    put_seg(seg, 300, 3, 1);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, 0, NULL), 0);
    for (unsigned i = 0; i < 3 * 512; i++)
        CHECK_EQ(disk[300 * 512 + i], 0);
    CHECK_EQ(disk[303 * 512], 0x5a);
    /* a range past the end: IOERR and the valid first range is untouched too */
    put_seg(seg, 400, 1, 0);
    put_seg(seg + 16, DISK_BYTES / 512 - 1, 2, 0);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, 0, NULL),
             QV_VIRTIO_BLK_S_IOERR);
    CHECK_EQ(disk[400 * 512], 0x5a);
    /* overflowing sector */
    put_seg(seg, UINT64_MAX / 4, 1, 0);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_DISCARD, 0, 16, 0, NULL), QV_VIRTIO_BLK_S_IOERR);
    /* segment array not a multiple of 16 bytes, or too many segments */
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_DISCARD, 0, 20, 0, NULL), QV_VIRTIO_BLK_S_IOERR);
    memset(seg, 0, 16 * 17);
    for (unsigned i = 0; i < 17; i++)
        put_seg(seg + 16 * i, i, 1, 0);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_DISCARD, 0, 16 * 17, 0, NULL),
             QV_VIRTIO_BLK_S_IOERR);
    CHECK_EQ(disk[0], 0x5a);
    rig_down(&r);
    pass("discard_write_zeroes");
}

static void test_readonly(void)
{
    struct rig r;
    struct qv_virtio_blk_options o = {.readonly = 1, .discard = 1};
    rig_up(&r, &o, 0, BASE_FEATURES | F(QV_VIRTIO_BLK_F_RO));
    uint64_t f = vdrv_device_features(&r.d);
    CHECK(f & F(QV_VIRTIO_BLK_F_RO));
    CHECK(!(f & F(QV_VIRTIO_BLK_F_DISCARD)));
    CHECK(!(f & F(QV_VIRTIO_BLK_F_WRITE_ZEROES)));
    uint8_t *disk = qv_memdisk_data(r.disk);
    uint8_t *data = ram_ptr(&r.ram, r.data);
    memset(data, 0x77, 4096);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_OUT, 0, 4096, 0, NULL), QV_VIRTIO_BLK_S_IOERR);
    put_seg(data, 0, 8, 0);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, 0, NULL),
             QV_VIRTIO_BLK_S_IOERR);
    for (unsigned i = 0; i < 4096; i++)
        CHECK_EQ(disk[i], 0);
    /* reads and flushes still work */
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_IN, 0, 4096, 0, NULL), 0);
    CHECK_EQ(data[0], 0);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    struct qv_virtio_blk_stats st;
    qv_virtio_blk_get_stats(r.blk, &st);
    CHECK_EQ(st.wr_ops, 0);
    CHECK_EQ(st.io_errors, 2);
    rig_down(&r);
    /* a read-only disk makes the device read-only even without the option */
    rig_up(&r, NULL, 1, BASE_FEATURES);
    CHECK(vdrv_device_features(&r.d) & F(QV_VIRTIO_BLK_F_RO));
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_OUT, 0, 512, 0, NULL), QV_VIRTIO_BLK_S_IOERR);
    rig_down(&r);
    pass("readonly");
}

static void test_out_of_range(void)
{
    struct rig r;
    rig_up(&r, NULL, 0, BASE_FEATURES);
    uint64_t last = DISK_BYTES / 512 - 1;
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_IN, last, 1024, 0, NULL), QV_VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_OUT, last + 1, 512, 0, NULL), QV_VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_IN, UINT64_MAX, 512, 0, NULL),
             QV_VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_IN, UINT64_MAX / 512, 512, 0, NULL),
             QV_VIRTIO_BLK_S_IOERR);
    /* not a multiple of the sector size */
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_OUT, 0, 100, 0, NULL), QV_VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_IN, last, 512, 0, NULL), 0);
    CHECK_EQ(qv_virtio_pci_status(r.d.pci) & QV_VIRTIO_STATUS_NEEDS_RESET, 0);
    rig_down(&r);
    pass("out_of_range");
}

static void test_negotiation_failures(void)
{
    struct rig r;
    rig_up(&r, NULL, 0, BASE_FEATURES);
    /* without VERSION_1 */
    CHECK(!vdrv_negotiate(&r.d, F(QV_VIRTIO_BLK_F_FLUSH)));
    /* a feature the device does not offer */
    CHECK(!vdrv_negotiate(&r.d, BASE_FEATURES | F(50)));
    CHECK(!vdrv_negotiate(&r.d, BASE_FEATURES | F(QV_VIRTIO_F_RING_PACKED)));
    CHECK(!vdrv_negotiate(&r.d, BASE_FEATURES | F(QV_VIRTIO_BLK_F_DISCARD))); /* not offered */
    /* DRIVER_OK without FEATURES_OK is refused */
    bar_wr(&r.d, r.d.common + 0x14, 1, 1 | 2 | 4);
    CHECK_EQ(vdrv_status(&r.d) & 4, 0);
    /* features cannot change after FEATURES_OK */
    CHECK(vdrv_negotiate(&r.d, BASE_FEATURES));
    bar_wr(&r.d, r.d.common + 0x08, 4, 0);
    bar_wr(&r.d, r.d.common + 0x0c, 4, F(QV_VIRTIO_BLK_F_FLUSH));
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x0c, 4), 0);
    /* the driver cannot clear status bits nor set NEEDS_RESET */
    bar_wr(&r.d, r.d.common + 0x14, 1, 1);
    CHECK_EQ(vdrv_status(&r.d), 1 | 2 | 8);
    bar_wr(&r.d, r.d.common + 0x14, 1, 0x40 | 1 | 2 | 8);
    CHECK_EQ(vdrv_status(&r.d), 1 | 2 | 8);
    /* invalid queue size (not a power of two) breaks at enable */
    bar_wr(&r.d, r.d.common + 0x16, 2, 0);
    bar_wr(&r.d, r.d.common + 0x18, 2, 48);
    bar_wr(&r.d, r.d.common + 0x1c, 2, 1);
    CHECK(vdrv_status(&r.d) & QV_VIRTIO_STATUS_NEEDS_RESET);
    /* queue_select out of range reads zero and ignores writes */
    CHECK(vdrv_negotiate(&r.d, BASE_FEATURES));
    bar_wr(&r.d, r.d.common + 0x16, 2, 5);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x18, 2), 0);
    bar_wr(&r.d, r.d.common + 0x1c, 2, 1);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x1c, 2), 0);
    /* an MSI-X vector beyond the table reads back as NO_VECTOR */
    bar_wr(&r.d, r.d.common + 0x16, 2, 0);
    bar_wr(&r.d, r.d.common + 0x1a, 2, 40);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x1a, 2), 0xffff);
    bar_wr(&r.d, r.d.common + 0x10, 2, 2);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x10, 2), 0xffff);
    /* a device-feature select beyond 1 reads 0 */
    bar_wr(&r.d, r.d.common + 0x00, 4, 7);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x04, 4), 0);
    rig_down(&r);
    pass("negotiation_failures");
}

static void test_event_idx(void)
{
    struct rig r;
    rig_up(&r, NULL, 0, BASE_FEATURES | F(QV_VIRTIO_F_EVENT_IDX));
    struct dq *q = &r.d.q[0];
    /* used_event far ahead: the first completion interrupts (no previous signal), the
     * following ones only when used idx crosses used_event */
    unsigned before = r.d.irq.msi[1];
    dq_set_used_event(q, 0);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before + 1);
    dq_set_used_event(q, 10); /* interrupt me when used idx passes 10 */
    for (int i = 0; i < 9; i++)
        CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before + 1); /* used idx 10: suppressed */
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before + 2); /* used idx 11 crossed event 10 */
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before + 2);
    /* the device publishes avail_event = what it consumed */
    CHECK_EQ(dq_avail_event(q), q->avail_idx);
    rig_down(&r);

    /* without EVENT_IDX: VRING_AVAIL_F_NO_INTERRUPT suppresses */
    rig_up(&r, NULL, 0, BASE_FEATURES);
    q = &r.d.q[0];
    before = r.d.irq.msi[1];
    dq_set_avail_flags(q, 1);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before);
    dq_set_avail_flags(q, 0);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before + 1);
    rig_down(&r);
    pass("event_idx");
}

static void test_msix_masking_and_intx(void)
{
    struct rig r;
    rig_up(&r, NULL, 0, BASE_FEATURES);
    uint32_t e1 = r.d.msix_table + 16;
    unsigned before = r.d.irq.msi[1];
    /* per-vector mask: the message is held in the PBA */
    bar_wr(&r.d, e1 + 12, 4, 1);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before);
    CHECK_EQ(bar_rd(&r.d, r.d.msix_pba, 8) & 2, 2);
    bar_wr(&r.d, e1 + 12, 4, 0);
    CHECK_EQ(r.d.irq.msi[1], before + 1);
    CHECK_EQ(bar_rd(&r.d, r.d.msix_pba, 8) & 2, 0);
    /* function mask */
    uint16_t ctrl = (uint16_t)cfg_rd(&r.d, r.d.msix_cap + 2, 2);
    cfg_wr(&r.d, r.d.msix_cap + 2, 2, ctrl | 0x4000u);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before + 1);
    CHECK_EQ(bar_rd(&r.d, r.d.msix_pba, 4) & 2, 2);
    cfg_wr(&r.d, r.d.msix_cap + 2, 2, ctrl & ~0x4000u);
    CHECK_EQ(r.d.irq.msi[1], before + 2);
    /* table entries read back */
    CHECK_EQ(bar_rd(&r.d, e1, 4), 0xfee01000u);
    CHECK_EQ(bar_rd(&r.d, e1 + 8, 4), 0x4001);
    CHECK_EQ(bar_rd(&r.d, e1, 8), 0xfee01000u);
    /* queue vector NO_VECTOR: no interrupt at all */
    bar_wr(&r.d, r.d.common + 0x16, 2, 0);
    bar_wr(&r.d, r.d.common + 0x1a, 2, 0xffff);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before + 2);
    CHECK_EQ(bar_rd(&r.d, r.d.msix_pba, 8), 0);
    bar_wr(&r.d, r.d.common + 0x1a, 2, 1);
    /* MSI-X off: INTx and ISR */
    cfg_wr(&r.d, r.d.msix_cap + 2, 2, 0);
    unsigned raises = r.d.irq.intx_raises;
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_FLUSH, 0, 0, 0, NULL), 0);
    CHECK_EQ(r.d.irq.msi[1], before + 2);
    CHECK_EQ(r.d.irq.intx, 1);
    CHECK_EQ(r.d.irq.intx_raises, raises + 1);
    CHECK(cfg_rd(&r.d, 0x06, 2) & 0x08); /* PCI status: interrupt pending */
    /* INTx Disable in the command register lowers the line, the status bit stays */
    cfg_wr(&r.d, 0x04, 2, 0x6 | 0x400);
    CHECK_EQ(r.d.irq.intx, 0);
    CHECK(cfg_rd(&r.d, 0x06, 2) & 0x08);
    cfg_wr(&r.d, 0x04, 2, 0x6);
    CHECK_EQ(r.d.irq.intx, 1);
    CHECK_EQ(bar_rd(&r.d, r.d.isr, 1), 1);
    CHECK_EQ(r.d.irq.intx, 0);
    CHECK_EQ(bar_rd(&r.d, r.d.isr, 1), 0); /* read clears */
    CHECK_EQ(cfg_rd(&r.d, 0x06, 2) & 0x08, 0);
    rig_down(&r);
    pass("msix_masking_and_intx");
}

/* A hostile ring marks the device NEEDS_RESET with a config interrupt; a reset recovers. */
static void test_broken_and_reset(void)
{
    struct rig r;
    rig_up(&r, NULL, 0, BASE_FEATURES);
    struct dq *q = &r.d.q[0];
    unsigned cfg_irqs = r.d.irq.msi[0];
    /* head index beyond the queue */
    uint16_t *ring = (uint16_t *)(void *)(q->avail + 4);
    ring[q->avail_idx & (q->size - 1)] = 1000;
    q->avail_idx++;
    __atomic_store_n((uint16_t *)(void *)(q->avail + 2), q->avail_idx, __ATOMIC_RELEASE);
    kick(&r, 0);
    CHECK(vdrv_status(&r.d) & QV_VIRTIO_STATUS_NEEDS_RESET);
    CHECK_EQ(r.d.irq.msi[0], cfg_irqs + 1);
    /* more kicks do nothing */
    kick(&r, 0);
    CHECK_EQ(r.d.irq.msi[0], cfg_irqs + 1);
    /* reset: everything back to defaults */
    bar_wr(&r.d, r.d.common + 0x14, 1, 0);
    CHECK_EQ(vdrv_status(&r.d), 0);
    bar_wr(&r.d, r.d.common + 0x16, 2, 0);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x1c, 2), 0);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x18, 2), 256);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x1a, 2), 0xffff);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x10, 2), 0xffff);
    /* re-initialise and do I/O again */
    CHECK(vdrv_negotiate(&r.d, BASE_FEATURES));
    bar_wr(&r.d, r.d.common + 0x10, 2, 0);
    vdrv_setup_queue(&r.d, 0, 64, 1);
    vdrv_driver_ok(&r.d);
    uint8_t *data = ram_ptr(&r.ram, r.data);
    fill_pattern(data, 4096, 1);
    CHECK_EQ(request(&r, 0, QV_VIRTIO_BLK_T_OUT, 8, 4096, 0, NULL), 0);
    CHECK(memcmp(qv_memdisk_data(r.disk) + 8 * 512, data, 4096) == 0);
    /* a request without a status byte (no writable part) is a driver bug */
    set_hdr(&r, QV_VIRTIO_BLK_T_IN, 0);
    struct buf b[1] = {{r.hdr, 16, 0}};
    vdrv_post(&r.d, 0, b, 1, 0);
    kick(&r, 0);
    CHECK(vdrv_status(&r.d) & QV_VIRTIO_STATUS_NEEDS_RESET);
    /* a ring outside guest RAM breaks at queue enable */
    CHECK(vdrv_negotiate(&r.d, BASE_FEATURES));
    bar_wr(&r.d, r.d.common + 0x16, 2, 0);
    bar_wr(&r.d, r.d.common + 0x18, 2, 64);
    bar_wr(&r.d, r.d.common + 0x20, 8, r.ram.gpa + r.ram.size - 512);
    bar_wr(&r.d, r.d.common + 0x28, 8, r.ram.gpa);
    bar_wr(&r.d, r.d.common + 0x30, 8, r.ram.gpa + 4096);
    bar_wr(&r.d, r.d.common + 0x1c, 2, 1);
    CHECK(vdrv_status(&r.d) & QV_VIRTIO_STATUS_NEEDS_RESET);
    rig_down(&r);
    pass("broken_and_reset");
}

static void test_multiqueue(void)
{
    struct rig r;
    struct qv_virtio_blk_options o = {.num_queues = 4};
    rig_up(&r, &o, 0, BASE_FEATURES | F(QV_VIRTIO_BLK_F_MQ));
    CHECK(vdrv_device_features(&r.d) & F(QV_VIRTIO_BLK_F_MQ));
    CHECK_EQ(bar_rd(&r.d, r.d.device + 34, 2), 4);
    CHECK_EQ(bar_rd(&r.d, r.d.common + 0x12, 2), 4);
    uint8_t *data = ram_ptr(&r.ram, r.data);
    for (uint16_t q = 0; q < 4; q++) {
        fill_pattern(data, 512, q);
        CHECK_EQ(request(&r, q, QV_VIRTIO_BLK_T_OUT, q, 512, 0, NULL), 0);
        CHECK(memcmp(qv_memdisk_data(r.disk) + q * 512, data, 512) == 0);
        CHECK(r.d.irq.msi[q + 1] >= 1);
    }
    rig_down(&r);
    pass("multiqueue");
}

/* iops_limit and io_limit with an injected clock: requests are held and the device returns
 * the time to call again. The transport processes through queue_notify -> process_queue. */
static void test_rate_limits(void)
{
    struct rig r;
    fake_now = 1000000000ull;
    struct qv_virtio_blk_options o = {.iops_limit = 4, .clock_ns = fake_clock};
    rig_up(&r, &o, 0, BASE_FEATURES);
    struct qv_virtio_device *dev = qv_virtio_blk_device(r.blk);
    (void)dev;
    set_hdr(&r, QV_VIRTIO_BLK_T_FLUSH, 0);
    /* 6 flush requests: the burst of 4 passes, 2 wait */
    for (int i = 0; i < 6; i++) {
        struct buf b[2] = {{r.hdr, 16, 0}, {r.status, 1, 1}};
        vdrv_post(&r.d, 0, b, 2, 0);
    }
    kick(&r, 0);
    uint16_t id;
    uint32_t len;
    int done = 0;
    while (vdrv_get_used(&r.d, 0, &id, &len, 2))
        done++;
    CHECK_EQ(done, 4);
    uint64_t deadline = process(&r, 0);
    CHECK(deadline > fake_now);
    CHECK(deadline <= fake_now + 250000000ull + 2); /* one token = 1/4 s */
    fake_now = deadline;
    CHECK_EQ(process(&r, 0) != 0, 1); /* one more passed, one waits */
    while (vdrv_get_used(&r.d, 0, &id, &len, 2))
        done++;
    CHECK_EQ(done, 5);
    fake_now += 1000000000ull;
    CHECK_EQ(process(&r, 0), 0);
    while (vdrv_get_used(&r.d, 0, &id, &len, 2))
        done++;
    CHECK_EQ(done, 6);
    struct qv_virtio_blk_stats st;
    qv_virtio_blk_get_stats(r.blk, &st);
    CHECK(st.throttled >= 2);
    CHECK_EQ(st.flush_ops, 6);
    rig_down(&r);

    /* io_limit: 64 KiB/s, 4 KiB reads: 16 pass at once, then one per 1/16 s */
    fake_now = 5000000000ull;
    struct qv_virtio_blk_options o2 = {.io_limit = 65536, .clock_ns = fake_clock};
    rig_up(&r, &o2, 0, BASE_FEATURES);
    set_hdr(&r, QV_VIRTIO_BLK_T_IN, 0);
    for (int i = 0; i < 20; i++) {
        struct buf b[3] = {{r.hdr, 16, 0}, {r.data, 4096, 1}, {r.status, 1, 1}};
        vdrv_post(&r.d, 0, b, 3, 0);
    }
    kick(&r, 0);
    done = 0;
    while (vdrv_get_used(&r.d, 0, &id, &len, 3))
        done++;
    CHECK_EQ(done, 16);
    deadline = process(&r, 0);
    CHECK(deadline > fake_now && deadline <= fake_now + 62500000ull + 2);
    fake_now += 4 * 62500000ull;
    CHECK_EQ(process(&r, 0), 0);
    while (vdrv_get_used(&r.d, 0, &id, &len, 3))
        done++;
    CHECK_EQ(done, 20);
    rig_down(&r);
    pass("rate_limits");
}

int main(void)
{
    const char *mode = getenv("QV_BLK_IO");
    if (mode && !strcmp(mode, "threads"))
        io_mode = QV_VIRTIO_BLK_IO_THREADS;
    else if (mode && !strcmp(mode, "native"))
        io_mode = QV_VIRTIO_BLK_IO_NATIVE;
    printf("io mode %s\n", mode ? mode : "inline");
    test_config_and_features();
    test_read_write(0);
    test_read_write(1);
    test_scattered();
    test_flush_getid_unsupp();
    test_discard_write_zeroes();
    test_readonly();
    test_out_of_range();
    test_negotiation_failures();
    test_event_idx();
    test_msix_masking_and_intx();
    test_broken_and_reset();
    test_multiqueue();
    test_rate_limits();
    printf("PASS test_virtio_blk\n");
    return 0;
}
