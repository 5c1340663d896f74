/* Split virtqueues (virtio 1.x, section 2.7): the one place guest ring memory is parsed.
 *
 * The driver (guest) owns the descriptor table and the available ring; the device (this code)
 * owns the used ring. Every value read from guest memory is read once into a local and checked
 * before use; a ring that breaks the rules (bad index, loop, address outside guest RAM,
 * misalignment, ...) marks the queue broken and it stops being processed until it is reset.
 * The transport turns a broken queue into DEVICE_NEEDS_RESET.
 *
 * Threading: one queue is processed by one thread at a time (the transport holds its lock);
 * the guest runs concurrently on the vCPU threads, which is why indices are read with acquire
 * and published with release semantics. */
#ifndef QUANTAVIRT_VIRTQUEUE_H
#define QUANTAVIRT_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "quantavirt/guest_memory.h"

#define QV_VQ_MAX_SIZE 32768u

/* Descriptor flags */
#define QV_VRING_DESC_F_NEXT 1u
#define QV_VRING_DESC_F_WRITE 2u
#define QV_VRING_DESC_F_INDIRECT 4u
/* Ring flags */
#define QV_VRING_AVAIL_F_NO_INTERRUPT 1u
#define QV_VRING_USED_F_NO_NOTIFY 1u

/* Transport-independent feature bits (section 6) */
#define QV_VIRTIO_F_INDIRECT_DESC 28
#define QV_VIRTIO_F_EVENT_IDX 29
#define QV_VIRTIO_F_VERSION_1 32
#define QV_VIRTIO_F_ACCESS_PLATFORM 33
#define QV_VIRTIO_F_RING_PACKED 34

/* Upper bound on the entries of an indirect table (a table is at most this many * 16 bytes). */
#define QV_VQ_MAX_INDIRECT 4096u

/* Why a queue is broken (for logs and tests). */
enum qv_vq_error {
    QV_VQ_OK = 0,
    QV_VQ_ERR_RING_ADDR,     /* ring outside RAM or misaligned */
    QV_VQ_ERR_SIZE,          /* queue size 0, not a power of 2 or too large */
    QV_VQ_ERR_AVAIL_IDX,     /* avail idx moved more than the queue size */
    QV_VQ_ERR_HEAD,          /* head index >= size */
    QV_VQ_ERR_NEXT,          /* next index >= size */
    QV_VQ_ERR_LOOP,          /* chain longer than the table (a loop) */
    QV_VQ_ERR_DESC_ADDR,     /* buffer not inside guest RAM */
    QV_VQ_ERR_ORDER,         /* readable descriptor after a writable one */
    QV_VQ_ERR_INDIRECT,      /* bad indirect table (size, nesting, NEXT, feature off) */
    QV_VQ_ERR_IOV,           /* more buffers than the device accepts */
    QV_VQ_ERR_INFLIGHT,      /* more requests in flight than the queue size */
    QV_VQ_ERR_USED,          /* device pushed an unknown head (device bug) */
    QV_VQ_ERR_DEVICE,        /* the device found a malformed request */
};

struct qv_virtqueue {
    const struct qv_guest_memory *mem;
    /* host pointers to the rings, checked at setup */
    uint8_t *desc;
    uint8_t *avail;
    uint8_t *used;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint16_t size;
    uint16_t last_avail_idx;   /* next avail entry to consume */
    uint16_t used_idx;         /* shadow of used->idx (only the device writes it) */
    uint16_t signalled_used;   /* used_idx at the last interrupt (EVENT_IDX) */
    bool signalled_used_valid;
    bool pushed;               /* something was pushed since the last notify decision */
    bool event_idx;
    bool indirect;
    bool ready;
    bool broken;
    enum qv_vq_error error;
    uint32_t inflight;         /* popped but not yet pushed */
};

/* One popped request: iov[0..out_num) are the device-readable buffers (driver -> device),
 * iov[out_num..out_num+in_num) the device-writable ones. The caller provides iov storage. */
struct qv_vq_elem {
    uint16_t head;
    unsigned int out_num;
    unsigned int in_num;
    uint64_t out_len;   /* total readable bytes */
    uint64_t in_len;    /* total writable bytes */
    struct iovec *iov;
    unsigned int iov_cap;
};

/* Reset to the initial, unconfigured state (keeps nothing). */
void qv_vq_reset(struct qv_virtqueue *vq);

/* Validate the ring geometry and make the queue ready. features are the negotiated ones
 * (EVENT_IDX and INDIRECT_DESC are honoured). Returns 0, or QV_ERR_INVAL and marks the queue
 * broken. max_size is the device's limit (<= QV_VQ_MAX_SIZE). */
int qv_vq_setup(struct qv_virtqueue *vq, const struct qv_guest_memory *mem, uint16_t size,
                uint16_t max_size, uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
                uint64_t features);

/* Pop the next available chain into elem. Returns 1 when a chain was popped, 0 when the ring
 * is empty, or a negative QV error when the queue is (now) broken. A readable/writable split
 * that does not fit elem->iov_cap breaks the queue (the device advertises its limit). */
int qv_vq_pop(struct qv_virtqueue *vq, struct qv_vq_elem *elem);

/* Give back a popped chain with the number of bytes written into its writable part.
 * Publishes the new used idx with release ordering. */
int qv_vq_push(struct qv_virtqueue *vq, uint16_t head, uint32_t written);

/* Whether the driver wants an interrupt for what was pushed since the last call
 * (VRING_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX). */
bool qv_vq_should_notify(struct qv_virtqueue *vq);

/* Ask the driver not to notify us (we are processing) / to notify again. enable returns true
 * when buffers arrived in between, so the caller must process again (no lost wake-up). */
void qv_vq_disable_notify(struct qv_virtqueue *vq);
bool qv_vq_enable_notify(struct qv_virtqueue *vq);

/* Mark broken from the device side (a malformed request). */
void qv_vq_set_broken(struct qv_virtqueue *vq, enum qv_vq_error err);

/* The EVENT_IDX test: was event_idx crossed when the index moved from old_idx to new_idx? */
static inline bool qv_vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/* Byte sizes of the ring parts for a queue of n entries (with the EVENT_IDX fields). */
static inline uint64_t qv_vring_desc_bytes(uint16_t n) { return 16ull * n; }
static inline uint64_t qv_vring_avail_bytes(uint16_t n) { return 6ull + 2ull * n; }
static inline uint64_t qv_vring_used_bytes(uint16_t n) { return 6ull + 8ull * n; }

/* iovec helpers shared by the devices: copy to/from a byte range of an iovec array. They
 * return the number of bytes copied (short when the array is shorter). */
size_t qv_iov_to_buf(const struct iovec *iov, unsigned int n, size_t offset, void *buf,
                     size_t len);
size_t qv_iov_from_buf(const struct iovec *iov, unsigned int n, size_t offset, const void *buf,
                       size_t len);
/* Describe [offset, offset+len) of src as a new iovec array in dst (at most dst_cap entries).
 * Returns the entry count, or -1 when the range is not inside src or dst is too small. */
int qv_iov_slice(const struct iovec *src, unsigned int n, size_t offset, size_t len,
                 struct iovec *dst, unsigned int dst_cap);

#endif
