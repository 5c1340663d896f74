/* virtio-blk with its asynchronous engines (io threads / native io_uring) on real raw image
 * files, through the transport as a guest would drive it: many requests in flight at once,
 * a flush that must complete after every write posted before it, guest buffers not aligned
 * for O_DIRECT (bounce buffers), reads checked against the file, a reset while requests are
 * in flight, and a read-only disk.
 *
 * Usage: test_blk_aio DIR (image files are created there). */
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

#include "quantavirt/disk.h"
#include "quantavirt/virtio_blk.h"
#include "vdriver.h"

#define DISK_BYTES (8u << 20)
#define NREQ 48u
#define FLUSH_AT 40u   /* request index of the flush */
#define BLOCK 4096u
#define QSIZE 256

struct slot {
    uint64_t hdr, data, status;
    uint16_t head;
};

struct rig {
    struct fake_ram ram;
    struct qv_disk *disk;
    struct qv_virtio_blk *blk;
    struct vdrv d;
    struct slot s[NREQ];
    uint64_t pad;
};

static const char *dir;

static void make_image(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, DISK_BYTES) == 0);
    close(fd);
}

static void rig_up(struct rig *r, const char *path, uint32_t cache, int readonly, uint32_t mode)
{
    ram_init(&r->ram, 0x100000, 16u << 20);
    struct qv_disk_options o = {.format = QV_DISK_FORMAT_RAW, .cache = cache,
                                .readonly = readonly};
    char err[256];
    CHECK(qv_disk_open(path, &o, &r->disk, err, sizeof err) == 0);
    struct qv_virtio_blk_options bo = {.io_mode = mode};
    CHECK(qv_virtio_blk_create(r->disk, &bo, &r->blk, err, sizeof err) == 0);
    struct qv_virtio_device *dev = qv_virtio_blk_device(r->blk);
    vdrv_init(&r->d, dev, &r->ram, 2, 1);
    vdrv_enable_msix(&r->d);
    CHECK(vdrv_negotiate(&r->d, 1ull << QV_VIRTIO_F_VERSION_1));
    vdrv_setup_queue(&r->d, 0, QSIZE, 1);
    vdrv_driver_ok(&r->d);
    for (unsigned i = 0; i < NREQ; i++) {
        r->s[i].hdr = ram_alloc(&r->ram, 16, 16);
        r->s[i].data = ram_alloc(&r->ram, 2 * BLOCK, BLOCK);
        r->s[i].status = ram_alloc(&r->ram, 1, 1);
    }
    r->pad = ram_alloc(&r->ram, 16, 16);
}

static void rig_down(struct rig *r)
{
    vdrv_fini(&r->d);
    qv_virtio_blk_free(r->blk);
    qv_disk_close(r->disk);
    ram_free(&r->ram);
}

/* Odd requests use a buffer 8 bytes into its block: not aligned for O_DIRECT. */
static uint64_t buf_of(const struct rig *r, unsigned i)
{
    return r->s[i].data + (i % 2 ? 8 : 0);
}

static void pattern(uint8_t *p, unsigned i, unsigned gen)
{
    for (unsigned k = 0; k < BLOCK; k++)
        p[k] = (uint8_t)(k * 13 + i * 7 + gen * 101 + (k >> 8));
}

static void post(struct rig *r, unsigned i, uint32_t type, uint64_t sector)
{
    uint8_t *h = ram_ptr(&r->ram, r->s[i].hdr);
    memset(h, 0, 16);
    memcpy(h, &type, 4);
    memcpy(h + 8, &sector, 8);
    *(uint8_t *)ram_ptr(&r->ram, r->s[i].status) = 0xee;
    struct buf b[3] = {{r->s[i].hdr, 16, 0}, {buf_of(r, i), BLOCK, type == QV_VIRTIO_BLK_T_IN},
                       {r->s[i].status, 1, 1}};
    if (type == QV_VIRTIO_BLK_T_FLUSH)
        b[1] = (struct buf){r->pad, 16, 0}; /* three descriptors for every chain */
    r->s[i].head = vdrv_post(&r->d, 0, b, 3, 0);
}

/* Collect count used elements (heads in completion order), serving the completion fd. */
static void wait_used(struct rig *r, unsigned count, uint16_t *order)
{
    unsigned got = 0;
    while (got < count) {
        uint16_t id;
        uint32_t len;
        while (got < count && vdrv_get_used(&r->d, 0, &id, &len, 3))
            order[got++] = id;
        if (got == count)
            break;
        struct pollfd p = {.fd = qv_virtio_blk_completion_fd(r->blk), .events = POLLIN};
        CHECK(p.fd >= 0);
        CHECK(poll(&p, 1, 10000) == 1); /* a completion within 10 s */
        uint64_t c;
        CHECK(read(p.fd, &c, sizeof c) == (ssize_t)sizeof c);
        qv_virtio_pci_complete(r->d.pci, NULL);
    }
}

static unsigned index_of(const struct rig *r, uint16_t head)
{
    for (unsigned i = 0; i < NREQ; i++)
        if (r->s[i].head == head)
            return i;
    CHECK(0);
    return 0;
}

static void check_file(const char *path, unsigned gen)
{
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    uint8_t got[BLOCK], want[BLOCK];
    for (unsigned i = 0; i < NREQ; i++) {
        if (i == FLUSH_AT)
            continue;
        CHECK(pread(fd, got, BLOCK, (off_t)i * 2 * BLOCK) == BLOCK);
        pattern(want, i, gen);
        CHECK(memcmp(got, want, BLOCK) == 0);
    }
    close(fd);
}

static void test_mode(uint32_t mode, uint32_t cache, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/aio-%s.raw", dir, name);
    make_image(path);
    struct rig r;
    rig_up(&r, path, cache, 0, mode);

    /* NREQ requests in one kick: writes of 4 KiB at sector 16 * i, a flush at FLUSH_AT */
    for (unsigned i = 0; i < NREQ; i++) {
        if (i == FLUSH_AT) {
            post(&r, i, QV_VIRTIO_BLK_T_FLUSH, 0);
            continue;
        }
        pattern(ram_ptr(&r.ram, buf_of(&r, i)), i, 1);
        post(&r, i, QV_VIRTIO_BLK_T_OUT, (uint64_t)i * 2 * BLOCK / 512);
    }
    vdrv_kick(&r.d, 0);
    uint16_t order[NREQ];
    wait_used(&r, NREQ, order);
    unsigned flush_pos = NREQ;
    for (unsigned k = 0; k < NREQ; k++) {
        unsigned i = index_of(&r, order[k]);
        CHECK_EQ(*(uint8_t *)ram_ptr(&r.ram, r.s[i].status), QV_VIRTIO_BLK_S_OK);
        if (i == FLUSH_AT)
            flush_pos = k;
    }
    /* the flush completed after every write posted before it */
    CHECK(flush_pos < NREQ);
    for (unsigned k = flush_pos + 1; k < NREQ; k++)
        CHECK(index_of(&r, order[k]) > FLUSH_AT);
    check_file(path, 1);

    struct qv_virtio_blk_stats st;
    qv_virtio_blk_get_stats(r.blk, &st);
    CHECK_EQ(st.wr_ops, NREQ - 1);
    CHECK_EQ(st.flush_ops, 1);
    CHECK_EQ(st.io_errors, 0);
    CHECK_EQ(st.aio_submitted, NREQ);
    CHECK(st.aio_max_inflight >= 8); /* several requests were in flight at once */
    if (mode == QV_VIRTIO_BLK_IO_NATIVE) {
        CHECK(st.aio_uring >= NREQ - 1); /* everything maps to the raw file */
        if (cache == QV_DISK_CACHE_NONE)
            CHECK(st.aio_bounced >= (NREQ - 1) / 2); /* the odd, unaligned buffers */
    }

    /* read everything back, all in flight at once, into cleared buffers */
    for (unsigned i = 0; i < NREQ; i++) {
        if (i == FLUSH_AT) {
            post(&r, i, QV_VIRTIO_BLK_T_FLUSH, 0);
            continue;
        }
        memset(ram_ptr(&r.ram, buf_of(&r, i)), 0, BLOCK);
        post(&r, i, QV_VIRTIO_BLK_T_IN, (uint64_t)i * 2 * BLOCK / 512);
    }
    vdrv_kick(&r.d, 0);
    wait_used(&r, NREQ, order);
    for (unsigned i = 0; i < NREQ; i++) {
        CHECK_EQ(*(uint8_t *)ram_ptr(&r.ram, r.s[i].status), QV_VIRTIO_BLK_S_OK);
        if (i == FLUSH_AT)
            continue;
        uint8_t want[BLOCK];
        pattern(want, i, 1);
        CHECK(memcmp(ram_ptr(&r.ram, buf_of(&r, i)), want, BLOCK) == 0);
    }
    qv_virtio_blk_get_stats(r.blk, &st);
    CHECK_EQ(st.rd_ops, NREQ - 1);

    /* a reset while writes are in flight: it waits for them, nothing is pushed afterwards */
    for (unsigned i = 0; i < NREQ; i++) {
        pattern(ram_ptr(&r.ram, buf_of(&r, i)), i, 2);
        post(&r, i, QV_VIRTIO_BLK_T_OUT, (uint64_t)i * 2 * BLOCK / 512);
    }
    vdrv_kick(&r.d, 0);
    bar_wr(&r.d, r.d.common + 0x14, 1, 0);
    CHECK_EQ(vdrv_status(&r.d), 0);
    qv_virtio_pci_complete(r.d.pci, NULL); /* nothing left to push */
    uint16_t id;
    uint32_t len;
    CHECK(!vdrv_get_used(&r.d, 0, &id, &len, 3));
    rig_down(&r);
    check_file(path, 2); /* the reset waited: every started write reached the file */
    printf("ok %s\n", name);
    fflush(stdout);
}

static void test_readonly(uint32_t mode, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/aio-ro-%s.raw", dir, name);
    make_image(path);
    struct rig r;
    rig_up(&r, path, QV_DISK_CACHE_WRITEBACK, 0, mode); /* fill it first */
    for (unsigned i = 0; i < NREQ; i++) {
        pattern(ram_ptr(&r.ram, buf_of(&r, i)), i, 3);
        post(&r, i, QV_VIRTIO_BLK_T_OUT, (uint64_t)i * 2 * BLOCK / 512);
    }
    vdrv_kick(&r.d, 0);
    uint16_t order[NREQ];
    wait_used(&r, NREQ, order);
    rig_down(&r);

    rig_up(&r, path, QV_DISK_CACHE_WRITEBACK, 1, mode);
    for (unsigned i = 0; i < NREQ; i++) {
        memset(ram_ptr(&r.ram, buf_of(&r, i)), 0x5a, BLOCK);
        post(&r, i, i % 2 ? QV_VIRTIO_BLK_T_OUT : QV_VIRTIO_BLK_T_IN,
             (uint64_t)i * 2 * BLOCK / 512);
    }
    vdrv_kick(&r.d, 0);
    wait_used(&r, NREQ, order);
    for (unsigned i = 0; i < NREQ; i++) {
        uint8_t status = *(uint8_t *)ram_ptr(&r.ram, r.s[i].status);
        CHECK_EQ(status, i % 2 ? QV_VIRTIO_BLK_S_IOERR : QV_VIRTIO_BLK_S_OK);
    }
    rig_down(&r);
    /* nothing written: every block still has the first pattern */
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    uint8_t got[BLOCK], want[BLOCK];
    for (unsigned i = 0; i < NREQ; i++) {
        CHECK(pread(fd, got, BLOCK, (off_t)i * 2 * BLOCK) == BLOCK);
        pattern(want, i, 3);
        CHECK(memcmp(got, want, BLOCK) == 0);
    }
    close(fd);
    printf("ok %s\n", name);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    dir = argc > 1 ? argv[1] : ".";
    test_mode(QV_VIRTIO_BLK_IO_THREADS, QV_DISK_CACHE_WRITEBACK, "threads_writeback");
    test_mode(QV_VIRTIO_BLK_IO_THREADS, QV_DISK_CACHE_NONE, "threads_none");
    test_mode(QV_VIRTIO_BLK_IO_NATIVE, QV_DISK_CACHE_NONE, "native_none");
    test_mode(QV_VIRTIO_BLK_IO_NATIVE, QV_DISK_CACHE_DIRECTSYNC, "native_directsync");
    test_mode(QV_VIRTIO_BLK_IO_NATIVE, QV_DISK_CACHE_WRITEBACK, "native_writeback");
    test_readonly(QV_VIRTIO_BLK_IO_THREADS, "readonly_threads");
    test_readonly(QV_VIRTIO_BLK_IO_NATIVE, "readonly_native");
    printf("PASS test_blk_aio\n");
    return 0;
}
