/* The block path without KVM: a C "guest" (tests/c/vdriver.h) posts virtio-blk requests in
 * batches through the real PCI transport, virtqueue and virtio-blk device onto a real image
 * opened by qv_disk_open (raw or qcow2) or qv_disk_open_encrypted, the way the engine's I/O
 * thread runs them.
 *
 * usage: bench_blk_path IMAGE FORMAT WORKLOAD BLOCK_BYTES TOTAL_BYTES [IO [CACHE]]
 *   FORMAT raw|qcow2|encrypted:HOST_KEY_FILE (the FIPS 203 decapsulation key);
 *   WORKLOAD seqread|seqwrite|randread|randwrite;
 *   IO inline (default: requests run inside process_queue) | threads | native;
 *   CACHE writeback (default) | none | directsync
 * DEPTH requests stay in flight: each completion is answered with a new request at once (with
 * an engine the completion fd is polled and qv_virtio_pci_complete() called, as the VMM's I/O
 * thread does).
 * prints: "<workload> <format> bs=<n>: <MB/s> MB/s, <IOPS> IOPS, <seconds> s, cpu <s> s (...)" */
#include <poll.h>
#include <time.h>

#include "../../tests/c/vdriver.h"
#include "quantavirt/disk.h"
#include "quantavirt/disk_encrypted.h"
#include "quantavirt/virtio_blk.h"

#define QSIZE 256
#define BATCH 64 /* queue depth */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The encrypted image, opened with the host secret key read from key_file. */
static int open_encrypted(const char *image, const char *key_file, uint32_t cache,
                          struct qv_disk **disk, char *err, size_t errlen)
{
    uint8_t dk[4096];
    FILE *f = fopen(key_file, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open the key file %s", key_file);
        return -1;
    }
    size_t n = fread(dk, 1, sizeof dk, f);
    fclose(f);
    struct qv_disk_options o = {.format = QV_DISK_FORMAT_ENCRYPTED, .cache = cache};
    int rc = qv_disk_open_encrypted(image, &o, dk, n, disk, err, errlen);
    memset(dk, 0, sizeof dk);
    return rc;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint32_t parse_io(const char *s)
{
    if (!strcmp(s, "threads"))
        return QV_VIRTIO_BLK_IO_THREADS;
    if (!strcmp(s, "native"))
        return QV_VIRTIO_BLK_IO_NATIVE;
    CHECK(!strcmp(s, "inline"));
    return QV_VIRTIO_BLK_IO_INLINE;
}

static uint32_t parse_cache(const char *s)
{
    if (!strcmp(s, "none"))
        return QV_DISK_CACHE_NONE;
    if (!strcmp(s, "directsync"))
        return QV_DISK_CACHE_DIRECTSYNC;
    CHECK(!strcmp(s, "writeback"));
    return QV_DISK_CACHE_WRITEBACK;
}

int main(int argc, char **argv)
{
    if (argc < 6 || argc > 8) {
        fprintf(stderr, "usage: %s IMAGE raw|qcow2|encrypted:KEY_FILE seqread|seqwrite|randread|"
                "randwrite BS TOTAL [inline|threads|native [writeback|none|directsync]]\n",
                argv[0]);
        return 2;
    }
    const char *wl = argv[3];
    uint32_t bs = (uint32_t)strtoul(argv[4], NULL, 0);
    uint64_t total = strtoull(argv[5], NULL, 0);
    uint32_t io = argc > 6 ? parse_io(argv[6]) : QV_VIRTIO_BLK_IO_INLINE;
    uint32_t cache = argc > 7 ? parse_cache(argv[7]) : QV_DISK_CACHE_WRITEBACK;
    int write = strstr(wl, "write") != NULL, rnd = strncmp(wl, "rand", 4) == 0;
    CHECK(bs >= 512 && bs % 512 == 0 && bs <= (1u << 20));
    struct qv_disk_options o = {.format = strcmp(argv[2], "qcow2") == 0 ? QV_DISK_FORMAT_QCOW2
                                                                       : QV_DISK_FORMAT_RAW,
                                .cache = cache};
    struct qv_disk *disk;
    char err[256];
    const char *key_file = strncmp(argv[2], "encrypted:", 10) == 0 ? argv[2] + 10 : NULL;
    if ((key_file ? open_encrypted(argv[1], key_file, cache, &disk, err, sizeof err)
                  : qv_disk_open(argv[1], &o, &disk, err, sizeof err)) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    CHECK(disk->size >= (uint64_t)bs * BATCH);
    struct qv_virtio_blk_options bo = {.queue_size = QSIZE, .seg_max = 256, .io_mode = io};
    struct qv_virtio_blk *blk;
    if (qv_virtio_blk_create(disk, &bo, &blk, err, sizeof err) != 0) {
        fprintf(stderr, "virtio-blk: %s\n", err);
        return 1;
    }
    struct fake_ram ram;
    ram_init(&ram, 0x100000, (uint64_t)BATCH * bs + (8u << 20));
    struct vdrv d;
    vdrv_init(&d, qv_virtio_blk_device(blk), &ram, 2, 1);
    vdrv_enable_msix(&d);
    CHECK(vdrv_negotiate(&d, 1ull << QV_VIRTIO_F_VERSION_1 | 1ull << QV_VIRTIO_F_EVENT_IDX));
    vdrv_setup_queue(&d, 0, QSIZE, 1);
    vdrv_driver_ok(&d);
    uint64_t hdr[BATCH], data[BATCH], status[BATCH];
    uint16_t head[BATCH];
    for (unsigned i = 0; i < BATCH; i++) {
        hdr[i] = ram_alloc(&ram, 16, 16);
        data[i] = ram_alloc(&ram, bs, 4096);
        status[i] = ram_alloc(&ram, 1, 1);
        memset(ram_ptr(&ram, data[i]), 0x3c + i, bs);
    }
    uint64_t blocks = disk->size / bs, next = 0, seed = 0x9e3779b97f4a7c15ull;
    uint64_t requests = total / bs, posted = 0, done = 0;
    int cfd = qv_virtio_blk_completion_fd(blk);
    double t0 = now_s(), c0 = cpu_s();
    /* post one request in slot i */
#define POST(i)                                                                              \
    do {                                                                                     \
        uint8_t *h = ram_ptr(&ram, hdr[i]);                                                  \
        uint32_t type = write ? QV_VIRTIO_BLK_T_OUT : QV_VIRTIO_BLK_T_IN;                    \
        uint64_t blkno = rnd ? xorshift(&seed) % blocks : next++ % blocks;                   \
        uint64_t sector = blkno * (bs / 512);                                                \
        memcpy(h, &type, 4);                                                                 \
        memcpy(h + 8, &sector, 8);                                                           \
        *(uint8_t *)ram_ptr(&ram, status[i]) = 0xee;                                         \
        struct buf b[3] = {{hdr[i], 16, 0}, {data[i], bs, !write}, {status[i], 1, 1}};       \
        head[i] = vdrv_post(&d, 0, b, 3, 0);                                                 \
        posted++;                                                                            \
    } while (0)
    for (unsigned i = 0; i < BATCH && posted < requests; i++)
        POST(i);
    vdrv_kick(&d, 0);
    while (done < requests) {
        uint16_t id;
        uint32_t len;
        unsigned got = 0;
        while (vdrv_get_used(&d, 0, &id, &len, 3)) {
            unsigned i = 0;
            while (i < BATCH && head[i] != id)
                i++;
            CHECK(i < BATCH);
            CHECK_EQ(*(uint8_t *)ram_ptr(&ram, status[i]), QV_VIRTIO_BLK_S_OK);
            done++;
            got++;
            head[i] = 0xffff;
            if (posted < requests)
                POST(i);
        }
        if (got && posted > done) {
            vdrv_kick(&d, 0);
            continue;
        }
        if (done < requests) {
            CHECK(cfd >= 0); /* inline: everything completed inside the kick */
            struct pollfd p = {.fd = cfd, .events = POLLIN};
            CHECK(poll(&p, 1, 10000) == 1);
            uint64_t c;
            CHECK(read(cfd, &c, sizeof c) == (ssize_t)sizeof c);
            qv_virtio_pci_complete(d.pci, NULL);
        }
    }
    /* No flush: `qemu-img bench` without --flush-interval does not flush either. */
    double dt = now_s() - t0, dc = cpu_s() - c0;
    struct qv_virtio_blk_stats st;
    qv_virtio_blk_get_stats(blk, &st);
    printf("%s %s bs=%u: %.1f MB/s, %.0f IOPS, %.4f s, cpu %.4f s (io %s, max in flight %llu)\n",
           wl, key_file ? "encrypted" : argv[2], bs, (double)done * bs / dt / 1e6,
           (double)done / dt, dt, dc, qv_virtio_blk_io_backend(blk),
           (unsigned long long)st.aio_max_inflight);
    vdrv_fini(&d);
    qv_virtio_blk_free(blk);
    qv_disk_close(disk);
    ram_free(&ram);
    return 0;
}
