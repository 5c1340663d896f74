/* The block path without KVM: a C "guest" (tests/c/vdriver.h) posts virtio-blk requests in
 * batches through the real PCI transport, virtqueue and virtio-blk device onto a real image
 * opened by qv_disk_open (raw or qcow2) or qv_disk_open_encrypted, the way the engine's I/O
 * thread runs them.
 *
 * usage: bench_blk_path IMAGE FORMAT WORKLOAD BLOCK_BYTES TOTAL_BYTES [HOST_KEY_FILE]
 *   FORMAT raw|qcow2|encrypted (encrypted: HOST_KEY_FILE is the FIPS 203 decapsulation key);
 *   WORKLOAD seqread|seqwrite|randread|randwrite
 * prints: "<workload> <format> bs=<n>: <MB/s> MB/s, <IOPS> IOPS, <seconds> s, cpu <s> s" */
#include <time.h>

#include "../../tests/c/vdriver.h"
#include "quantavirt/disk.h"
#include "quantavirt/disk_encrypted.h"
#include "quantavirt/virtio_blk.h"

#define QSIZE 256
#define BATCH 64

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
static int open_encrypted(const char *image, const char *key_file, struct qv_disk **disk,
                          char *err, size_t errlen)
{
    uint8_t dk[4096];
    FILE *f = fopen(key_file, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open the key file %s", key_file);
        return -1;
    }
    size_t n = fread(dk, 1, sizeof dk, f);
    fclose(f);
    struct qv_disk_options o = {.format = QV_DISK_FORMAT_ENCRYPTED};
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

int main(int argc, char **argv)
{
    int encrypted = argc == 7 && strcmp(argv[2], "encrypted") == 0;
    if (argc != 6 && !encrypted) {
        fprintf(stderr, "usage: %s IMAGE raw|qcow2|encrypted seqread|seqwrite|randread|"
                "randwrite BS TOTAL [HOST_KEY_FILE]\n", argv[0]);
        return 2;
    }
    const char *wl = argv[3];
    uint32_t bs = (uint32_t)strtoul(argv[4], NULL, 0);
    uint64_t total = strtoull(argv[5], NULL, 0);
    int write = strstr(wl, "write") != NULL, rnd = strncmp(wl, "rand", 4) == 0;
    CHECK(bs >= 512 && bs % 512 == 0 && bs <= (1u << 20));
    struct qv_disk_options o = {.format = strcmp(argv[2], "qcow2") == 0 ? QV_DISK_FORMAT_QCOW2
                                                                       : QV_DISK_FORMAT_RAW};
    struct qv_disk *disk;
    char err[256];
    if ((encrypted ? open_encrypted(argv[1], argv[6], &disk, err, sizeof err)
                   : qv_disk_open(argv[1], &o, &disk, err, sizeof err)) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    CHECK(disk->size >= (uint64_t)bs * BATCH);
    struct qv_virtio_blk_options bo = {.queue_size = QSIZE, .seg_max = 256};
    struct qv_virtio_blk *blk = qv_virtio_blk_new(disk, &bo);
    CHECK(blk);
    struct fake_ram ram;
    ram_init(&ram, 0x100000, (uint64_t)BATCH * bs + (8u << 20));
    struct vdrv d;
    vdrv_init(&d, qv_virtio_blk_device(blk), &ram, 2, 1);
    vdrv_enable_msix(&d);
    CHECK(vdrv_negotiate(&d, 1ull << QV_VIRTIO_F_VERSION_1 | 1ull << QV_VIRTIO_F_EVENT_IDX));
    vdrv_setup_queue(&d, 0, QSIZE, 1);
    vdrv_driver_ok(&d);
    uint64_t hdr[BATCH], data[BATCH], status[BATCH];
    for (unsigned i = 0; i < BATCH; i++) {
        hdr[i] = ram_alloc(&ram, 16, 16);
        data[i] = ram_alloc(&ram, bs, 4096);
        status[i] = ram_alloc(&ram, 1, 1);
        memset(ram_ptr(&ram, data[i]), 0x3c + i, bs);
    }
    uint64_t blocks = disk->size / bs, next = 0, seed = 0x9e3779b97f4a7c15ull;
    uint64_t requests = total / bs, done = 0;
    double t0 = now_s(), c0 = cpu_s();
    while (done < requests) {
        unsigned n = requests - done < BATCH ? (unsigned)(requests - done) : BATCH;
        for (unsigned i = 0; i < n; i++) {
            uint8_t *h = ram_ptr(&ram, hdr[i]);
            uint32_t type = write ? QV_VIRTIO_BLK_T_OUT : QV_VIRTIO_BLK_T_IN;
            uint64_t blkno = rnd ? xorshift(&seed) % blocks : next++ % blocks;
            uint64_t sector = blkno * (bs / 512);
            memcpy(h, &type, 4);
            memcpy(h + 8, &sector, 8);
            struct buf b[3] = {{hdr[i], 16, 0}, {data[i], bs, !write}, {status[i], 1, 1}};
            vdrv_post(&d, 0, b, 3, 0);
        }
        dq_set_used_event(&d.q[0], (uint16_t)(d.q[0].last_used + n - 1));
        vdrv_kick(&d, 0);
        uint16_t id;
        uint32_t len;
        unsigned got = 0;
        while (vdrv_get_used(&d, 0, &id, &len, 3))
            got++;
        CHECK_EQ(got, n);
        for (unsigned i = 0; i < n; i++)
            CHECK_EQ(*(uint8_t *)ram_ptr(&ram, status[i]), QV_VIRTIO_BLK_S_OK);
        done += got;
    }
    /* No flush: `qemu-img bench` without --flush-interval does not flush either; both
     * measure the page-cache (writeback) path. */
    double dt = now_s() - t0, dc = cpu_s() - c0;
    printf("%s %s bs=%u: %.1f MB/s, %.0f IOPS, %.4f s, cpu %.4f s\n", wl, argv[2], bs,
           (double)done * bs / dt / 1e6, (double)done / dt, dt, dc);
    vdrv_fini(&d);
    qv_virtio_blk_free(blk);
    qv_disk_close(disk);
    ram_free(&ram);
    return 0;
}
