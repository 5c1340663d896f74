/* Micro-benchmark of the virtio fast path, no KVM: 4 KiB virtio-blk reads from an in-memory
 * disk through the real PCI transport, virtqueue pop/push and request execution, with a C
 * "guest" posting batches of requests and reaping completions. Also the bare virtqueue
 * (pop + push of 3-descriptor chains) without a device.
 *
 * usage: bench_virtqueue [requests]   prints requests/s for both. */
#include <time.h>

#include "../../tests/c/vdriver.h"
#include "quantavirt/memdisk.h"
#include "quantavirt/virtio_blk.h"

#define QSIZE 256
#define BATCH 64
#define REQ_BYTES 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double bench_blk(unsigned long requests)
{
    struct fake_ram ram;
    ram_init(&ram, 0x100000, 64u << 20);
    struct qv_disk *disk = qv_memdisk_new(64u << 20, 0);
    struct qv_virtio_blk *blk = qv_virtio_blk_new(disk, NULL);
    CHECK(disk && blk);
    /* real pages, not the shared zero page of an untouched allocation */
    memset(qv_memdisk_data(disk), 0x5a, 64u << 20);
    struct vdrv d;
    vdrv_init(&d, qv_virtio_blk_device(blk), &ram, 2, 1);
    vdrv_enable_msix(&d);
    CHECK(vdrv_negotiate(&d, 1ull << QV_VIRTIO_F_VERSION_1 | 1ull << QV_VIRTIO_F_EVENT_IDX));
    vdrv_setup_queue(&d, 0, QSIZE, 1);
    vdrv_driver_ok(&d);
    uint64_t hdr[BATCH], data[BATCH], status[BATCH];
    for (unsigned i = 0; i < BATCH; i++) {
        hdr[i] = ram_alloc(&ram, 16, 16);
        data[i] = ram_alloc(&ram, REQ_BYTES, 4096);
        status[i] = ram_alloc(&ram, 1, 1);
    }
    unsigned long done = 0;
    uint64_t sector = 0;
    double t0 = now_s();
    while (done < requests) {
        for (unsigned i = 0; i < BATCH; i++) {
            uint8_t *h = ram_ptr(&ram, hdr[i]);
            uint32_t type = QV_VIRTIO_BLK_T_IN;
            memcpy(h, &type, 4);
            memcpy(h + 8, &sector, 8);
            sector = (sector + 8) % ((64u << 20) / 512 - 8);
            struct buf b[3] = {{hdr[i], 16, 0}, {data[i], REQ_BYTES, 1}, {status[i], 1, 1}};
            vdrv_post(&d, 0, b, 3, 0);
        }
        dq_set_used_event(&d.q[0], (uint16_t)(d.q[0].last_used + BATCH - 1));
        vdrv_kick(&d, 0);
        uint16_t id;
        uint32_t len;
        unsigned got = 0;
        while (vdrv_get_used(&d, 0, &id, &len, 3))
            got++;
        CHECK_EQ(got, BATCH);
        CHECK_EQ(*(uint8_t *)ram_ptr(&ram, status[0]), QV_VIRTIO_BLK_S_OK);
        done += got;
    }
    double rate = (double)done / (now_s() - t0);
    struct qv_virtio_blk_stats st;
    qv_virtio_blk_get_stats(blk, &st);
    CHECK_EQ(st.rd_ops, done);
    CHECK_EQ(((uint8_t *)ram_ptr(&ram, data[BATCH - 1]))[REQ_BYTES - 1], 0x5a);
    vdrv_fini(&d);
    qv_virtio_blk_free(blk);
    disk->ops->close(disk);
    ram_free(&ram);
    return rate;
}

static double bench_ring(unsigned long requests)
{
    struct fake_ram ram;
    ram_init(&ram, 0x100000, 1u << 20);
    struct dq q = {.size = QSIZE};
    q.desc_gpa = ram_alloc(&ram, 16u * QSIZE, 16);
    q.avail_gpa = ram_alloc(&ram, 6u + 2u * QSIZE, 2);
    q.used_gpa = ram_alloc(&ram, 6u + 8u * QSIZE, 4);
    q.desc = ram_ptr(&ram, q.desc_gpa);
    q.avail = ram_ptr(&ram, q.avail_gpa);
    q.used = ram_ptr(&ram, q.used_gpa);
    uint64_t buf = ram_alloc(&ram, REQ_BYTES + 32, 4096);
    for (uint16_t i = 0; i < QSIZE; i += 4) {
        put_desc(q.desc, i, buf, 16, 1, (uint16_t)(i + 1));
        put_desc(q.desc, (uint16_t)(i + 1), buf + 16, REQ_BYTES, 3, (uint16_t)(i + 2));
        put_desc(q.desc, (uint16_t)(i + 2), buf + 16 + REQ_BYTES, 1, 2, 0);
    }
    struct qv_virtqueue vq;
    CHECK_EQ(qv_vq_setup(&vq, &ram.mem, QSIZE, QSIZE, q.desc_gpa, q.avail_gpa, q.used_gpa, 0), 0);
    struct iovec iov[8];
    struct qv_vq_elem e = {.iov = iov, .iov_cap = 8};
    unsigned long done = 0;
    double t0 = now_s();
    while (done < requests) {
        for (unsigned i = 0; i < BATCH; i++)
            dq_publish(&q, (uint16_t)((i % (QSIZE / 4)) * 4));
        while (qv_vq_pop(&vq, &e) == 1) {
            qv_vq_push(&vq, e.head, (uint32_t)e.in_len);
            done++;
        }
        (void)qv_vq_should_notify(&vq);
    }
    double rate = (double)done / (now_s() - t0);
    CHECK(!vq.broken);
    ram_free(&ram);
    return rate;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 2000000;
    double blk = bench_blk(n);
    double ring = bench_ring(n * 4);
    printf("virtio-blk 4K reads (memdisk, transport + virtqueue + device): %.0f requests/s\n",
           blk);
    printf("virtqueue pop+push (3-descriptor chains, no device): %.0f requests/s\n", ring);
    return 0;
}
