/* qcow2 internals shared by qcow2.c (open, header, guest I/O) and qcow2_meta.c (table caches,
 * refcounts, cluster allocation, L1/L2 lookup). Layout per the qcow2 specification (v2, v3). */
#ifndef QV_DISK_QCOW2_H
#define QV_DISK_QCOW2_H

#include <pthread.h>
#include <stdint.h>

#include "disk/disk_internal.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

#define QCOW2_INCOMPAT_DIRTY (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ULL << 4)

#define QCOW2_OFLAG_COPIED (1ULL << 63)
#define QCOW2_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW2_OFLAG_ZERO 1ULL
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ULL /* bits 9..55 of L1 and standard L2 entries */
#define QCOW2_L1_RESERVED 0x7f000000000001ffULL
#define QCOW2_L2_RESERVED 0x3f000000000001feULL
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ULL

/* Limits taken so that tables always fit in memory (same order as QEMU's). */
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SIZE (1ULL << 56) /* host offsets have 56 bits: larger makes no sense */

#define QCOW2_CACHE_SLOTS 32

/* A small LRU cache of cluster-sized metadata tables kept big-endian, as on disk. Every change
 * is written through at once, so eviction never writes and a crash loses nothing cached. */
struct qcow2_cache_slot {
    uint64_t offset; /* 0 = empty slot (offset 0 is the header, never a table) */
    uint64_t last_use;
    uint8_t *data;
};

struct qcow2_cache {
    struct qcow2_cache_slot slot[QCOW2_CACHE_SLOTS];
    uint64_t tick;
};

enum qcow2_kind { QCOW2_UNALLOCATED, QCOW2_ZERO, QCOW2_NORMAL, QCOW2_COMPRESSED };

/* What one guest cluster maps to. */
struct qcow2_map {
    int kind;
    uint64_t host;       /* NORMAL / ZERO with preallocation: host cluster; COMPRESSED: byte */
    uint64_t comp_len;   /* COMPRESSED: bytes of compressed data at host */
    int copied;          /* refcount known to be exactly 1 */
};

/* A sorted set of host cluster offsets (the image's L2 tables, its refcount blocks), so that
 * a hostile image cannot make guest data writes land on metadata. */
struct qcow2_offset_set {
    uint64_t *v;
    size_t n, cap;
};

struct qcow2 {
    struct qv_disk base;
    char *path;
    int fd;  /* buffered (O_DSYNC for writethrough/directsync); all metadata goes here */
    int dfd; /* O_DIRECT descriptor for aligned data I/O with cache none/directsync, or -1 */
    int sync_writes; /* fd has O_DSYNC: every write is durable when it returns */
    int discard;

    uint32_t version;
    uint32_t cluster_bits;
    uint64_t cluster_size;
    uint32_t l2_bits; /* log2 of entries per L2 table */
    uint32_t refcount_order;
    uint32_t rb_bits; /* log2 of entries per refcount block */
    uint64_t incompat, compat, autoclear;
    uint32_t nb_snapshots;
    int zstd; /* compression type zstd: compressed clusters unreadable here */

    uint64_t l1_offset;
    uint32_t l1_size;
    uint64_t *l1; /* host-endian copy of the L1 table */

    uint64_t rt_offset;
    uint32_t rt_clusters;
    uint64_t rt_entries;
    uint64_t *rt; /* host-endian copy of the refcount table */

    uint64_t end;       /* first byte past everything allocated (cluster-aligned) */
#define QCOW2_POOL_MAX 256
    /* Clusters already counted (refcount 1, durable) but not yet handed out. */
    uint64_t pool[QCOW2_POOL_MAX];
    uint32_t pool_len, pool_pos;
    uint32_t pool_reused; /* pool[0 .. pool_reused) were free clusters inside the file */
    uint32_t pool_batch;
    /* References dropped but not yet subtracted from the refcounts: that waits until the
     * entries that stopped using them are durable (the next barrier). */
    uint64_t *pending_free;
    size_t pending_n, pending_cap;
    /* In-place data writes handed out by host_map (io_uring) and not finished: while any is
     * in flight, pending releases stay pending, so no cluster such a write may still land in
     * is freed and reused (for metadata, say) under it. */
    unsigned async_writes;
    /* Free clusters (refcount 0) inside the file are reused; the scan resumes here. */
    uint64_t scan_next;
    int scan_needed;
    int refcount_depth; /* recursion guard for refcount-block allocation */
    int growing;        /* refcount table growth in progress */
    int written;

    struct qcow2_offset_set l2_tables;
    struct qcow2_offset_set refblocks;

    struct qcow2_cache l2_cache;
    struct qcow2_cache rb_cache;

    struct qv_disk *backing;
    char *backing_name;

    uint8_t *cow;  /* one cluster, aligned: copy-on-write and decompression output */
    uint8_t *zin;  /* compressed input (two clusters), allocated on first use */
    pthread_mutex_t lock;
};

static inline uint64_t qcow2_be64(const uint8_t *p)
{
    return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
           ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
           ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}

static inline uint32_t qcow2_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint16_t qcow2_be16(const uint8_t *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

static inline void qcow2_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline void qcow2_put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

int qcow2_set_add(struct qcow2_offset_set *s, uint64_t off);
int qcow2_set_has(const struct qcow2_offset_set *s, uint64_t off);
/* Sort and deduplicate after bulk appends with qcow2_set_append. */
int qcow2_set_append(struct qcow2_offset_set *s, uint64_t off);
void qcow2_set_finish(struct qcow2_offset_set *s);
void qcow2_set_free(struct qcow2_offset_set *s);

int qcow2_corrupt(struct qcow2 *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int qcow2_meta_read(struct qcow2 *q, uint64_t off, void *buf, size_t len);
int qcow2_meta_write(struct qcow2 *q, uint64_t off, const void *buf, size_t len);
int qcow2_barrier(struct qcow2 *q);

void qcow2_cache_free(struct qcow2_cache *c);
/* Check that a host cluster offset read from the image is usable for `what`. */
int qcow2_check_cluster(struct qcow2 *q, uint64_t off, const char *what, uint64_t guest);

int qcow2_refcount_get(struct qcow2 *q, uint64_t cluster, uint64_t *value);
int qcow2_refcount_set(struct qcow2 *q, uint64_t cluster, uint64_t value);
/* Drop one reference to a host cluster, after the entry that used it was rewritten. The
 * refcount is decremented after the next barrier (the last reference frees the cluster and,
 * with discard, punches a hole). */
int qcow2_release_cluster(struct qcow2 *q, uint64_t host);
/* Barrier, then apply the pending releases. */
int qcow2_commit_releases(struct qcow2 *q);
/* A counted cluster for new content; *reused says it held data before (it is not a hole):
 * a new table written there must be made durable before anything points at it. */
int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *host, int *reused);
void qcow2_pool_release(struct qcow2 *q);

/* The L2 table of a guest offset. With alloc, a missing table is created; without, *table is
 * NULL when the guest range is unallocated at L1 level. */
int qcow2_l2_table(struct qcow2 *q, uint64_t guest, int alloc, uint8_t **table,
                   uint64_t *table_off, uint32_t *index);
int qcow2_decode_l2(struct qcow2 *q, uint64_t entry, uint64_t guest, struct qcow2_map *m);
int qcow2_map(struct qcow2 *q, uint64_t guest, struct qcow2_map *m);
int qcow2_set_l2(struct qcow2 *q, uint8_t *table, uint64_t table_off, uint32_t index,
                 uint64_t entry);

#endif
