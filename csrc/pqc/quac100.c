/* The QUAC 100 backend: the card's ioctl ABI (vendor/quac100/quac100_ioctl.h) on
 * /dev/quac100_N. The card and its driver are outside the project's trust: every reply is
 * checked (interface version, GET_INFO size, result codes, sig_actual), and a device that
 * vanishes mid-operation (ENODEV, ENXIO, EIO, ENOTCONN) makes the handle permanently gone
 * (QUAC100_ERR_GONE) instead of a crash or a wrong result. backend.c checks arguments before
 * and key pairs after; this file only talks to the device. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/wipe.h"
#include "pqc/pqc_backend_internal.h"
#include "quac100/quac100_ioctl.h"
#include "quantavirt/errors.h"
#include "quantavirt/mlkem.h"

/* The ABI passes buffers as u64 user addresses. */
static __u64 addr_of(const void *p)
{
    return (__u64)(uintptr_t)p;
}

static int is_gone(qv_pqc_backend *b)
{
    return __atomic_load_n(&b->gone, __ATOMIC_ACQUIRE);
}

/* One ioctl. The fd is only closed by detach, never here: another thread may be using it,
 * and a closed-and-reused fd number would send our buffers to some other file. */
static int do_ioctl(qv_pqc_backend *b, unsigned long request, void *arg)
{
    if (b->fd < 0 || is_gone(b))
        return QUAC100_ERR_GONE;
    for (int tries = 0;; tries++) {
        if (ioctl(b->fd, request, arg) == 0)
            return 0;
        int e = errno;
        switch (e) {
        case EINTR:
            if (tries < 16)
                continue;
            return QUAC100_ERR_IOCTL;
        case ENODEV:
        case ENXIO:
        case EIO:
        case ENOTCONN:
        case ECONNABORTED:
        case ESHUTDOWN:
        case EBADF:
            __atomic_store_n(&b->gone, 1, __ATOMIC_RELEASE);
            return QUAC100_ERR_GONE;
        case ENOTTY:
        case EOPNOTSUPP:
            return QUAC100_ERR_NOTSUP;
        case ETIMEDOUT:
            return QUAC100_ERR_TIMEOUT;
        case EBUSY:
        case EAGAIN:
            return QUAC100_ERR_BUSY;
        default:
            return QUAC100_ERR_IOCTL;
        }
    }
}

static int known_result(int32_t r)
{
    return (r >= 0x001 && r <= 0x00C) || (r >= 0x100 && r <= 0x10B) ||
           (r >= 0x200 && r <= 0x209) || (r >= 0x400 && r <= 0x403) ||
           (r >= 0x500 && r <= 0x505) || (r >= 0x600 && r <= 0x605);
}

/* The card's result code as a QuantaVirt code; a value outside the vendor's table is a
 * malformed reply. */
static int map_result(qv_pqc_backend *b, int32_t r)
{
    __atomic_store_n(&b->last_result, (int)r, __ATOMIC_RELAXED);
    if (r == QUAC100_OK)
        return 0;
    switch (r) {
    case QUAC100_RES_TIMEOUT:
        return QUAC100_ERR_TIMEOUT;
    case QUAC100_RES_BUSY:
        return QUAC100_ERR_BUSY;
    case QUAC100_RES_NOT_SUPPORTED:
    case QUAC100_RES_INVALID_ALGORITHM:
        return QUAC100_ERR_NOTSUP;
    default:
        return known_result(r) ? QUAC100_ERR_DEVICE : QUAC100_ERR_REPLY;
    }
}

/* A success that left an output all zero means the card never wrote it (a real ciphertext,
 * secret or signature is all zero with probability ~2^-256). */
static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static void copy_string(char *dst, size_t dst_size, const char *src, size_t src_size)
{
    size_t i = 0;
    for (; i + 1 < dst_size && i < src_size && src[i] != '\0'; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

/* GET_VERSION then GET_INFO on an open fd. */
static int query_device(qv_pqc_backend *b, const char *path)
{
    __u32 version = 0;
    int rc = do_ioctl(b, QUAC100_IOC_GET_VERSION, &version);
    if (rc != 0)
        return rc == QUAC100_ERR_NOTSUP ? QUAC100_ERR_VERSION : rc;
    if (version != QUAC100_INTERFACE_VERSION)
        return QUAC100_ERR_VERSION;
    struct quac100_device_info di;
    memset(&di, 0, sizeof(di));
    di.struct_size = sizeof(di);
    rc = do_ioctl(b, QUAC100_IOC_GET_INFO, &di);
    if (rc != 0)
        return rc;
    if (di.struct_size != sizeof(di))
        return QUAC100_ERR_REPLY;
    qv_quac100_info *info = &b->info;
    memset(info, 0, sizeof(*info));
    snprintf(info->path, sizeof(info->path), "%s", path);
    info->interface_version = version;
    info->driver_version = di.driver_version;
    info->device_index = di.device_index;
    copy_string(info->device_name, sizeof(info->device_name), di.device_name,
                sizeof(di.device_name));
    copy_string(info->serial_number, sizeof(info->serial_number), di.serial_number,
                sizeof(di.serial_number));
    info->vendor_id = di.vendor_id;
    info->device_id = di.device_id;
    info->subsystem_id = di.subsystem_id;
    info->revision = di.revision;
    info->fw_major = di.fw_major;
    info->fw_minor = di.fw_minor;
    info->fw_patch = di.fw_patch;
    info->capabilities = di.capabilities;
    info->status = di.status;
    info->max_batch_size = di.max_batch_size;
    info->max_pending_jobs = di.max_pending_jobs;
    info->key_slots_total = di.key_slots_total;
    info->key_slots_used = di.key_slots_used;
    info->simulator = (di.capabilities & QUAC100_CAP_SIMULATOR) != 0;
    return 0;
}

static int attach_path(qv_pqc_backend *b, const char *path)
{
    if (strlen(path) >= sizeof(b->info.path))
        return QUAC100_ERR_OPEN;
    /* O_NONBLOCK so that a FIFO named by mistake cannot hang the open; only character
     * devices (the driver) and regular files (a FUSE-served test device) are accepted. */
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? QUAC100_ERR_NO_DEVICE : QUAC100_ERR_OPEN;
    struct stat st;
    if (fstat(fd, &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISREG(st.st_mode)) ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        close(fd);
        return QUAC100_ERR_OPEN;
    }
    b->fd = fd;
    b->gone = 0;
    int rc = query_device(b, path);
    if (rc != 0) {
        close(fd);
        b->fd = -1;
    }
    return rc;
}

/* Tries each candidate in order: the caller's path, else the environment's ':' list, else
 * /dev/quac100_0..15. The first that answers wins; otherwise the most telling failure (a
 * device that exists but misbehaves beats "no device"). */
int qv_quac100_attach(qv_pqc_backend *b, const char *device)
{
    b->fd = -1;
    if (device != NULL && device[0] != '\0')
        return attach_path(b, device);
    const char *env = getenv(QV_QUAC100_DEVICE_ENV);
    int best = QUAC100_ERR_NO_DEVICE;
    if (env != NULL && env[0] != '\0') {
        char *list = strdup(env);
        if (list == NULL)
            return QV_ERR_NOMEM;
        char *save = NULL;
        for (char *p = strtok_r(list, ":", &save); p != NULL; p = strtok_r(NULL, ":", &save)) {
            int rc = attach_path(b, p);
            if (rc == 0) {
                free(list);
                return 0;
            }
            if (rc != QUAC100_ERR_NO_DEVICE)
                best = rc;
        }
        free(list);
        return best;
    }
    for (int i = 0; i < QUAC100_MAX_DEVICES; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/dev/quac100_%d", i);
        int rc = attach_path(b, path);
        if (rc == 0)
            return 0;
        if (rc != QUAC100_ERR_NO_DEVICE)
            best = rc;
    }
    return best;
}

void qv_quac100_detach(qv_pqc_backend *b)
{
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
}

int qv_quac100_probe(const char *path, qv_quac100_info *info)
{
    qv_pqc_backend b;
    memset(&b, 0, sizeof(b));
    int rc = qv_quac100_attach(&b, path);
    if (rc == 0 && info != NULL)
        *info = b.info;
    qv_quac100_detach(&b);
    return rc;
}

int qv_quac100_list(qv_quac100_info *infos, int max, int *count)
{
    if (count == NULL || max < 0 || (infos == NULL && max > 0))
        return QV_ERR_INVAL;
    *count = 0;
    const char *env = getenv(QV_QUAC100_DEVICE_ENV);
    char *list = NULL;
    if (env != NULL && env[0] != '\0') {
        list = strdup(env);
        if (list == NULL)
            return QV_ERR_NOMEM;
    }
    char *save = NULL;
    char *p = list ? strtok_r(list, ":", &save) : NULL;
    for (int i = 0; *count < max; i++) {
        char path[32];
        const char *candidate;
        if (list != NULL) {
            if (p == NULL)
                break;
            candidate = p;
        } else {
            if (i >= QUAC100_MAX_DEVICES)
                break;
            snprintf(path, sizeof(path), "/dev/quac100_%d", i);
            candidate = path;
        }
        if (qv_quac100_probe(candidate, &infos[*count]) == 0)
            (*count)++;
        if (list != NULL)
            p = strtok_r(NULL, ":", &save);
    }
    free(list);
    return 0;
}

/* One buffer of a request: its user address and size fields. */
static void set_buf(__u64 *addr, __u64 *size, const void *p, size_t len)
{
    *addr = addr_of(p);
    *size = len;
}

/* The ioctl, then the card's result code (the field the reply fills in). */
static int submit(qv_pqc_backend *b, unsigned long request, void *arg, const __s32 *result)
{
    int rc = do_ioctl(b, request, arg);
    return rc != 0 ? rc : map_result(b, *result);
}

static int need_quac100(qv_pqc_backend *b)
{
    if (b == NULL || b->kind != QV_PQC_BACKEND_QUAC100)
        return PQC_ERR_BACKEND;
    return is_gone(b) ? QUAC100_ERR_GONE : 0;
}

int qv_quac100_status(qv_pqc_backend *b, uint32_t *status)
{
    int rc = need_quac100(b);
    if (rc != 0 || status == NULL)
        return rc != 0 ? rc : QV_ERR_INVAL;
    __u32 s = 0;
    rc = do_ioctl(b, QUAC100_IOC_GET_STATUS, &s);
    if (rc == 0)
        *status = s;
    return rc;
}

int qv_quac100_counters(qv_pqc_backend *b, uint64_t counters[10])
{
    int rc = need_quac100(b);
    if (rc != 0 || counters == NULL)
        return rc != 0 ? rc : QV_ERR_INVAL;
    struct quac100_counters c;
    memset(&c, 0, sizeof(c));
    rc = do_ioctl(b, QUAC100_IOC_DIAG_GET_COUNTERS, &c);
    if (rc != 0)
        return rc;
    const __u64 v[10] = {c.kem_keygen, c.kem_encaps,   c.kem_decaps,     c.sign_keygen,
                         c.sign,       c.verify,       c.random_bytes,   c.dma_read_bytes,
                         c.dma_write_bytes, c.errors_total};
    for (int i = 0; i < 10; i++)
        counters[i] = v[i];
    return 0;
}

int qv_quac100_random(qv_pqc_backend *b, uint8_t *buf, size_t len)
{
    int rc = need_quac100(b);
    if (rc != 0)
        return rc;
    if ((buf == NULL && len != 0) || len > QUAC100_MAX_PAYLOAD)
        return PQC_ERR_SIZE;
    struct quac100_random r;
    memset(&r, 0, sizeof(r));
    set_buf(&r.buf_addr, &r.length, buf, len);
    rc = submit(b, QUAC100_IOC_RANDOM, &r, &r.result);
    if (rc != 0 && buf != NULL)
        memset(buf, 0, len);
    return rc;
}

/* ---- cryptographic operations ------------------------------------------------------- */

int qv_quac100_keygen(qv_pqc_backend *b, int alg, const uint8_t *seed, size_t seed_len,
                      uint8_t *pk, size_t pk_len, uint8_t *sk, size_t sk_len)
{
    struct quac100_kem_keygen k;
    memset(&k, 0, sizeof(k));
    k.algorithm = (__u32)alg;
    set_buf(&k.pk_addr, &k.pk_size, pk, pk_len);
    set_buf(&k.sk_addr, &k.sk_size, sk, sk_len);
    if (seed != NULL) {
        k.flags = QUAC100_KEYGEN_FLAG_SEED;
        set_buf(&k.seed_addr, &k.seed_size, seed, seed_len);
    }
    unsigned long req = QUAC100_ALG_FAMILY(alg) == QUAC100_FAMILY_KEM ? QUAC100_IOC_KEM_KEYGEN
                                                                       : QUAC100_IOC_SIGN_KEYGEN;
    return submit(b, req, &k, &k.result);
}

int qv_quac100_encaps(qv_pqc_backend *b, int alg, const uint8_t *pk, size_t pk_len,
                      uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len)
{
    struct quac100_kem_encaps e;
    memset(&e, 0, sizeof(e));
    memset(ct, 0, ct_len);
    memset(ss, 0, ss_len);
    e.algorithm = (__u32)alg;
    set_buf(&e.pk_addr, &e.pk_size, pk, pk_len);
    set_buf(&e.ct_addr, &e.ct_size, ct, ct_len);
    set_buf(&e.ss_addr, &e.ss_size, ss, ss_len);
    int rc = submit(b, QUAC100_IOC_KEM_ENCAPS, &e, &e.result);
    if (rc == 0 && (all_zero(ct, ct_len) || all_zero(ss, ss_len)))
        rc = QUAC100_ERR_REPLY;
    return rc;
}

int qv_quac100_decaps(qv_pqc_backend *b, int alg, const uint8_t *sk, size_t sk_len,
                      const uint8_t *ct, size_t ct_len, uint8_t *ss, size_t ss_len)
{
    struct quac100_kem_decaps d;
    memset(&d, 0, sizeof(d));
    memset(ss, 0, ss_len);
    d.algorithm = (__u32)alg;
    set_buf(&d.ct_addr, &d.ct_size, ct, ct_len);
    set_buf(&d.sk_addr, &d.sk_size, sk, sk_len);
    set_buf(&d.ss_addr, &d.ss_size, ss, ss_len);
    int rc = submit(b, QUAC100_IOC_KEM_DECAPS, &d, &d.result);
    if (rc == 0 && all_zero(ss, ss_len))
        rc = QUAC100_ERR_REPLY;
    return rc;
}

int qv_quac100_sign(qv_pqc_backend *b, int alg, const uint8_t *sk, size_t sk_len,
                    const uint8_t *msg, size_t msg_len, const uint8_t *ctx, size_t ctx_len,
                    int deterministic, uint8_t *sig, size_t sig_len)
{
    if (msg_len > QUAC100_MAX_PAYLOAD)
        return QUAC100_ERR_NOTSUP;
    struct quac100_sign s;
    memset(&s, 0, sizeof(s));
    memset(sig, 0, sig_len);
    s.algorithm = (__u32)alg;
    s.flags = deterministic ? QUAC100_SIGN_FLAG_DETERMINISTIC : 0;
    set_buf(&s.sk_addr, &s.sk_size, sk, sk_len);
    set_buf(&s.msg_addr, &s.msg_size, msg, msg_len);
    set_buf(&s.sig_addr, &s.sig_size, sig, sig_len);
    set_buf(&s.context_addr, &s.context_size, ctx, ctx_len);
    int rc = submit(b, QUAC100_IOC_SIGN, &s, &s.result);
    /* ML-DSA signatures have one fixed size: anything else is a broken reply. */
    if (rc == 0 && (s.sig_actual != sig_len || all_zero(sig, sig_len)))
        rc = QUAC100_ERR_REPLY;
    return rc;
}

int qv_quac100_verify(qv_pqc_backend *b, int alg, const uint8_t *pk, size_t pk_len,
                      const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len,
                      const uint8_t *ctx, size_t ctx_len)
{
    if (msg_len > QUAC100_MAX_PAYLOAD)
        return QUAC100_ERR_NOTSUP;
    struct quac100_verify v;
    memset(&v, 0, sizeof(v));
    v.algorithm = (__u32)alg;
    set_buf(&v.pk_addr, &v.pk_size, pk, pk_len);
    set_buf(&v.msg_addr, &v.msg_size, msg, msg_len);
    set_buf(&v.sig_addr, &v.sig_size, sig, sig_len);
    set_buf(&v.context_addr, &v.context_size, ctx, ctx_len);
    /* Pre-set to "invalid": a reply that never fills in the result does not say "valid". */
    v.result = QUAC100_RES_VERIFICATION_FAILED;
    int rc = do_ioctl(b, QUAC100_IOC_VERIFY, &v);
    if (rc != 0)
        return rc;
    if (v.result == QUAC100_RES_VERIFICATION_FAILED || v.result == QUAC100_RES_INVALID_SIGNATURE) {
        __atomic_store_n(&b->last_result, (int)v.result, __ATOMIC_RELAXED);
        return PQC_ERR_VERIFY;
    }
    return map_result(b, v.result);
}

/* ---- batches: BATCH_SUBMIT, BATCH_STATUS, BATCH_CANCEL ------------------------------ */

/* How long the host waits for one job before cancelling it (QUANTAVIRT_QUAC100_BATCH_TIMEOUT_MS
 * overrides it, for tests). */
#define BATCH_TIMEOUT_MS 5000u

static unsigned batch_timeout_ms(void)
{
    const char *env = getenv("QUANTAVIRT_QUAC100_BATCH_TIMEOUT_MS");
    if (env != NULL && env[0] != '\0') {
        char *end = NULL;
        unsigned long v = strtoul(env, &end, 10);
        if (end != NULL && *end == '\0' && v > 0 && v <= 600000)
            return (unsigned)v;
    }
    return BATCH_TIMEOUT_MS;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One job of `count` items: submit, then poll until the card reports it finished. A job that
 * does not finish in time, or whose status makes no sense, is cancelled so that the card stops
 * working on the caller's buffers. */
static int run_job(qv_pqc_backend *b, unsigned op, void *items, size_t item_size, size_t count)
{
    const unsigned timeout = batch_timeout_ms();
    struct quac100_batch_submit s;
    memset(&s, 0, sizeof(s));
    s.items_addr = addr_of(items);
    s.item_count = (__u32)count;
    s.item_size = (__u32)item_size;
    s.flags = op;
    s.timeout_ms = timeout;
    s.result = -1; /* never written: a malformed reply */
    int rc = submit(b, QUAC100_IOC_BATCH_SUBMIT, &s, &s.result);
    if (rc != 0)
        return rc;
    uint64_t done = (uint64_t)s.completed + s.failed;
    if (done == count)
        return 0;
    if (done > count)
        return QUAC100_ERR_REPLY;
    const uint64_t start = now_ms();
    for (unsigned poll = 0;; poll++) {
        struct quac100_batch_status st;
        memset(&st, 0, sizeof(st));
        st.job_id = s.job_id;
        st.result = -1;
        rc = submit(b, QUAC100_IOC_BATCH_STATUS, &st, &st.result);
        if (rc != 0)
            break;
        if (st.status == QUAC100_BATCH_DONE) {
            done = (uint64_t)st.completed + st.failed;
            return done == count ? 0 : QUAC100_ERR_REPLY;
        }
        if (st.status == QUAC100_BATCH_CANCELLED) {
            rc = QUAC100_ERR_DEVICE;
            break;
        }
        if (st.status != QUAC100_BATCH_PENDING && st.status != QUAC100_BATCH_RUNNING) {
            rc = QUAC100_ERR_REPLY;
            break;
        }
        if (now_ms() - start >= timeout) {
            rc = QUAC100_ERR_TIMEOUT;
            break;
        }
        /* 50 us, doubling up to 5 ms between polls */
        long ns = 50000L << (poll < 7 ? poll : 7);
        struct timespec pause = {0, ns < 5000000L ? ns : 5000000L};
        nanosleep(&pause, NULL);
    }
    if (!is_gone(b)) {
        __u64 id = s.job_id;
        (void)do_ioctl(b, QUAC100_IOC_BATCH_CANCEL, &id);
    }
    return rc;
}

int qv_quac100_kem_batch(qv_pqc_backend *b, int alg, unsigned op, size_t n, const uint8_t *in1,
                         const uint8_t *in2, uint8_t *out1, uint8_t *out2,
                         const size_t sizes[3], size_t *bad_index)
{
    size_t chunk = b->info.max_batch_size;
    if (chunk == 0)
        return QUAC100_ERR_NOTSUP; /* the card has no batches: the caller loops instead */
    if (chunk > 1024)
        chunk = 1024;
    const size_t item_size = op == QUAC100_BATCH_OP_KEM_KEYGEN   ? sizeof(struct quac100_kem_keygen)
                             : op == QUAC100_BATCH_OP_KEM_ENCAPS ? sizeof(struct quac100_kem_encaps)
                                                                 : sizeof(struct quac100_kem_decaps);
    const size_t o1 = op == QUAC100_BATCH_OP_KEM_KEYGEN   ? sizes[0]
                      : op == QUAC100_BATCH_OP_KEM_ENCAPS ? sizes[1]
                                                          : sizes[2];
    const size_t o2 = op == QUAC100_BATCH_OP_KEM_KEYGEN   ? sizes[1]
                      : op == QUAC100_BATCH_OP_KEM_ENCAPS ? sizes[2]
                                                          : 0;
    if (n == 0)
        return 0;
    /* The request structs, item_size apart (every one is a multiple of 8 bytes). */
    uint8_t *base = calloc(chunk < n ? chunk : n, item_size);
    if (base == NULL)
        return QV_ERR_NOMEM;
    int rc = 0;
    for (size_t g = 0; g < n && rc == 0; g += chunk) {
        const size_t cnt = n - g < chunk ? n - g : chunk;
        /* Outputs zeroed first: a success that left one all zero was never written. */
        memset(out1 + g * o1, 0, cnt * o1);
        if (out2 != NULL)
            memset(out2 + g * o2, 0, cnt * o2);
        for (size_t i = 0; i < cnt; i++) {
            size_t j = g + i;
            void *item = base + i * item_size;
            memset(item, 0, item_size);
            if (op == QUAC100_BATCH_OP_KEM_KEYGEN) {
                struct quac100_kem_keygen *k = item;
                k->algorithm = (__u32)alg;
                set_buf(&k->pk_addr, &k->pk_size, out1 + j * o1, o1);
                set_buf(&k->sk_addr, &k->sk_size, out2 + j * o2, o2);
                k->result = -1;
            } else if (op == QUAC100_BATCH_OP_KEM_ENCAPS) {
                struct quac100_kem_encaps *e = item;
                e->algorithm = (__u32)alg;
                set_buf(&e->pk_addr, &e->pk_size, in1 + j * sizes[0], sizes[0]);
                set_buf(&e->ct_addr, &e->ct_size, out1 + j * o1, o1);
                set_buf(&e->ss_addr, &e->ss_size, out2 + j * o2, o2);
                e->result = -1;
            } else {
                struct quac100_kem_decaps *d = item;
                d->algorithm = (__u32)alg;
                set_buf(&d->sk_addr, &d->sk_size, in1 + j * sizes[0], sizes[0]);
                set_buf(&d->ct_addr, &d->ct_size, in2 + j * sizes[1], sizes[1]);
                set_buf(&d->ss_addr, &d->ss_size, out1 + j * o1, o1);
                d->result = -1;
            }
        }
        rc = run_job(b, op, base, item_size, cnt);
        if (rc != 0) {
            if (bad_index != NULL)
                *bad_index = g;
            break;
        }
        /* Each item's own result, and the outputs it claims to have written. Only the result
         * fields of the returned items are read: the addresses in them are ours. */
        for (size_t i = 0; i < cnt && rc == 0; i++) {
            const void *item = base + i * item_size;
            __s32 r = op == QUAC100_BATCH_OP_KEM_KEYGEN
                          ? ((const struct quac100_kem_keygen *)item)->result
                      : op == QUAC100_BATCH_OP_KEM_ENCAPS
                          ? ((const struct quac100_kem_encaps *)item)->result
                          : ((const struct quac100_kem_decaps *)item)->result;
            rc = map_result(b, r);
            if (rc == 0 && (all_zero(out1 + (g + i) * o1, o1) ||
                            (out2 != NULL && all_zero(out2 + (g + i) * o2, o2))))
                rc = QUAC100_ERR_REPLY;
            if (rc != 0 && bad_index != NULL)
                *bad_index = g + i;
        }
    }
    free(base);
    if (rc != 0) { /* nothing of a failed batch is handed out (secret keys, shared secrets) */
        qv_wipe(out1, n * o1);
        if (out2 != NULL)
            qv_wipe(out2, n * o2);
    }
    return rc;
}

/* ---- key slots ------------------------------------------------------------------------ *
 * The card keeps the secret key; the host only ever sees slot numbers and public keys. A slot
 * number is checked against the card's key_slots_total before it is sent, and every slot
 * number, algorithm, count and key the card answers is checked before it is believed. */

static int slot_kem_level(int alg)
{
    switch (alg) {
    case QUAC100_ALG_ML_KEM_512:
        return 512;
    case QUAC100_ALG_ML_KEM_768:
        return 768;
    case QUAC100_ALG_ML_KEM_1024:
        return 1024;
    default:
        return 0;
    }
}

static int need_slots(qv_pqc_backend *b)
{
    int rc = need_quac100(b);
    if (rc != 0)
        return rc;
    return b->info.key_slots_total == 0 ? QUAC100_ERR_NOTSUP : 0;
}

static int valid_slot(const qv_pqc_backend *b, uint32_t slot)
{
    return slot < b->info.key_slots_total;
}

/* A label the card echoes back: printable ASCII then NUL padding, else a malformed reply. */
static int label_ok(const char *label, size_t len)
{
    size_t i = 0;
    for (; i < len && label[i] != '\0'; i++)
        if (label[i] < 0x20 || label[i] >= 0x7f)
            return 0;
    for (; i < len; i++)
        if (label[i] != '\0')
            return 0;
    return 1;
}

/* The public key the card answered: the FIPS 203 modulus check, so a garbage key is never
 * handed out as a host key; an all-zero key passes that check but means "never written". */
static int reply_public_key(int alg, const uint8_t *pk, size_t pk_len)
{
    if (all_zero(pk, pk_len))
        return QUAC100_ERR_REPLY;
    return qv_mlkem_check_public_key(slot_kem_level(alg), pk, pk_len) == 0 ? 0
                                                                           : QUAC100_ERR_REPLY;
}

static int slot_pk_args(int alg, const uint8_t *pk, size_t pk_len)
{
    size_t want = 0;
    if (slot_kem_level(alg) == 0)
        return PQC_ERR_ALGORITHM;
    qv_pqc_sizes(alg, &want, NULL, NULL);
    return pk == NULL || pk_len != want ? PQC_ERR_SIZE : 0;
}

int qv_quac100_slot_generate(qv_pqc_backend *b, int alg, const char *label, uint32_t *slot,
                             uint8_t *pk, size_t pk_len)
{
    int rc = need_slots(b);
    if (rc != 0)
        return rc;
    if ((rc = slot_pk_args(alg, pk, pk_len)) != 0)
        return rc;
    if (slot == NULL)
        return QV_ERR_INVAL;
    size_t label_len = label != NULL ? strlen(label) : 0;
    if (label_len > QUAC100_KEY_LABEL_LEN || !label_ok(label != NULL ? label : "", label_len))
        return QV_ERR_INVAL;
    struct quac100_key_generate g;
    memset(&g, 0, sizeof(g));
    memset(pk, 0, pk_len);
    g.algorithm = (__u32)alg;
    g.slot = UINT32_MAX; /* a reply that never fills it in is caught below */
    if (label_len > 0)
        memcpy(g.label, label, label_len);
    set_buf(&g.pk_addr, &g.pk_size, pk, pk_len);
    rc = submit(b, QUAC100_IOC_KEY_GENERATE, &g, &g.result);
    if (rc == 0 && !valid_slot(b, g.slot))
        rc = QUAC100_ERR_REPLY;
    if (rc == 0)
        rc = reply_public_key(alg, pk, pk_len);
    if (rc != 0) {
        memset(pk, 0, pk_len);
        return rc;
    }
    *slot = g.slot;
    return 0;
}

int qv_quac100_slot_public_key(qv_pqc_backend *b, uint32_t slot, int alg, uint8_t *pk,
                               size_t pk_len)
{
    int rc = need_slots(b);
    if (rc != 0)
        return rc;
    if ((rc = slot_pk_args(alg, pk, pk_len)) != 0)
        return rc;
    if (!valid_slot(b, slot))
        return QUAC100_ERR_SLOT;
    struct quac100_key_export e;
    memset(&e, 0, sizeof(e));
    memset(pk, 0, pk_len);
    e.slot = slot;
    set_buf(&e.pk_addr, &e.pk_size, pk, pk_len);
    rc = submit(b, QUAC100_IOC_KEY_EXPORT_PUBLIC, &e, &e.result);
    if (rc == QUAC100_ERR_DEVICE && b->last_result == QUAC100_RES_INVALID_KEY)
        rc = QUAC100_ERR_SLOT;
    /* The slot holds another parameter set than the caller's record says: not this key (the
     * card then also refuses our buffer's size, which is no card error). */
    if ((rc == 0 || rc == QUAC100_ERR_DEVICE) && e.algorithm != (__u32)alg &&
        slot_kem_level((int)e.algorithm) != 0)
        rc = PQC_ERR_KEY;
    else if (rc == 0 && e.algorithm != (__u32)alg)
        rc = QUAC100_ERR_REPLY;
    if (rc == 0)
        rc = reply_public_key(alg, pk, pk_len);
    if (rc != 0)
        memset(pk, 0, pk_len);
    return rc;
}

int qv_quac100_slot_decaps(qv_pqc_backend *b, uint32_t slot, int alg, const uint8_t *ct,
                           size_t ct_len, uint8_t *ss, size_t ss_len)
{
    int rc = need_slots(b);
    if (rc != 0)
        return rc;
    size_t ctb = 0;
    if (slot_kem_level(alg) == 0)
        return PQC_ERR_ALGORITHM;
    qv_pqc_sizes(alg, NULL, NULL, &ctb);
    if (ct == NULL || ss == NULL || ct_len != ctb || ss_len != 32)
        return PQC_ERR_SIZE;
    if (!valid_slot(b, slot))
        return QUAC100_ERR_SLOT;
    struct quac100_kem_decaps d;
    memset(&d, 0, sizeof(d));
    memset(ss, 0, ss_len);
    d.algorithm = (__u32)alg;
    d.flags = QUAC100_FLAG_KEY_SLOT;
    d.sk_addr = slot; /* the slot number, not an address: the key stays on the card */
    d.sk_size = 0;
    set_buf(&d.ct_addr, &d.ct_size, ct, ct_len);
    set_buf(&d.ss_addr, &d.ss_size, ss, ss_len);
    rc = submit(b, QUAC100_IOC_KEM_DECAPS, &d, &d.result);
    if (rc == QUAC100_ERR_DEVICE && b->last_result == QUAC100_RES_INVALID_KEY)
        rc = QUAC100_ERR_SLOT;
    if (rc == 0 && all_zero(ss, ss_len))
        rc = QUAC100_ERR_REPLY;
    if (rc != 0)
        qv_wipe(ss, ss_len);
    return rc;
}

int qv_quac100_slot_delete(qv_pqc_backend *b, uint32_t slot)
{
    int rc = need_slots(b);
    if (rc != 0)
        return rc;
    if (!valid_slot(b, slot))
        return QUAC100_ERR_SLOT;
    struct quac100_key_delete k;
    memset(&k, 0, sizeof(k));
    k.slot = slot;
    rc = submit(b, QUAC100_IOC_KEY_DELETE, &k, &k.result);
    if (rc == QUAC100_ERR_DEVICE && b->last_result == QUAC100_RES_INVALID_KEY)
        rc = QUAC100_ERR_SLOT;
    return rc;
}

int qv_quac100_slot_list(qv_pqc_backend *b, qv_quac100_key_slot *slots, int max, int *count)
{
    int rc = need_slots(b);
    if (rc != 0)
        return rc;
    if (count == NULL || max < 0 || (slots == NULL && max > 0))
        return QV_ERR_INVAL;
    *count = 0;
    uint32_t total = b->info.key_slots_total;
    /* Room for every slot the card has (at most 4096 so a lying GET_INFO cannot make the
     * host allocate without bound). */
    if (total > 4096)
        return QUAC100_ERR_REPLY;
    struct quac100_key_entry *e = calloc(total, sizeof(*e));
    if (e == NULL)
        return QV_ERR_NOMEM;
    struct quac100_key_list l;
    memset(&l, 0, sizeof(l));
    l.entries_addr = addr_of(e);
    l.max_entries = total;
    l.count = UINT32_MAX;
    rc = submit(b, QUAC100_IOC_KEY_LIST, &l, &l.result);
    if (rc == 0 && l.count > total)
        rc = QUAC100_ERR_REPLY;
    /* Entries must be distinct valid slots in increasing order, with known algorithms. */
    for (uint32_t i = 0; rc == 0 && i < l.count; i++) {
        if (!valid_slot(b, e[i].slot) || (i > 0 && e[i].slot <= e[i - 1].slot) ||
            slot_kem_level((int)e[i].algorithm) == 0 || !label_ok(e[i].label, sizeof(e[i].label)))
            rc = QUAC100_ERR_REPLY;
    }
    if (rc == 0) {
        int n = l.count < (uint32_t)max ? (int)l.count : max;
        for (int i = 0; i < n; i++) {
            slots[i].slot = e[i].slot;
            slots[i].algorithm = (int)e[i].algorithm;
            memcpy(slots[i].label, e[i].label, QUAC100_KEY_LABEL_LEN);
            slots[i].label[QUAC100_KEY_LABEL_LEN] = '\0';
        }
        *count = (int)l.count;
    }
    free(e);
    return rc;
}
