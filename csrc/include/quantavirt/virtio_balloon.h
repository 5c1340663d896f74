/* virtio-balloon (section 5.5): inflate/deflate queues and the statistics queue.
 *
 * The host sets a target size with qv_virtio_balloon_set_target() and then calls
 * qv_virtio_pci_config_changed() so the driver is told; inflated pages are handed to a discard
 * callback (default: madvise(MADV_DONTNEED) of the host mapping). Statistics: the driver keeps
 * one buffer queued on the stats queue; qv_virtio_balloon_request_stats() followed by
 * qv_virtio_pci_process_queue(pci, QV_VIRTIO_BALLOON_STATSQ) gives it back for a refresh. */
#ifndef QUANTAVIRT_VIRTIO_BALLOON_H
#define QUANTAVIRT_VIRTIO_BALLOON_H

#include <stdint.h>

#include "quantavirt/virtio.h"

#define QV_VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define QV_VIRTIO_BALLOON_F_STATS_VQ 1
#define QV_VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2

#define QV_VIRTIO_BALLOON_INFLATEQ 0
#define QV_VIRTIO_BALLOON_DEFLATEQ 1
#define QV_VIRTIO_BALLOON_STATSQ 2
#define QV_VIRTIO_BALLOON_PAGE_SIZE 4096u

/* Statistic tags (index into qv_virtio_balloon_stats.value) */
#define QV_VIRTIO_BALLOON_S_SWAP_IN 0
#define QV_VIRTIO_BALLOON_S_SWAP_OUT 1
#define QV_VIRTIO_BALLOON_S_MAJFLT 2
#define QV_VIRTIO_BALLOON_S_MINFLT 3
#define QV_VIRTIO_BALLOON_S_MEMFREE 4
#define QV_VIRTIO_BALLOON_S_MEMTOT 5
#define QV_VIRTIO_BALLOON_S_AVAIL 6
#define QV_VIRTIO_BALLOON_S_CACHES 7
#define QV_VIRTIO_BALLOON_S_HTLB_PGALLOC 8
#define QV_VIRTIO_BALLOON_S_HTLB_PGFAIL 9
#define QV_VIRTIO_BALLOON_S_NR 16

struct qv_virtio_balloon_options {
    int deflate_on_oom;
    /* Give back [gpa, gpa+len) whose host mapping is host; NULL -> madvise(MADV_DONTNEED). */
    void (*discard)(void *opaque, uint64_t gpa, void *host, uint64_t len);
    void *opaque;
};

struct qv_virtio_balloon_stats {
    uint64_t value[QV_VIRTIO_BALLOON_S_NR]; /* by tag; UINT64_MAX = not reported */
    uint64_t updates;                       /* stats buffers received so far */
    uint64_t inflated_pages, deflated_pages;
    uint64_t bad_pfns;                      /* PFNs outside guest RAM (ignored) */
};

struct qv_virtio_balloon;

struct qv_virtio_balloon *qv_virtio_balloon_new(const struct qv_virtio_balloon_options *opts);
struct qv_virtio_device *qv_virtio_balloon_device(struct qv_virtio_balloon *b);
/* Target balloon size in 4 KiB pages (config num_pages); then qv_virtio_pci_config_changed(). */
void qv_virtio_balloon_set_target(struct qv_virtio_balloon *b, uint32_t pages);
/* The driver's current balloon size in pages (config actual). */
uint32_t qv_virtio_balloon_actual(struct qv_virtio_balloon *b);
/* Ask for fresh statistics at the next processing of the stats queue. */
void qv_virtio_balloon_request_stats(struct qv_virtio_balloon *b);
void qv_virtio_balloon_get_stats(struct qv_virtio_balloon *b, struct qv_virtio_balloon_stats *out);
void qv_virtio_balloon_free(struct qv_virtio_balloon *b);

#endif
