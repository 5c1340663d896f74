/* One hostile-ring scenario, shared by the libFuzzer target (fuzz_virtqueue.c) and the
 * deterministic random-ring test (tests/c/test_virtqueue_random.c).
 *
 * The input bytes choose the queue geometry and features, become the content of a small fake
 * guest RAM (rings, descriptors, buffers), and then script "guest" writes that happen between
 * device operations. The device side pops, checks that every buffer it got lies inside the
 * fake RAM, reads and writes every byte of it, and pushes. The RAM sits between PROT_NONE
 * guard pages, so any access outside it faults; ASan/UBSan catch the rest. */
#ifndef QV_VQ_EXERCISE_H
#define QV_VQ_EXERCISE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "quantavirt/virtqueue.h"

#define VQX_RAM_GPA 0x3000ull
#define VQX_RAM_SIZE 0x10000u
#define VQX_IOV_CAP 64u

struct vqx_ram {
    uint8_t *map, *host;
    size_t map_len;
    struct qv_guest_memory mem;
};

static inline int vqx_ram_init(struct vqx_ram *r)
{
    size_t guard = (size_t)sysconf(_SC_PAGESIZE) * 4;
    r->map_len = 2 * guard + VQX_RAM_SIZE;
    r->map = mmap(NULL, r->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->map == MAP_FAILED)
        return -1;
    r->host = r->map + guard;
    if (mprotect(r->host, VQX_RAM_SIZE, PROT_READ | PROT_WRITE) != 0)
        return -1;
    memset(&r->mem, 0, sizeof r->mem);
    r->mem.nregions = 1;
    r->mem.regions[0] =
        (struct qv_guest_region){.gpa = VQX_RAM_GPA, .size = VQX_RAM_SIZE, .host = r->host};
    return 0;
}

struct vqx_input {
    const uint8_t *p;
    size_t len, pos;
};

static inline uint8_t vqx_u8(struct vqx_input *in)
{
    return in->pos < in->len ? in->p[in->pos++] : 0;
}

static inline uint16_t vqx_u16(struct vqx_input *in)
{
    uint8_t lo = vqx_u8(in); /* two statements: the evaluation order is fixed */
    uint8_t hi = vqx_u8(in);
    return (uint16_t)(lo | hi << 8);
}

/* abort() (a crash the fuzzer reports) when a buffer escapes guest RAM */
static inline void vqx_check_iov(const struct vqx_ram *r, const struct qv_vq_elem *e)
{
    if (e->out_num + e->in_num > e->iov_cap)
        abort();
    uint64_t out = 0, in = 0;
    for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
        const uint8_t *b = e->iov[i].iov_base;
        size_t n = e->iov[i].iov_len;
        if (b < r->host || n > VQX_RAM_SIZE || b + n > r->host + VQX_RAM_SIZE)
            abort();
        volatile uint8_t sink = 0;
        for (size_t k = 0; k < n; k++)
            sink ^= b[k];
        (void)sink;
        if (i >= e->out_num)
            memset(e->iov[i].iov_base, 0xa5, n); /* the device writes what it may write */
        *(i < e->out_num ? &out : &in) += n;
    }
    if (out != e->out_len || in != e->in_len)
        abort();
}

/* How the last scenario ended: -1 setup refused, else the queue's error (QV_VQ_OK = intact). */
static int vqx_last_outcome;

/* Runs one scenario; returns the number of chains popped (for the deterministic test's
 * coverage statistics). */
static inline unsigned vqx_run(struct vqx_ram *r, const uint8_t *data, size_t len)
{
    struct vqx_input in = {data, len, 0};
    uint8_t geo = vqx_u8(&in), feat = vqx_u8(&in), mode = vqx_u8(&in);
    uint16_t size = (geo & 0x80) ? vqx_u16(&in) : (uint16_t)(1u << (geo % 12));
    uint64_t features = ((feat & 1) ? 1ull << QV_VIRTIO_F_INDIRECT_DESC : 0) |
                        ((feat & 2) ? 1ull << QV_VIRTIO_F_EVENT_IDX : 0);
    uint64_t desc = VQX_RAM_GPA, avail = VQX_RAM_GPA + 0x4000, used = VQX_RAM_GPA + 0x6000;
    if (mode & 1) { /* arbitrary ring addresses */
        desc = VQX_RAM_GPA + (uint64_t)vqx_u16(&in) * 2 - 0x100;
        avail = VQX_RAM_GPA + (uint64_t)vqx_u16(&in) * 2 - 0x100;
        used = VQX_RAM_GPA + (uint64_t)vqx_u16(&in) * 2 - 0x100;
    }
    /* sometimes the same RAM as two adjacent regions, so buffers get split at the seam */
    if (mode & 4) {
        r->mem.nregions = 2;
        r->mem.regions[0].size = VQX_RAM_SIZE / 2;
        r->mem.regions[1] = (struct qv_guest_region){.gpa = VQX_RAM_GPA + VQX_RAM_SIZE / 2,
                                                     .size = VQX_RAM_SIZE / 2,
                                                     .host = r->host + VQX_RAM_SIZE / 2};
    } else {
        r->mem.nregions = 1;
        r->mem.regions[0].size = VQX_RAM_SIZE;
    }
    /* RAM content from the input (the rest stays zero) */
    memset(r->host, 0, VQX_RAM_SIZE);
    size_t ram_bytes = vqx_u16(&in);
    if (ram_bytes > in.len - in.pos)
        ram_bytes = in.len - in.pos;
    memcpy(r->host, in.p + in.pos, ram_bytes);
    in.pos += ram_bytes;
    if ((mode & 2) && size <= 4096) {
        /* steer descriptor addresses into and around RAM so chains get deep */
        for (uint32_t i = 0; i < size && 16u * i + 16 <= VQX_RAM_SIZE; i++) {
            uint8_t *d = r->host + 16u * i;
            uint64_t a;
            memcpy(&a, d, 8);
            a = VQX_RAM_GPA + a % (VQX_RAM_SIZE + 64) - 32;
            memcpy(d, &a, 8);
            uint32_t l;
            memcpy(&l, d + 8, 4);
            l %= 4096;
            memcpy(d + 8, &l, 4);
        }
    }

    struct qv_virtqueue vq;
    unsigned popped = 0;
    vqx_last_outcome = -1;
    if (qv_vq_setup(&vq, &r->mem, size, QV_VQ_MAX_SIZE, desc, avail, used, features) != 0)
        return 0;
    struct iovec iov[VQX_IOV_CAP];
    struct qv_vq_elem e = {.iov = iov, .iov_cap = VQX_IOV_CAP};
    uint16_t held[8];
    unsigned nheld = 0;
    for (unsigned step = 0; step < 256 && !vq.broken; step++) {
        uint8_t op = vqx_u8(&in);
        switch (op % 6) {
        case 0:
        case 1: {
            int rc = qv_vq_pop(&vq, &e);
            if (rc == 1) {
                popped++;
                vqx_check_iov(r, &e);
                if ((op & 0x80) && nheld < 8)
                    held[nheld++] = e.head; /* complete later, out of order */
                else
                    qv_vq_push(&vq, e.head, (uint32_t)e.in_len);
            } else if (rc == 0 && in.pos >= in.len) {
                step = 256; /* nothing more will arrive */
            }
            break;
        }
        case 2: /* the guest writes 2 bytes somewhere (rings, descriptors, buffers) */
        {
            uint16_t off = vqx_u16(&in), v = vqx_u16(&in);
            if (off < VQX_RAM_SIZE - 1)
                memcpy(r->host + off, &v, 2);
            break;
        }
        case 3:
            if (nheld)
                qv_vq_push(&vq, held[--nheld], vqx_u8(&in));
            break;
        case 4:
            (void)qv_vq_should_notify(&vq);
            break;
        default:
            if (op & 0x40)
                qv_vq_disable_notify(&vq);
            else
                (void)qv_vq_enable_notify(&vq);
            break;
        }
        if (in.pos >= in.len && step > 16)
            break;
    }
    vqx_last_outcome = vq.error;
    return popped;
}

#endif
