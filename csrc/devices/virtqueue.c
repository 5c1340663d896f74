/* Split virtqueue processing: see quantavirt/virtqueue.h for the contract.
 *
 * Layout (little endian, section 2.7):
 *   descriptor table: size * { le64 addr; le32 len; le16 flags; le16 next; }   16-byte aligned
 *   avail ring: le16 flags; le16 idx; le16 ring[size]; le16 used_event;        2-byte aligned
 *   used ring:  le16 flags; le16 idx; { le32 id; le32 len; } ring[size]; le16 avail_event;
 *                                                                              4-byte aligned
 * Guest memory is shared with running vCPUs, so every guest field is loaded exactly once
 * (no double fetch) and validated in the local copy. */
#include "quantavirt/virtqueue.h"

#include <endian.h>
#include <string.h>

#include "quantavirt/errors.h"

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* 16-bit ring fields are naturally aligned (checked at setup), so atomic access is valid. */
static inline uint16_t load16_acquire(const uint8_t *p)
{
    return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE));
}

static inline uint16_t load16(const uint8_t *p)
{
    return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED));
}

static inline void store16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELAXED);
}

static inline void store16_release(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELEASE);
}

static inline void store32(uint8_t *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)p, htole32(v), __ATOMIC_RELAXED);
}

/* One copy of a descriptor from (guest-shared) memory. */
static inline void read_desc(const uint8_t *table, uint32_t i, struct desc *d)
{
    uint8_t raw[16];
    memcpy(raw, table + 16u * (size_t)i, sizeof raw);
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
    memcpy(&addr, raw, 8);
    memcpy(&len, raw + 8, 4);
    memcpy(&flags, raw + 12, 2);
    memcpy(&next, raw + 14, 2);
    d->addr = le64toh(addr);
    d->len = le32toh(len);
    d->flags = le16toh(flags);
    d->next = le16toh(next);
}

void qv_vq_reset(struct qv_virtqueue *vq)
{
    memset(vq, 0, sizeof *vq);
}

void qv_vq_set_broken(struct qv_virtqueue *vq, enum qv_vq_error err)
{
    if (!vq->broken) {
        vq->broken = true;
        vq->error = err;
    }
}

static int fail(struct qv_virtqueue *vq, enum qv_vq_error err)
{
    qv_vq_set_broken(vq, err);
    return QV_ERR_INVAL;
}

int qv_vq_setup(struct qv_virtqueue *vq, const struct qv_guest_memory *mem, uint16_t size,
                uint16_t max_size, uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
                uint64_t features)
{
    qv_vq_reset(vq);
    vq->mem = mem;
    vq->desc_gpa = desc_gpa;
    vq->avail_gpa = avail_gpa;
    vq->used_gpa = used_gpa;
    vq->size = size;
    if (size == 0 || (size & (size - 1)) != 0 || size > max_size || size > QV_VQ_MAX_SIZE)
        return fail(vq, QV_VQ_ERR_SIZE);
    if ((desc_gpa & 15) || (avail_gpa & 1) || (used_gpa & 3))
        return fail(vq, QV_VQ_ERR_RING_ADDR);
    vq->desc = qv_guest_ptr(mem, desc_gpa, qv_vring_desc_bytes(size));
    vq->avail = qv_guest_ptr(mem, avail_gpa, qv_vring_avail_bytes(size));
    vq->used = qv_guest_ptr(mem, used_gpa, qv_vring_used_bytes(size));
    if (!vq->desc || !vq->avail || !vq->used)
        return fail(vq, QV_VQ_ERR_RING_ADDR);
    /* the host mapping must keep the alignment the atomics rely on */
    if (((uintptr_t)vq->avail & 1) || ((uintptr_t)vq->used & 3))
        return fail(vq, QV_VQ_ERR_RING_ADDR);
    vq->event_idx = (features >> QV_VIRTIO_F_EVENT_IDX) & 1;
    vq->indirect = (features >> QV_VIRTIO_F_INDIRECT_DESC) & 1;
    /* Both sides start from index 0; the used ring is ours to initialise. */
    vq->last_avail_idx = 0;
    vq->used_idx = 0;
    store16(vq->used, 0);
    store16_release(vq->used + 2, 0);
    vq->ready = true;
    return 0;
}

/* How many bytes from gpa (at most len) lie in the one guest RAM region holding gpa; 0 when
 * gpa is not guest RAM. The translation itself is always done by qv_guest_ptr. */
static uint64_t region_span(const struct qv_guest_memory *mem, uint64_t gpa, uint64_t len)
{
    for (unsigned int i = 0; i < mem->nregions && i < QV_GUEST_MEMORY_MAX_REGIONS; i++) {
        const struct qv_guest_region *r = &mem->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size) {
            uint64_t room = r->size - (gpa - r->gpa);
            return len < room ? len : room;
        }
    }
    return 0;
}

/* Append one descriptor's buffer to elem, enforcing readable-before-writable. A buffer that
 * crosses from one RAM region into an adjacent one becomes one iovec per region. */
static int add_buffer(struct qv_virtqueue *vq, struct qv_vq_elem *elem, const struct desc *d)
{
    bool writable = d->flags & QV_VRING_DESC_F_WRITE;
    if (!writable && elem->in_num > 0)
        return fail(vq, QV_VQ_ERR_ORDER);
    if (d->len == 0)
        return 0; /* nothing to transfer; an empty buffer is legal and ignored */
    if (d->addr > UINT64_MAX - d->len) /* a range wrapping around 2^64 */
        return fail(vq, QV_VQ_ERR_DESC_ADDR);
    uint64_t gpa = d->addr, left = d->len;
    while (left > 0) {
        uint64_t chunk = region_span(vq->mem, gpa, left);
        void *host = chunk ? qv_guest_ptr(vq->mem, gpa, chunk) : NULL;
        if (!host)
            return fail(vq, QV_VQ_ERR_DESC_ADDR);
        unsigned int n = elem->out_num + elem->in_num;
        if (n >= elem->iov_cap)
            return fail(vq, QV_VQ_ERR_IOV);
        elem->iov[n].iov_base = host;
        elem->iov[n].iov_len = (size_t)chunk;
        if (writable)
            elem->in_num++;
        else
            elem->out_num++;
        gpa += chunk;
        left -= chunk;
    }
    if (writable)
        elem->in_len += d->len;
    else
        elem->out_len += d->len;
    return 0;
}

/* Walk an indirect table (section 2.7.5.3). */
static int walk_indirect(struct qv_virtqueue *vq, struct qv_vq_elem *elem, const struct desc *d)
{
    if (!vq->indirect || (d->flags & QV_VRING_DESC_F_NEXT) || d->len == 0 || (d->len % 16) != 0 ||
        d->len / 16 > QV_VQ_MAX_INDIRECT)
        return fail(vq, QV_VQ_ERR_INDIRECT);
    uint32_t count = d->len / 16;
    const uint8_t *table = qv_guest_ptr(vq->mem, d->addr, d->len);
    if (!table)
        return fail(vq, QV_VQ_ERR_DESC_ADDR);
    uint32_t i = 0;
    /* each entry can be visited at most once in a loop-free chain */
    for (uint32_t steps = 0;; steps++) {
        if (steps >= count)
            return fail(vq, QV_VQ_ERR_LOOP);
        struct desc e;
        read_desc(table, i, &e);
        if (e.flags & QV_VRING_DESC_F_INDIRECT)
            return fail(vq, QV_VQ_ERR_INDIRECT);
        if (add_buffer(vq, elem, &e) < 0)
            return QV_ERR_INVAL;
        if (!(e.flags & QV_VRING_DESC_F_NEXT))
            return 0;
        if (e.next >= count)
            return fail(vq, QV_VQ_ERR_NEXT);
        i = e.next;
    }
}

int qv_vq_pop(struct qv_virtqueue *vq, struct qv_vq_elem *elem)
{
    if (vq->broken)
        return QV_ERR_INVAL;
    if (!vq->ready)
        return 0;
    /* acquire: ring entries and descriptors written before the idx are visible after it */
    uint16_t avail_idx = load16_acquire(vq->avail + 2);
    uint16_t pending = (uint16_t)(avail_idx - vq->last_avail_idx);
    if (pending > vq->size)
        return fail(vq, QV_VQ_ERR_AVAIL_IDX);
    if (pending == 0)
        return 0;
    if (vq->inflight >= vq->size)
        return fail(vq, QV_VQ_ERR_INFLIGHT);

    uint16_t slot = vq->last_avail_idx & (uint16_t)(vq->size - 1);
    uint16_t head = load16(vq->avail + 4 + 2u * slot);
    if (head >= vq->size)
        return fail(vq, QV_VQ_ERR_HEAD);

    elem->head = head;
    elem->out_num = elem->in_num = 0;
    elem->out_len = elem->in_len = 0;

    uint16_t i = head;
    for (uint32_t steps = 0;; steps++) {
        if (steps >= vq->size)
            return fail(vq, QV_VQ_ERR_LOOP);
        struct desc d;
        read_desc(vq->desc, i, &d);
        if (d.flags & QV_VRING_DESC_F_INDIRECT) {
            /* only a lone head descriptor may point to a table */
            if (steps != 0)
                return fail(vq, QV_VQ_ERR_INDIRECT);
            if (walk_indirect(vq, elem, &d) < 0)
                return QV_ERR_INVAL;
            break;
        }
        if (add_buffer(vq, elem, &d) < 0)
            return QV_ERR_INVAL;
        if (!(d.flags & QV_VRING_DESC_F_NEXT))
            break;
        if (d.next >= vq->size)
            return fail(vq, QV_VQ_ERR_NEXT);
        i = d.next;
    }
    vq->last_avail_idx++;
    vq->inflight++;
    /* with EVENT_IDX, keep asking for a kick on the next buffer while we are busy */
    if (vq->event_idx)
        store16(vq->used + 4 + 8u * vq->size, vq->last_avail_idx);
    return 1;
}

int qv_vq_push(struct qv_virtqueue *vq, uint16_t head, uint32_t written)
{
    if (vq->broken)
        return QV_ERR_INVAL;
    if (!vq->ready || head >= vq->size || vq->inflight == 0)
        return fail(vq, QV_VQ_ERR_USED);
    uint16_t slot = vq->used_idx & (uint16_t)(vq->size - 1);
    uint8_t *e = vq->used + 4 + 8u * slot;
    store32(e, head);
    store32(e + 4, written);
    vq->used_idx++;
    vq->inflight--;
    vq->pushed = true;
    /* release: the element is visible before the index that publishes it */
    store16_release(vq->used + 2, vq->used_idx);
    return 0;
}

bool qv_vq_should_notify(struct qv_virtqueue *vq)
{
    if (!vq->ready || vq->broken || !vq->pushed)
        return false;
    vq->pushed = false;
    /* the used idx store must be globally visible before we read the driver's wish
     * (a store-load ordering: only a full fence gives it) */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!vq->event_idx)
        return !(load16(vq->avail) & QV_VRING_AVAIL_F_NO_INTERRUPT);
    uint16_t event = load16(vq->avail + 4 + 2u * vq->size);
    uint16_t old = vq->signalled_used;
    bool valid = vq->signalled_used_valid;
    vq->signalled_used = vq->used_idx;
    vq->signalled_used_valid = true;
    return !valid || qv_vring_need_event(event, vq->used_idx, old);
}

void qv_vq_disable_notify(struct qv_virtqueue *vq)
{
    if (!vq->ready || vq->broken)
        return;
    /* with EVENT_IDX suppression is implicit: avail_event stays at what we consumed */
    if (!vq->event_idx)
        store16(vq->used, load16(vq->used) | QV_VRING_USED_F_NO_NOTIFY);
}

bool qv_vq_enable_notify(struct qv_virtqueue *vq)
{
    if (!vq->ready || vq->broken)
        return false;
    if (vq->event_idx)
        store16(vq->used + 4 + 8u * vq->size, vq->last_avail_idx);
    else
        store16(vq->used, load16(vq->used) & (uint16_t)~QV_VRING_USED_F_NO_NOTIFY);
    /* our store must be visible before we re-read avail idx, or a kick can be lost */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return load16_acquire(vq->avail + 2) != vq->last_avail_idx;
}

size_t qv_iov_to_buf(const struct iovec *iov, unsigned int n, size_t offset, void *buf,
                     size_t len)
{
    size_t done = 0;
    for (unsigned int i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - done)
            chunk = len - done;
        memcpy((uint8_t *)buf + done, (const uint8_t *)iov[i].iov_base + offset, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t qv_iov_from_buf(const struct iovec *iov, unsigned int n, size_t offset, const void *buf,
                       size_t len)
{
    size_t done = 0;
    for (unsigned int i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - done)
            chunk = len - done;
        memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

int qv_iov_slice(const struct iovec *src, unsigned int n, size_t offset, size_t len,
                 struct iovec *dst, unsigned int dst_cap)
{
    unsigned int out = 0;
    size_t left = len;
    for (unsigned int i = 0; i < n && left > 0; i++) {
        if (offset >= src[i].iov_len) {
            offset -= src[i].iov_len;
            continue;
        }
        size_t chunk = src[i].iov_len - offset;
        if (chunk > left)
            chunk = left;
        if (out >= dst_cap)
            return -1;
        dst[out].iov_base = (uint8_t *)src[i].iov_base + offset;
        dst[out].iov_len = chunk;
        out++;
        left -= chunk;
        offset = 0;
    }
    return left == 0 ? (int)out : -1;
}
