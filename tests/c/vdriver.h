/* A test-side virtio "guest": fake guest RAM between guard pages, and a minimal virtio-pci
 * driver that talks to the transport only through its register functions (PCI configuration
 * space and BAR 0), the way a guest driver would: it walks the capability list, sizes and
 * assigns the BAR, negotiates features, lays out split rings in guest RAM, posts chains and
 * reads the used ring. Header-only so each test program is self-contained. */
#ifndef QV_TEST_VDRIVER_H
#define QV_TEST_VDRIVER_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "quantavirt/guest_memory.h"
#include "quantavirt/virtio_pci.h"

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)
#define CHECK_EQ(a, b)                                                                       \
    do {                                                                                     \
        unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b);     \
        if (va_ != vb_) {                                                                    \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (0x%llx != 0x%llx)\n",         \
                    __FILE__, __LINE__, #a, #b, va_, vb_);                                   \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

/* ---- fake guest RAM with PROT_NONE guard pages on both sides ---- */

struct fake_ram {
    uint8_t *map;      /* whole mapping, guards included */
    size_t map_len;
    uint8_t *host;     /* first RAM byte */
    uint64_t gpa;
    uint64_t size;
    uint64_t next;     /* bump allocator (offset) */
    struct qv_guest_memory mem;
};

static inline void ram_init(struct fake_ram *r, uint64_t gpa, uint64_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t guard = (size_t)page * 4;
    r->map_len = guard * 2 + (size_t)size;
    r->map = mmap(NULL, r->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(r->map != MAP_FAILED);
    r->host = r->map + guard;
    CHECK(mprotect(r->host, (size_t)size, PROT_READ | PROT_WRITE) == 0);
    r->gpa = gpa;
    r->size = size;
    r->next = 0;
    memset(&r->mem, 0, sizeof r->mem);
    r->mem.nregions = 1;
    r->mem.regions[0] = (struct qv_guest_region){.gpa = gpa, .size = size, .host = r->host};
}

static inline void ram_free(struct fake_ram *r)
{
    munmap(r->map, r->map_len);
}

static inline uint64_t ram_alloc(struct fake_ram *r, uint64_t len, uint64_t align)
{
    uint64_t off = (r->next + align - 1) & ~(align - 1);
    CHECK(off + len <= r->size);
    r->next = off + len;
    memset(r->host + off, 0, (size_t)len);
    return r->gpa + off;
}

static inline void *ram_ptr(struct fake_ram *r, uint64_t gpa)
{
    CHECK(gpa >= r->gpa && gpa - r->gpa < r->size);
    return r->host + (gpa - r->gpa);
}

/* ---- interrupts seen by the "guest" ---- */

struct irq_log {
    unsigned msi[64];
    uint64_t last_addr;
    uint32_t last_data;
    int intx;
    unsigned intx_raises;
    unsigned kicks[64];
};

static inline void log_msi(void *opaque, uint16_t vector, uint64_t addr, uint32_t data)
{
    struct irq_log *l = opaque;
    CHECK(vector < 64);
    l->msi[vector]++;
    l->last_addr = addr;
    l->last_data = data;
}

static inline void log_intx(void *opaque, int level)
{
    struct irq_log *l = opaque;
    if (level && !l->intx)
        l->intx_raises++;
    l->intx = level;
}

/* ---- the driver ---- */

struct dq {
    uint16_t size;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint8_t *desc, *avail, *used;
    uint16_t avail_idx;
    uint16_t last_used;
    uint16_t free_head;
    uint16_t nfree;
    uint16_t *next_free;
};

struct vdrv {
    struct qv_virtio_pci *pci;
    struct fake_ram *ram;
    struct irq_log irq;
    uint32_t common, notify, isr, device, notify_mult;
    uint8_t msix_cap;
    uint16_t msix_size;
    uint32_t msix_table, msix_pba;
    uint32_t device_len;
    int have_pcicfg;
    uint8_t pcicfg_cap;
    struct dq q[16];
};

static inline uint64_t cfg_rd(struct vdrv *d, uint32_t off, unsigned size)
{
    return qv_virtio_pci_config_read(d->pci, off, size);
}
static inline void cfg_wr(struct vdrv *d, uint32_t off, unsigned size, uint32_t v)
{
    qv_virtio_pci_config_write(d->pci, off, size, v);
}
static inline uint64_t bar_rd(struct vdrv *d, uint64_t off, unsigned size)
{
    return qv_virtio_pci_bar_read(d->pci, off, size);
}
static inline void bar_wr(struct vdrv *d, uint64_t off, unsigned size, uint64_t v)
{
    qv_virtio_pci_bar_write(d->pci, off, size, v);
}

#define BAR_GPA 0xfe000000ull

/* Find the capabilities like a guest driver does. */
static inline void vdrv_probe(struct vdrv *d)
{
    CHECK_EQ(cfg_rd(d, 0x00, 2), 0x1af4);
    CHECK(cfg_rd(d, 0x02, 2) >= 0x1040);
    CHECK_EQ(cfg_rd(d, 0x08, 1), 1);
    CHECK(cfg_rd(d, 0x06, 2) & 0x10);
    /* BAR sizing: all ones, read the mask, then assign */
    cfg_wr(d, 0x10, 4, 0xffffffffu);
    cfg_wr(d, 0x14, 4, 0xffffffffu);
    uint32_t lo = (uint32_t)cfg_rd(d, 0x10, 4);
    CHECK_EQ(lo & 0xf, 0x4); /* 64-bit memory */
    uint64_t mask = ((uint64_t)cfg_rd(d, 0x14, 4) << 32) | (lo & ~0xfu);
    CHECK_EQ(~mask + 1, QV_VIRTIO_PCI_BAR_SIZE);
    cfg_wr(d, 0x10, 4, (uint32_t)BAR_GPA);
    cfg_wr(d, 0x14, 4, (uint32_t)(BAR_GPA >> 32));
    CHECK_EQ(qv_virtio_pci_bar_address(d->pci), BAR_GPA);
    cfg_wr(d, 0x04, 2, 0x6); /* memory + bus master */
    CHECK(qv_virtio_pci_memory_enabled(d->pci));

    unsigned seen = 0, guard = 0;
    for (uint8_t p = (uint8_t)cfg_rd(d, 0x34, 1); p; p = (uint8_t)cfg_rd(d, p + 1, 1)) {
        CHECK(++guard < 48);
        uint8_t id = (uint8_t)cfg_rd(d, p, 1);
        if (id == 0x11) {
            d->msix_cap = p;
            d->msix_size = (uint16_t)((cfg_rd(d, p + 2, 2) & 0x7ff) + 1);
            d->msix_table = (uint32_t)cfg_rd(d, p + 4, 4);
            d->msix_pba = (uint32_t)cfg_rd(d, p + 8, 4);
            CHECK_EQ(d->msix_table & 7, 0); /* BIR 0 */
            continue;
        }
        CHECK_EQ(id, 0x09);
        uint8_t type = (uint8_t)cfg_rd(d, p + 3, 1);
        CHECK_EQ(cfg_rd(d, p + 4, 1), 0);
        uint32_t off = (uint32_t)cfg_rd(d, p + 8, 4), len = (uint32_t)cfg_rd(d, p + 12, 4);
        seen |= 1u << type;
        switch (type) {
        case 1:
            d->common = off;
            CHECK(len >= 0x38);
            break;
        case 2:
            d->notify = off;
            d->notify_mult = (uint32_t)cfg_rd(d, p + 16, 4);
            break;
        case 3:
            d->isr = off;
            break;
        case 4:
            d->device = off;
            d->device_len = len;
            break;
        case 5:
            d->have_pcicfg = 1;
            d->pcicfg_cap = p;
            break;
        }
    }
    CHECK((seen & 0x2e) == 0x2e); /* common, notify, isr and pci cfg always present */
    CHECK(d->msix_cap != 0);
}

static inline void vdrv_init(struct vdrv *d, struct qv_virtio_device *dev, struct fake_ram *ram,
                             uint16_t nvec, int inline_processing)
{
    memset(d, 0, sizeof *d);
    d->ram = ram;
    struct qv_virtio_pci_callbacks cb = {.msi = log_msi, .intx = log_intx, .opaque = &d->irq};
    (void)inline_processing;
    d->pci = qv_virtio_pci_new(dev, &ram->mem, nvec, &cb);
    CHECK(d->pci != NULL);
    vdrv_probe(d);
}

static inline void vdrv_fini(struct vdrv *d)
{
    for (unsigned i = 0; i < 16; i++)
        free(d->q[i].next_free);
    qv_virtio_pci_free(d->pci);
}

/* Enable MSI-X with vector v -> (0xfee00000 + v*0x1000, 0x4000 + v), all unmasked. */
static inline void vdrv_enable_msix(struct vdrv *d)
{
    for (uint16_t v = 0; v < d->msix_size; v++) {
        uint32_t e = d->msix_table + 16u * v;
        bar_wr(d, e, 4, 0xfee00000u + 0x1000u * v);
        bar_wr(d, e + 4, 4, 0);
        bar_wr(d, e + 8, 4, 0x4000u + v);
        bar_wr(d, e + 12, 4, 0);
    }
    uint16_t ctrl = (uint16_t)cfg_rd(d, d->msix_cap + 2, 2);
    cfg_wr(d, d->msix_cap + 2, 2, ctrl | 0x8000u);
}

static inline uint8_t vdrv_status(struct vdrv *d)
{
    return (uint8_t)bar_rd(d, d->common + 0x14, 1);
}

static inline uint64_t vdrv_device_features(struct vdrv *d)
{
    bar_wr(d, d->common + 0x00, 4, 0);
    uint64_t f = bar_rd(d, d->common + 0x04, 4);
    bar_wr(d, d->common + 0x00, 4, 1);
    return f | bar_rd(d, d->common + 0x04, 4) << 32;
}

/* Reset, ACKNOWLEDGE, DRIVER, write features, FEATURES_OK; returns whether the device kept
 * FEATURES_OK (i.e. accepted the features). */
static inline int vdrv_negotiate(struct vdrv *d, uint64_t features)
{
    bar_wr(d, d->common + 0x14, 1, 0);
    CHECK_EQ(vdrv_status(d), 0);
    bar_wr(d, d->common + 0x14, 1, 1);
    bar_wr(d, d->common + 0x14, 1, 1 | 2);
    bar_wr(d, d->common + 0x08, 4, 0);
    bar_wr(d, d->common + 0x0c, 4, (uint32_t)features);
    bar_wr(d, d->common + 0x08, 4, 1);
    bar_wr(d, d->common + 0x0c, 4, (uint32_t)(features >> 32));
    bar_wr(d, d->common + 0x14, 1, 1 | 2 | 8);
    return (vdrv_status(d) & 8) != 0;
}

static inline void vdrv_driver_ok(struct vdrv *d)
{
    bar_wr(d, d->common + 0x14, 1, 1 | 2 | 8 | 4);
    CHECK(vdrv_status(d) & 4);
}

/* Lay out queue qi with size entries and MSI-X vector (or 0xffff). */
static inline void vdrv_setup_queue(struct vdrv *d, uint16_t qi, uint16_t size, uint16_t vector)
{
    struct dq *q = &d->q[qi];
    bar_wr(d, d->common + 0x16, 2, qi);
    uint16_t max = (uint16_t)bar_rd(d, d->common + 0x18, 2);
    CHECK(max >= size);
    bar_wr(d, d->common + 0x18, 2, size);
    q->size = size;
    q->desc_gpa = ram_alloc(d->ram, 16u * size, 16);
    q->avail_gpa = ram_alloc(d->ram, 6u + 2u * size, 2);
    q->used_gpa = ram_alloc(d->ram, 6u + 8u * size, 4);
    q->desc = ram_ptr(d->ram, q->desc_gpa);
    q->avail = ram_ptr(d->ram, q->avail_gpa);
    q->used = ram_ptr(d->ram, q->used_gpa);
    q->avail_idx = q->last_used = 0;
    free(q->next_free);
    q->next_free = calloc(size, sizeof(uint16_t));
    CHECK(q->next_free != NULL);
    for (uint16_t i = 0; i < size; i++)
        q->next_free[i] = (uint16_t)(i + 1);
    q->free_head = 0;
    q->nfree = size;
    bar_wr(d, d->common + 0x20, 4, (uint32_t)q->desc_gpa);
    bar_wr(d, d->common + 0x24, 4, (uint32_t)(q->desc_gpa >> 32));
    bar_wr(d, d->common + 0x28, 4, (uint32_t)q->avail_gpa);
    bar_wr(d, d->common + 0x2c, 4, (uint32_t)(q->avail_gpa >> 32));
    bar_wr(d, d->common + 0x30, 8, q->used_gpa); /* one 64-bit access, also allowed */
    bar_wr(d, d->common + 0x1a, 2, vector);
    CHECK_EQ(bar_rd(d, d->common + 0x1a, 2), vector);
    bar_wr(d, d->common + 0x1c, 2, 1);
    CHECK_EQ(bar_rd(d, d->common + 0x1c, 2), 1);
}

struct buf {
    uint64_t gpa;
    uint32_t len;
    int write;
};

static inline void put_desc(uint8_t *table, uint16_t i, uint64_t addr, uint32_t len,
                            uint16_t flags, uint16_t next)
{
    uint8_t *p = table + 16u * i;
    memcpy(p, &addr, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + 12, &flags, 2);
    memcpy(p + 14, &next, 2);
}

static inline void dq_publish(struct dq *q, uint16_t head)
{
    uint16_t *ring = (uint16_t *)(void *)(q->avail + 4);
    ring[q->avail_idx & (q->size - 1)] = head;
    q->avail_idx++;
    __atomic_store_n((uint16_t *)(void *)(q->avail + 2), q->avail_idx, __ATOMIC_RELEASE);
}

/* Post a chain of n buffers (direct descriptors, or one indirect table when indirect). */
static inline uint16_t vdrv_post(struct vdrv *d, uint16_t qi, const struct buf *b, unsigned n,
                                 int indirect)
{
    struct dq *q = &d->q[qi];
    if (indirect) {
        CHECK(q->nfree >= 1);
        uint64_t tgpa = ram_alloc(d->ram, 16u * n, 16);
        uint8_t *t = ram_ptr(d->ram, tgpa);
        for (unsigned i = 0; i < n; i++)
            put_desc(t, (uint16_t)i, b[i].gpa, b[i].len,
                     (uint16_t)((b[i].write ? 2 : 0) | (i + 1 < n ? 1 : 0)), (uint16_t)(i + 1));
        uint16_t head = q->free_head;
        q->free_head = q->next_free[head];
        q->nfree--;
        put_desc(q->desc, head, tgpa, 16u * n, 4, 0);
        dq_publish(q, head);
        return head;
    }
    CHECK(q->nfree >= n);
    uint16_t head = q->free_head, cur = head;
    for (unsigned i = 0; i < n; i++) {
        uint16_t nxt = q->next_free[cur];
        put_desc(q->desc, cur, b[i].gpa, b[i].len,
                 (uint16_t)((b[i].write ? 2 : 0) | (i + 1 < n ? 1 : 0)), i + 1 < n ? nxt : 0);
        if (i + 1 < n)
            cur = nxt;
        else
            q->free_head = nxt;
    }
    q->nfree = (uint16_t)(q->nfree - n);
    dq_publish(q, head);
    return head;
}

static inline void vdrv_kick(struct vdrv *d, uint16_t qi)
{
    bar_wr(d, d->notify + (uint64_t)qi * d->notify_mult, 2, qi);
}

/* Take one used element; returns 0 when none. Returns the chain to the free list. */
static inline int vdrv_get_used(struct vdrv *d, uint16_t qi, uint16_t *id, uint32_t *len,
                                unsigned chain_len)
{
    struct dq *q = &d->q[qi];
    uint16_t used_idx = __atomic_load_n((uint16_t *)(void *)(q->used + 2), __ATOMIC_ACQUIRE);
    if (used_idx == q->last_used)
        return 0;
    uint8_t *e = q->used + 4 + 8u * (q->last_used & (q->size - 1));
    uint32_t uid;
    memcpy(&uid, e, 4);
    memcpy(len, e + 4, 4);
    CHECK(uid < q->size);
    *id = (uint16_t)uid;
    q->last_used++;
    /* free the chain: walk the descriptors we gave */
    uint16_t cur = (uint16_t)uid;
    for (unsigned i = 0; i + 1 < chain_len; i++) {
        uint16_t next;
        memcpy(&next, q->desc + 16u * cur + 14, 2);
        cur = next;
    }
    /* splice [uid .. cur] in front of the free list */
    q->next_free[cur] = q->free_head;
    q->free_head = (uint16_t)uid;
    q->nfree = (uint16_t)(q->nfree + chain_len);
    return 1;
}

static inline void dq_set_used_event(struct dq *q, uint16_t v)
{
    memcpy(q->avail + 4 + 2u * q->size, &v, 2);
}

static inline void dq_set_avail_flags(struct dq *q, uint16_t v)
{
    memcpy(q->avail, &v, 2);
}

static inline uint16_t dq_avail_event(struct dq *q)
{
    uint16_t v;
    memcpy(&v, q->used + 4 + 8u * q->size, 2);
    return v;
}

static inline void pass(const char *name)
{
    printf("ok %s\n", name);
    fflush(stdout);
}

#endif
