/* qcow2 metadata: table caches, refcounts, cluster allocation and L1/L2 lookup.
 *
 * Crash consistency: clusters (free ones inside the file, else new ones at its end) are
 * counted (refcount 1, made durable by a barrier) in batches before any L2 or L1 entry may
 * point at them. A crash therefore leaves at worst clusters with a refcount and no user
 * (leaks), never an entry pointing at an uncounted cluster. All metadata is written through
 * at once. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/qcow2.h"

int qcow2_corrupt(struct qcow2 *q, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return qv_disk_fail(&q->base, QV_STR_ERR_CORRUPT, "qcow2 image %s: %s", q->path, msg);
}

int qcow2_meta_read(struct qcow2 *q, uint64_t off, void *buf, size_t len)
{
    int e = qv_pread_full(q->fd, buf, len, off);
    if (e)
        return qv_disk_fail(&q->base, QV_STR_ERR_IO, "qcow2 read at %llu failed: %s",
                            (unsigned long long)off, strerror(-e));
    return 0;
}

int qcow2_meta_write(struct qcow2 *q, uint64_t off, const void *buf, size_t len)
{
    int e = qv_pwrite_full(q->fd, buf, len, off);
    q->written = 1;
    if (e)
        return qv_disk_fail(&q->base, e == -ENOSPC ? QV_STR_ERR_NOSPC : QV_STR_ERR_IO,
                            "qcow2 metadata write at %llu failed: %s", (unsigned long long)off,
                            strerror(-e));
    return 0;
}

/* Order point: everything written before is durable before anything written after. */
int qcow2_barrier(struct qcow2 *q)
{
    if (q->sync_writes)
        return 0; /* O_DSYNC: each write was already durable when it returned */
    if (fdatasync(q->fd))
        return qv_disk_fail(&q->base, QV_STR_ERR_IO, "qcow2 fdatasync failed: %s",
                            strerror(errno));
    return 0;
}

/* ---- offset sets ---- */

int qcow2_set_append(struct qcow2_offset_set *s, uint64_t off)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        uint64_t *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return QV_ERR_NOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = off;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void qcow2_set_finish(struct qcow2_offset_set *s)
{
    size_t out = 0;
    if (!s->n)
        return;
    qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
    for (size_t i = 0; i < s->n; i++)
        if (out == 0 || s->v[out - 1] != s->v[i])
            s->v[out++] = s->v[i];
    s->n = out;
}

/* Index of the first element >= off. */
static size_t set_lower(const struct qcow2_offset_set *s, uint64_t off)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int qcow2_set_has(const struct qcow2_offset_set *s, uint64_t off)
{
    size_t i = set_lower(s, off);
    return i < s->n && s->v[i] == off;
}

int qcow2_set_add(struct qcow2_offset_set *s, uint64_t off)
{
    size_t i = set_lower(s, off);
    if (i < s->n && s->v[i] == off)
        return 0;
    if (qcow2_set_append(s, off))
        return QV_ERR_NOMEM;
    memmove(s->v + i + 1, s->v + i, (s->n - 1 - i) * sizeof(*s->v));
    s->v[i] = off;
    return 0;
}

void qcow2_set_free(struct qcow2_offset_set *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

/* ---- table cache ---- */

void qcow2_cache_free(struct qcow2_cache *c)
{
    for (int i = 0; i < QCOW2_CACHE_SLOTS; i++) {
        free(c->slot[i].data);
        c->slot[i].data = NULL;
        c->slot[i].offset = 0;
    }
}

/* The table at off; read from the image on a miss, or zero-filled when fresh (a new table the
 * caller is about to write). The pointer stays valid until the next get on the same cache. */
static int cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t off, int fresh,
                     uint8_t **out)
{
    struct qcow2_cache_slot *victim = NULL;
    for (int i = 0; i < QCOW2_CACHE_SLOTS; i++) {
        struct qcow2_cache_slot *s = &c->slot[i];
        if (s->offset == off && s->data) {
            s->last_use = ++c->tick;
            if (fresh)
                memset(s->data, 0, q->cluster_size);
            *out = s->data;
            return 0;
        }
    }
    for (int i = 0; i < QCOW2_CACHE_SLOTS; i++) {
        struct qcow2_cache_slot *s = &c->slot[i];
        if (!s->data || s->offset == 0) {
            victim = s;
            break;
        }
        if (!victim || s->last_use < victim->last_use)
            victim = s;
    }
    if (!victim->data) {
        if (posix_memalign((void **)&victim->data, 4096, q->cluster_size))
            return qv_disk_fail(&q->base, QV_ERR_NOMEM, "no memory for the qcow2 table cache");
    }
    victim->offset = 0;
    if (fresh) {
        memset(victim->data, 0, q->cluster_size);
    } else {
        int rc = qcow2_meta_read(q, off, victim->data, q->cluster_size);
        if (rc)
            return rc;
    }
    victim->offset = off;
    victim->last_use = ++c->tick;
    *out = victim->data;
    return 0;
}

int qcow2_check_cluster(struct qcow2 *q, uint64_t off, const char *what, uint64_t guest)
{
    uint64_t cs = q->cluster_size;
    if (off & (cs - 1))
        return qcow2_corrupt(q, "%s for guest offset %llu is at %#llx, not cluster-aligned",
                             what, (unsigned long long)guest, (unsigned long long)off);
    if (off >= q->end)
        return qcow2_corrupt(q, "%s for guest offset %llu points beyond the end of the file "
                                "(%#llx)",
                             what, (unsigned long long)guest, (unsigned long long)off);
    if (off == 0)
        return qcow2_corrupt(q, "%s for guest offset %llu points into the header", what,
                             (unsigned long long)guest);
    if ((q->l1_size && off < q->l1_offset + (uint64_t)q->l1_size * 8 && off + cs > q->l1_offset) ||
        (off < q->rt_offset + (uint64_t)q->rt_clusters * cs && off + cs > q->rt_offset))
        return qcow2_corrupt(q, "%s for guest offset %llu points into the L1 or refcount table "
                                "(%#llx)",
                             what, (unsigned long long)guest, (unsigned long long)off);
    return 0;
}

/* ---- refcounts ---- */

static uint64_t rb_max(const struct qcow2 *q)
{
    return q->refcount_order == 6 ? UINT64_MAX : (1ULL << (1u << q->refcount_order)) - 1;
}

static uint64_t rb_read(const struct qcow2 *q, const uint8_t *t, uint64_t i)
{
    switch (q->refcount_order) {
    case 0:
    case 1:
    case 2: {
        unsigned bits = 1u << q->refcount_order;
        uint64_t bit = i * bits;
        return (t[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    case 3:
        return t[i];
    case 4:
        return qcow2_be16(t + 2 * i);
    case 5:
        return qcow2_be32(t + 4 * i);
    default:
        return qcow2_be64(t + 8 * i);
    }
}

/* Store value; returns the byte range touched so it can be written through. */
static void rb_write(const struct qcow2 *q, uint8_t *t, uint64_t i, uint64_t v, uint64_t *byte,
                     size_t *len)
{
    switch (q->refcount_order) {
    case 0:
    case 1:
    case 2: {
        unsigned bits = 1u << q->refcount_order;
        uint64_t bit = i * bits;
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));
        t[bit / 8] = (uint8_t)((t[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
        *byte = bit / 8;
        *len = 1;
        return;
    }
    case 3:
        t[i] = (uint8_t)v;
        *byte = i;
        *len = 1;
        return;
    case 4:
        t[2 * i] = (uint8_t)(v >> 8);
        t[2 * i + 1] = (uint8_t)v;
        *byte = 2 * i;
        *len = 2;
        return;
    case 5:
        qcow2_put_be32(t + 4 * i, (uint32_t)v);
        *byte = 4 * i;
        *len = 4;
        return;
    default:
        qcow2_put_be64(t + 8 * i, v);
        *byte = 8 * i;
        *len = 8;
        return;
    }
}

static int refblock_offset(struct qcow2 *q, uint64_t index, uint64_t *off)
{
    uint64_t e = q->rt[index];
    if (e & ~QCOW2_REFT_OFFSET_MASK)
        return qcow2_corrupt(q, "refcount table entry %llu has reserved bits set",
                             (unsigned long long)index);
    e &= QCOW2_REFT_OFFSET_MASK;
    if (e && ((e & (q->cluster_size - 1)) || e >= q->end))
        return qcow2_corrupt(q, "refcount table entry %llu (%#llx) is unaligned or beyond the "
                                "end of the file",
                             (unsigned long long)index, (unsigned long long)e);
    *off = e;
    return 0;
}

int qcow2_refcount_get(struct qcow2 *q, uint64_t cluster, uint64_t *value)
{
    uint64_t index = cluster >> q->rb_bits, blk = 0;
    uint8_t *t;
    int rc;
    *value = 0;
    if (index >= q->rt_entries)
        return 0;
    if ((rc = refblock_offset(q, index, &blk)) || !blk)
        return rc;
    if ((rc = cache_get(q, &q->rb_cache, blk, 0, &t)))
        return rc;
    *value = rb_read(q, t, cluster & ((1ULL << q->rb_bits) - 1));
    return 0;
}

static int grow_reftable(struct qcow2 *q, uint64_t need_index);

/* A new, empty refcount block for table index `index`, appended at the end of the file. Its
 * own refcount is recorded before the table points at it. */
static int new_refblock(struct qcow2 *q, uint64_t index, uint64_t *out)
{
    uint64_t off = q->end, cluster = off >> q->cluster_bits;
    uint8_t *t, be[8];
    int self = (cluster >> q->rb_bits) == index;
    int rc;

    q->end += q->cluster_size;
    if (!self && (rc = qcow2_refcount_set(q, cluster, 1)))
        return rc;
    if ((rc = cache_get(q, &q->rb_cache, off, 1, &t)))
        return rc;
    if (self) {
        uint64_t byte;
        size_t len;
        rb_write(q, t, cluster & ((1ULL << q->rb_bits) - 1), 1, &byte, &len);
    }
    if ((rc = qcow2_meta_write(q, off, t, q->cluster_size)))
        return rc;
    if (qcow2_set_add(&q->refblocks, off))
        return qv_disk_fail(&q->base, QV_ERR_NOMEM, "no memory");
    q->rt[index] = off;
    qcow2_put_be64(be, off);
    if ((rc = qcow2_meta_write(q, q->rt_offset + index * 8, be, 8)))
        return rc;
    *out = off;
    return 0;
}

int qcow2_refcount_set(struct qcow2 *q, uint64_t cluster, uint64_t value)
{
    uint64_t index = cluster >> q->rb_bits, blk = 0, byte;
    size_t len;
    uint8_t *t;
    int rc;

    if (value > rb_max(q))
        return qv_disk_fail(&q->base, QV_STR_ERR_NOTSUP, "qcow2 refcount overflow");
    if (index >= q->rt_entries) {
        if (!value)
            return 0;
        if ((rc = grow_reftable(q, index)))
            return rc;
    }
    if ((rc = refblock_offset(q, index, &blk)))
        return rc;
    if (!blk) {
        if (!value)
            return 0;
        if (++q->refcount_depth > 8) {
            q->refcount_depth--;
            return qv_disk_fail(&q->base, QV_ERR_INTERNAL,
                                "qcow2 refcount block allocation does not converge");
        }
        rc = new_refblock(q, index, &blk);
        q->refcount_depth--;
        if (rc)
            return rc;
    }
    if ((rc = cache_get(q, &q->rb_cache, blk, 0, &t)))
        return rc;
    rb_write(q, t, cluster & ((1ULL << q->rb_bits) - 1), value, &byte, &len);
    return qcow2_meta_write(q, blk + byte, t + byte, len);
}

/* Replace the refcount table by a larger one at the end of the file. The new table is written
 * and counted, then one header write switches to it, then the old one is freed; a crash at any
 * point leaves either table valid (at worst with leaked clusters). */
static int grow_reftable(struct qcow2 *q, uint64_t need_index)
{
    uint64_t cs = q->cluster_size, new_clusters = q->rt_clusters, new_entries;
    uint64_t old_off = q->rt_offset, old_clusters = q->rt_clusters, toff;
    uint64_t *old = q->rt, *table;
    uint8_t *buf, hdr[12];
    int rc = 0;

    if (q->growing)
        return qv_disk_fail(&q->base, QV_ERR_INTERNAL, "qcow2 refcount table growth recursed");
    /* Big enough for the index asked for and for the clusters this growth itself adds. */
    do {
        new_clusters *= 2;
        new_entries = new_clusters * cs / 8;
    } while (new_clusters * cs <= QCOW2_MAX_REFTABLE_BYTES &&
             (new_entries <= need_index ||
              new_entries <=
                  (((q->end >> q->cluster_bits) + 2 * new_clusters + 64) >> q->rb_bits) + 1));
    if (new_clusters * cs > QCOW2_MAX_REFTABLE_BYTES)
        return qv_disk_fail(&q->base, QV_STR_ERR_NOSPC,
                            "qcow2 refcount table would exceed %u bytes",
                            QCOW2_MAX_REFTABLE_BYTES);
    table = calloc(new_entries, sizeof(*table));
    buf = calloc(new_clusters, cs);
    if (!table || !buf) {
        free(table);
        free(buf);
        return qv_disk_fail(&q->base, QV_ERR_NOMEM, "no memory for the refcount table");
    }
    q->growing = 1;
    memcpy(table, old, q->rt_entries * sizeof(*table));
    toff = q->end;
    q->end += new_clusters * cs;
    for (uint64_t i = 0; i < q->rt_entries; i++)
        qcow2_put_be64(buf + 8 * i, table[i]);
    /* From here on, entry updates land in the new table, which nothing references yet. */
    q->rt = table;
    q->rt_entries = new_entries;
    q->rt_offset = toff;
    q->rt_clusters = (uint32_t)new_clusters;
    rc = qcow2_meta_write(q, toff, buf, new_clusters * cs);
    for (uint64_t i = 0; !rc && i < new_clusters; i++)
        rc = qcow2_refcount_set(q, (toff >> q->cluster_bits) + i, 1);
    if (!rc)
        rc = qcow2_barrier(q);
    if (!rc) {
        qcow2_put_be64(hdr, toff);
        qcow2_put_be32(hdr + 8, (uint32_t)new_clusters);
        rc = qcow2_meta_write(q, 48, hdr, sizeof(hdr));
    }
    if (!rc)
        rc = qcow2_barrier(q);
    if (rc) {
        /* The header still names the old table: go back to it (new clusters leak). */
        q->rt = old;
        q->rt_entries = old_clusters * cs / 8;
        q->rt_offset = old_off;
        q->rt_clusters = (uint32_t)old_clusters;
        free(table);
    } else {
        free(old);
        for (uint64_t i = 0; !rc && i < old_clusters; i++)
            rc = qcow2_refcount_set(q, (old_off >> q->cluster_bits) + i, 0);
    }
    free(buf);
    q->growing = 0;
    return rc;
}

/* Subtract one reference now (the entry that used it is already durable). */
static int release_now(struct qcow2 *q, uint64_t host)
{
    uint64_t cluster = host >> q->cluster_bits, v;
    int rc = qcow2_refcount_get(q, cluster, &v);
    if (rc)
        return rc;
    if (v == 0)
        return qcow2_corrupt(q, "freeing cluster %#llx whose refcount is already 0",
                             (unsigned long long)host);
    if ((rc = qcow2_refcount_set(q, cluster, v - 1)))
        return rc;
    if (v == 1) {
        if (q->discard)
            (void)fallocate(q->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)host,
                            (off_t)q->cluster_size); /* only frees space: failure is harmless */
        if (cluster < q->scan_next)
            q->scan_next = cluster;
        q->scan_needed = 1;
    }
    return 0;
}

int qcow2_commit_releases(struct qcow2 *q)
{
    int rc = 0;
    if (!q->pending_n || q->async_writes)
        return 0; /* see async_writes: the clusters stay counted until it drops to 0 */
    if ((rc = qcow2_barrier(q)))
        return rc;
    size_t n = q->pending_n;
    q->pending_n = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = release_now(q, q->pending_free[i]);
    return rc;
}

/* A refcount decremented before the rewritten entry is durable could, after a power loss,
 * leave that entry pointing at a cluster counted free (or reused): so releases wait for the
 * next barrier (a flush, the next batch of allocations, or close). */
int qcow2_release_cluster(struct qcow2 *q, uint64_t host)
{
    if (q->pending_n == q->pending_cap && q->pending_cap >= 4096) {
        int rc = qcow2_commit_releases(q); /* bound the memory: commit early */
        if (rc)
            return rc;
    }
    if (q->pending_n == q->pending_cap) {
        size_t cap = q->pending_cap ? 2 * q->pending_cap : 64;
        uint64_t *v = realloc(q->pending_free, cap * sizeof(*v));
        if (!v)
            return qv_disk_fail(&q->base, QV_ERR_NOMEM, "no memory");
        q->pending_free = v;
        q->pending_cap = cap;
    }
    q->pending_free[q->pending_n++] = host;
    return 0;
}

/* Whether a cluster holds metadata, whatever its refcount says (never reuse it for data). */
static int is_metadata(struct qcow2 *q, uint64_t off)
{
    uint64_t cs = q->cluster_size;
    if (off == 0)
        return 1;
    if (q->l1_size && off < q->l1_offset + (uint64_t)q->l1_size * 8 && off + cs > q->l1_offset)
        return 1;
    if (off < q->rt_offset + (uint64_t)q->rt_clusters * cs && off + cs > q->rt_offset)
        return 1;
    return qcow2_set_has(&q->l2_tables, off) || qcow2_set_has(&q->refblocks, off);
}

/* Count a batch of clusters, then make the counts durable: from then on they can be handed
 * out and referenced without a barrier each. Free clusters inside the file come first (their
 * release, L2 entry included, was written before this barrier, so reusing them is safe);
 * the rest is appended at the end of the file. */
static int pool_refill(struct qcow2 *q)
{
    uint32_t n = q->pool_batch, count = 0;
    uint64_t end_cluster;
    int rc = qcow2_commit_releases(q); /* clusters freed so far become reusable */

    if (rc)
        return rc;
    end_cluster = q->end >> q->cluster_bits;

    while (q->scan_needed && count < n && q->scan_next < end_cluster) {
        uint64_t c = q->scan_next++, v;
        if ((rc = qcow2_refcount_get(q, c, &v)))
            return rc;
        if (v == 0 && !is_metadata(q, c << q->cluster_bits))
            q->pool[count++] = c << q->cluster_bits;
    }
    if (q->scan_next >= end_cluster)
        q->scan_needed = 0;
    q->pool_reused = count;
    if (count < n) {
        uint64_t start = q->end;
        q->end += (uint64_t)(n - count) * q->cluster_size;
        for (uint64_t off = start; off < q->end; off += q->cluster_size)
            q->pool[count++] = off;
    }
    q->pool_len = count;
    q->pool_pos = 0;
    for (uint32_t i = 0; !rc && i < count; i++)
        rc = qcow2_refcount_set(q, q->pool[i] >> q->cluster_bits, 1);
    if (!rc)
        rc = qcow2_barrier(q);
    if (rc) {
        q->pool_len = 0; /* counted ones leak; nothing points at them */
        return rc;
    }
    if (q->pool_batch < QCOW2_POOL_MAX)
        q->pool_batch *= 2;
    return 0;
}

int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *host, int *reused)
{
    int rc;
    if (q->pool_pos >= q->pool_len && (rc = pool_refill(q)))
        return rc;
    *reused = q->pool_pos < q->pool_reused;
    *host = q->pool[q->pool_pos++];
    return 0;
}

/* Uncount the clusters reserved but never used (clean close). */
void qcow2_pool_release(struct qcow2 *q)
{
    for (uint32_t i = q->pool_pos; i < q->pool_len; i++)
        if (qcow2_refcount_set(q, q->pool[i] >> q->cluster_bits, 0))
            break;
    q->pool_len = q->pool_pos = 0;
}

/* ---- L1 / L2 ---- */

/* Give the active L1 entry l1i its own copy of an L2 table shared with a snapshot. Data
 * clusters count one reference per L1 table that reaches them (that is how snapshots count
 * them), so splitting the table changes no data refcount: the copy is written, the L1 entry
 * switches to it, then the old table loses our reference. A crash before the last step
 * leaves the old table over-counted (a leak). */
static int copy_l2_table(struct qcow2 *q, uint64_t l1i, uint64_t old_off, uint8_t **table,
                         uint64_t *table_off)
{
    uint64_t cs = q->cluster_size, new_off;
    uint8_t *copy = malloc(cs), *src, be[8];
    int rc, reused;
    if (!copy)
        return qv_disk_fail(&q->base, QV_ERR_NOMEM, "no memory");
    if ((rc = cache_get(q, &q->l2_cache, old_off, 0, &src)))
        goto out;
    memcpy(copy, src, cs);
    /* A reused cluster holds old bytes: the copy must be durable before the L1 entry. */
    if ((rc = qcow2_alloc_cluster(q, &new_off, &reused)) ||
        (rc = qcow2_meta_write(q, new_off, copy, cs)) || (reused && (rc = qcow2_barrier(q))))
        goto out;
    if (qcow2_set_add(&q->l2_tables, new_off)) {
        rc = qv_disk_fail(&q->base, QV_ERR_NOMEM, "no memory");
        goto out;
    }
    q->l1[l1i] = new_off | QCOW2_OFLAG_COPIED;
    qcow2_put_be64(be, q->l1[l1i]);
    if ((rc = qcow2_meta_write(q, q->l1_offset + l1i * 8, be, 8)) ||
        (rc = qcow2_release_cluster(q, old_off)))
        goto out;
    if ((rc = cache_get(q, &q->l2_cache, new_off, 1, table)))
        goto out;
    memcpy(*table, copy, cs);
    *table_off = new_off;
out:
    free(copy);
    return rc;
}

int qcow2_l2_table(struct qcow2 *q, uint64_t guest, int alloc, uint8_t **table,
                   uint64_t *table_off, uint32_t *index)
{
    uint64_t l1i = guest >> (q->cluster_bits + q->l2_bits), e, off;
    uint8_t be[8];
    int rc;

    *table = NULL;
    *index = (uint32_t)((guest >> q->cluster_bits) & ((1ULL << q->l2_bits) - 1));
    if (l1i >= q->l1_size)
        return qcow2_corrupt(q, "guest offset %llu is beyond the L1 table",
                             (unsigned long long)guest);
    e = q->l1[l1i];
    if (e & QCOW2_L1_RESERVED)
        return qcow2_corrupt(q, "L1 entry %llu has reserved bits set (%#llx)",
                             (unsigned long long)l1i, (unsigned long long)e);
    off = e & QCOW2_OFFSET_MASK;
    if (!off) {
        if (!alloc)
            return 0;
        int reused;
        if ((rc = qcow2_alloc_cluster(q, &off, &reused)))
            return rc;
        if ((rc = cache_get(q, &q->l2_cache, off, 1, table)))
            return rc;
        if (qcow2_set_add(&q->l2_tables, off))
            return qv_disk_fail(&q->base, QV_ERR_NOMEM, "no memory");
        /* The empty table is on disk before the L1 entry points at it (durably so when the
         * cluster is reused: its old bytes must never be read as L2 entries). */
        if ((rc = qcow2_meta_write(q, off, *table, q->cluster_size)) ||
            (reused && (rc = qcow2_barrier(q))))
            return rc;
        q->l1[l1i] = off | QCOW2_OFLAG_COPIED;
        qcow2_put_be64(be, q->l1[l1i]);
        if ((rc = qcow2_meta_write(q, q->l1_offset + l1i * 8, be, 8)))
            return rc;
        *table_off = off;
        return 0;
    }
    if ((rc = qcow2_check_cluster(q, off, "L2 table", guest)))
        return rc;
    if (alloc && qcow2_set_has(&q->refblocks, off))
        return qcow2_corrupt(q, "L2 table for guest offset %llu is a refcount block (%#llx)",
                             (unsigned long long)guest, (unsigned long long)off);
    if (alloc && !(e & QCOW2_OFLAG_COPIED)) {
        /* Without COPIED the table may be shared with a snapshot: write it in place only when
         * its refcount shows it is not (then record that with the flag), else copy it. */
        uint64_t refs;
        if ((rc = qcow2_refcount_get(q, off >> q->cluster_bits, &refs)))
            return rc;
        if (refs != 1)
            return copy_l2_table(q, l1i, off, table, table_off);
        q->l1[l1i] = e | QCOW2_OFLAG_COPIED;
        qcow2_put_be64(be, q->l1[l1i]);
        if ((rc = qcow2_meta_write(q, q->l1_offset + l1i * 8, be, 8)))
            return rc;
    }
    if ((rc = cache_get(q, &q->l2_cache, off, 0, table)))
        return rc;
    *table_off = off;
    return 0;
}

int qcow2_decode_l2(struct qcow2 *q, uint64_t e, uint64_t guest, struct qcow2_map *m)
{
    int rc;
    memset(m, 0, sizeof(*m));
    if (e & QCOW2_OFLAG_COMPRESSED) {
        /* Compressed: bits 0..x-1 host byte offset, x..61 additional 512-byte sectors. */
        unsigned x = 62 - (q->cluster_bits - 8);
        uint64_t host = e & ((1ULL << x) - 1);
        uint64_t sectors = ((e >> x) & ((1ULL << (q->cluster_bits - 8)) - 1)) + 1;
        m->kind = QCOW2_COMPRESSED;
        m->host = host;
        m->comp_len = sectors * 512 - (host & 511);
        if (host < q->cluster_size || host >= q->end)
            return qcow2_corrupt(q, "compressed cluster for guest offset %llu points outside "
                                    "the file (%#llx)",
                                 (unsigned long long)guest, (unsigned long long)host);
        return 0;
    }
    if (e & QCOW2_L2_RESERVED)
        return qcow2_corrupt(q, "L2 entry for guest offset %llu has reserved bits set (%#llx)",
                             (unsigned long long)guest, (unsigned long long)e);
    m->host = e & QCOW2_OFFSET_MASK;
    m->copied = !!(e & QCOW2_OFLAG_COPIED);
    if (e & QCOW2_OFLAG_ZERO) {
        if (q->version < 3)
            return qcow2_corrupt(q, "zero flag in a version 2 image (guest offset %llu)",
                                 (unsigned long long)guest);
        m->kind = QCOW2_ZERO;
        if (m->host && (rc = qcow2_check_cluster(q, m->host, "zero cluster", guest)))
            return rc;
        return 0;
    }
    if (!m->host) {
        m->kind = QCOW2_UNALLOCATED;
        return 0;
    }
    m->kind = QCOW2_NORMAL;
    return qcow2_check_cluster(q, m->host, "data cluster", guest);
}

int qcow2_map(struct qcow2 *q, uint64_t guest, struct qcow2_map *m)
{
    uint8_t *t;
    uint64_t toff;
    uint32_t idx;
    int rc = qcow2_l2_table(q, guest, 0, &t, &toff, &idx);
    if (rc)
        return rc;
    if (!t) {
        memset(m, 0, sizeof(*m));
        m->kind = QCOW2_UNALLOCATED;
        return 0;
    }
    return qcow2_decode_l2(q, qcow2_be64(t + 8 * (size_t)idx), guest, m);
}

int qcow2_set_l2(struct qcow2 *q, uint8_t *table, uint64_t table_off, uint32_t index,
                 uint64_t entry)
{
    qcow2_put_be64(table + 8 * (size_t)index, entry);
    return qcow2_meta_write(q, table_off + 8 * (uint64_t)index, table + 8 * (size_t)index, 8);
}
