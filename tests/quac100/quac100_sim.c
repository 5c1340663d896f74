/* A QUAC 100 card served from user space, for the tests: a FUSE file system whose file
 * `quac100_15` (or --name) answers the card's ioctl ABI (vendor/quac100/quac100_ioctl.h) with
 * real ML-KEM / ML-DSA results computed by the core's software implementation.
 *
 * Why FUSE and not CUSE: this kernel has no CUSE (CONFIG_CUSE is not set, no modules), so no
 * character device can be served from user space. An ioctl on a file in a FUSE mount reaches
 * this server as a "restricted" ioctl: the kernel copies the argument struct in and out by the
 * size encoded in the command number, and FUSE_IOCTL_RETRY (the CUSE way to fetch the buffers
 * the struct points to) is refused. So the buffers behind the *_addr fields are copied from
 * and to the calling process with process_vm_readv / process_vm_writev - what a kernel driver
 * does with copy_from_user / copy_to_user, with the caller's pid from the FUSE request.
 *
 * Not part of the core library: the tests build it against libqv_core.a and libfuse3.
 *
 * Usage: quac100_sim MOUNTPOINT [--name=quac100_15] [fault options]
 * Faults (also written as `key=value` lines to MOUNTPOINT/control at run time; `reset`
 * clears them): version=N, info_size=N, fail_result=N, fail_errno=N, sig_actual=N,
 * exit_after=N (the Nth cryptographic request makes the server exit without answering:
 * the device vanishes mid-operation), no_write=1, corrupt=1, ignore_seed=1, garbage=SEED
 * (random replies: result codes, sig_actual, output bytes, errnos); for the batch ioctls:
 * batch_max=N (GET_INFO's max_batch_size, 0 = no batches), batch_async=N (a job answers
 * "running" to the first N BATCH_STATUS polls), batch_stuck=1 (jobs never finish: only
 * BATCH_CANCEL ends them), batch_count=N (BATCH_SUBMIT and BATCH_STATUS report N items done, whatever ran).
 * Key slots: SIM_KEY_SLOTS ML-KEM pairs kept in this process's memory (lost when it exits);
 * KEY_GENERATE / EXPORT_PUBLIC / DELETE / LIST and KEM_DECAPS with QUAC100_FLAG_KEY_SLOT.
 * slot_reply=N makes KEY_GENERATE answer slot N whatever it used, and KEY_LIST answer
 * its entries in reverse order (a card that lies about its slots). */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "quac100/quac100_ioctl.h"
#include "quantavirt/errors.h"
#include "quantavirt/mldsa.h"
#include "quantavirt/mlkem.h"

#define INO_DEVICE 2
#define INO_CONTROL 3

struct faults {
    uint32_t version;
    uint32_t info_size;
    int32_t fail_result;
    int fail_errno;
    int64_t sig_actual; /* -1: honest */
    long exit_after;    /* 0: never */
    int no_write;
    int corrupt;
    int ignore_seed;
    int garbage;
    uint64_t rng;
    uint32_t batch_max;
    long batch_async;
    int batch_stuck;
    long batch_count; /* -1: honest */
    long slot_reply;  /* -1: honest */
};

#define SIM_KEY_SLOTS 16

/* The card's key slots: the secret keys never leave this array. */
static struct {
    int used;
    __u32 algorithm;
    char label[QUAC100_KEY_LABEL_LEN];
    uint8_t pk[1568];
    uint8_t sk[3168];
} slots[SIM_KEY_SLOTS];

/* The last batch job, for BATCH_STATUS and BATCH_CANCEL. */
static struct {
    __u64 id;
    __u32 count, completed, failed, status;
    long polls;
} job;

static struct faults faults;
static const char *device_name = "quac100_15";
static struct quac100_counters counters;
static time_t started;
static long crypto_requests;

static void faults_reset(void)
{
    memset(&faults, 0, sizeof(faults));
    faults.version = QUAC100_INTERFACE_VERSION;
    faults.sig_actual = -1;
    faults.batch_max = 1024;
    faults.batch_count = -1;
    faults.slot_reply = -1;
}

/* `key=value`; returns 0 or -1 for an unknown key. */
static int set_fault(const char *line)
{
    char key[32];
    long long value = 0;
    if (strcmp(line, "reset") == 0) {
        faults_reset();
        return 0;
    }
    if (sscanf(line, "%31[a-z_]=%lli", key, &value) != 2)
        return -1;
    if (strcmp(key, "version") == 0)
        faults.version = (uint32_t)value;
    else if (strcmp(key, "info_size") == 0)
        faults.info_size = (uint32_t)value;
    else if (strcmp(key, "fail_result") == 0)
        faults.fail_result = (int32_t)value;
    else if (strcmp(key, "fail_errno") == 0)
        faults.fail_errno = (int)value;
    else if (strcmp(key, "sig_actual") == 0)
        faults.sig_actual = value;
    else if (strcmp(key, "exit_after") == 0) {
        faults.exit_after = (long)value;
        crypto_requests = 0;
    } else if (strcmp(key, "no_write") == 0)
        faults.no_write = value != 0;
    else if (strcmp(key, "corrupt") == 0)
        faults.corrupt = value != 0;
    else if (strcmp(key, "ignore_seed") == 0)
        faults.ignore_seed = value != 0;
    else if (strcmp(key, "garbage") == 0) {
        faults.garbage = 1;
        faults.rng = (uint64_t)value * 0x9E3779B97F4A7C15ull + 1;
    } else if (strcmp(key, "batch_max") == 0)
        faults.batch_max = (uint32_t)value;
    else if (strcmp(key, "batch_async") == 0)
        faults.batch_async = (long)value;
    else if (strcmp(key, "batch_stuck") == 0)
        faults.batch_stuck = value != 0;
    else if (strcmp(key, "batch_count") == 0)
        faults.batch_count = (long)value;
    else if (strcmp(key, "slot_reply") == 0)
        faults.slot_reply = (long)value;
    else
        return -1;
    return 0;
}

static uint64_t rnd(void)
{
    /* xorshift64*: reproducible garbage from the seed */
    faults.rng ^= faults.rng >> 12;
    faults.rng ^= faults.rng << 25;
    faults.rng ^= faults.rng >> 27;
    return faults.rng * 0x2545F4914F6CDD1Dull;
}

/* ---- the caller's memory (copy_from_user / copy_to_user) ---------------------------- */

static int from_user(pid_t pid, void *dst, __u64 addr, __u64 len)
{
    if (len == 0)
        return 0;
    struct iovec local = {dst, len}, remote = {(void *)(uintptr_t)addr, len};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    return n == (ssize_t)len ? 0 : -EFAULT;
}

static int to_user(pid_t pid, __u64 addr, const void *src, __u64 len)
{
    if (len == 0)
        return 0;
    struct iovec local = {(void *)src, len}, remote = {(void *)(uintptr_t)addr, len};
    ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    return n == (ssize_t)len ? 0 : -EFAULT;
}

/* ---- algorithm helpers ------------------------------------------------------------- */

static int kem_level(__u32 alg)
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

static int dsa_param(__u32 alg)
{
    switch (alg) {
    case QUAC100_ALG_ML_DSA_44:
        return QV_MLDSA_44;
    case QUAC100_ALG_ML_DSA_65:
        return QV_MLDSA_65;
    case QUAC100_ALG_ML_DSA_87:
        return QV_MLDSA_87;
    default:
        return 0;
    }
}

/* An output the card hands back, after the faults had their say. */
struct output {
    uint8_t *data;
    __u64 addr;
    __u64 len;
};

static void mangle(struct output *outs, int n)
{
    if (faults.corrupt)
        for (int i = 0; i < n; i++)
            if (outs[i].len > 0)
                outs[i].data[outs[i].len / 2] ^= 0x01;
}

static int write_outputs(pid_t pid, struct output *outs, int n)
{
    if (faults.no_write)
        return 0;
    for (int i = 0; i < n; i++)
        if (to_user(pid, outs[i].addr, outs[i].data, outs[i].len) != 0)
            return -EFAULT;
    return 0;
}

static int32_t software_result(int rc, int32_t otherwise)
{
    if (rc == 0)
        return QUAC100_OK;
    if (rc == PQC_ERR_KEY)
        return QUAC100_RES_INVALID_KEY;
    if (rc == PQC_ERR_SIZE)
        return QUAC100_RES_INVALID_KEY_SIZE;
    if (rc == PQC_ERR_CONTEXT)
        return QUAC100_RES_INVALID_PARAMETER;
    if (rc == PQC_ERR_VERIFY)
        return QUAC100_RES_VERIFICATION_FAILED;
    return otherwise;
}

/* ---- the operations: each returns 0 (reply the struct) or -errno ------------------- */

static int op_keygen(pid_t pid, struct quac100_kem_keygen *k, int kem)
{
    int level = kem ? kem_level(k->algorithm) : 0, param = kem ? 0 : dsa_param(k->algorithm);
    size_t pkb = 0, skb = 0;
    if (kem ? level == 0 : param == 0) {
        k->result = QUAC100_RES_INVALID_ALGORITHM;
        return 0;
    }
    if (kem)
        qv_mlkem_sizes(level, &pkb, &skb, NULL);
    else
        qv_mldsa_sizes(param, &pkb, &skb, NULL);
    size_t seedb = kem ? QV_MLKEM_SEED_BYTES : QV_MLDSA_SEED_BYTES;
    int seeded = (k->flags & QUAC100_KEYGEN_FLAG_SEED) && !faults.ignore_seed;
    if (k->pk_size != pkb || k->sk_size != skb || (seeded && k->seed_size != seedb)) {
        k->result = QUAC100_RES_INVALID_KEY_SIZE;
        return 0;
    }
    uint8_t seed[64], pk[2592], sk[4896]; /* the largest: ML-DSA-87 */
    if (seeded && from_user(pid, seed, k->seed_addr, seedb) != 0)
        return -EFAULT;
    int rc;
    if (kem)
        rc = seeded ? qv_mlkem_keygen_seed(level, seed, seedb, pk, pkb, sk, skb)
                    : qv_mlkem_keygen(level, pk, pkb, sk, skb);
    else
        rc = seeded ? qv_mldsa_keygen_seed(param, pk, sk, seed) : qv_mldsa_keygen(param, pk, sk);
    k->result = software_result(rc, QUAC100_RES_KEY_GENERATION_FAILED);
    if (rc == 0) {
        struct output outs[2] = {{pk, k->pk_addr, pkb}, {sk, k->sk_addr, skb}};
        mangle(outs, 2);
        if (write_outputs(pid, outs, 2) != 0)
            return -EFAULT;
        if (kem)
            counters.kem_keygen++;
        else
            counters.sign_keygen++;
    }
    memset(seed, 0, sizeof(seed));
    memset(sk, 0, sizeof(sk));
    return 0;
}

static int op_encaps(pid_t pid, struct quac100_kem_encaps *e)
{
    int level = kem_level(e->algorithm);
    size_t pkb, ctb;
    if (level == 0) {
        e->result = QUAC100_RES_INVALID_ALGORITHM;
        return 0;
    }
    qv_mlkem_sizes(level, &pkb, NULL, &ctb);
    if (e->pk_size != pkb || e->ct_size != ctb || e->ss_size != QV_MLKEM_SHARED_SECRET_BYTES) {
        e->result = QUAC100_RES_INVALID_KEY_SIZE;
        return 0;
    }
    uint8_t pk[1568], ct[1568], ss[32];
    if (from_user(pid, pk, e->pk_addr, pkb) != 0)
        return -EFAULT;
    int rc = qv_mlkem_encaps(level, pk, pkb, ct, ctb, ss, sizeof(ss));
    e->result = software_result(rc, QUAC100_RES_ENCAPSULATION_FAILED);
    if (rc == 0) {
        struct output outs[2] = {{ct, e->ct_addr, ctb}, {ss, e->ss_addr, sizeof(ss)}};
        mangle(outs, 2);
        if (write_outputs(pid, outs, 2) != 0)
            return -EFAULT;
        counters.kem_encaps++;
    }
    return 0;
}

static int op_decaps(pid_t pid, struct quac100_kem_decaps *d)
{
    int level = kem_level(d->algorithm);
    size_t skb, ctb;
    if (level == 0) {
        d->result = QUAC100_RES_INVALID_ALGORITHM;
        return 0;
    }
    qv_mlkem_sizes(level, NULL, &skb, &ctb);
    int by_slot = (d->flags & QUAC100_FLAG_KEY_SLOT) != 0;
    if ((by_slot ? d->sk_size != 0 : d->sk_size != skb) || d->ct_size != ctb ||
        d->ss_size != QV_MLKEM_SHARED_SECRET_BYTES) {
        d->result = QUAC100_RES_INVALID_KEY_SIZE;
        return 0;
    }
    if (by_slot && (d->sk_addr >= SIM_KEY_SLOTS || !slots[d->sk_addr].used ||
                    slots[d->sk_addr].algorithm != d->algorithm)) {
        d->result = QUAC100_RES_INVALID_KEY;
        return 0;
    }
    uint8_t sk[3168], ct[1568], ss[32];
    if (by_slot)
        memcpy(sk, slots[d->sk_addr].sk, skb);
    else if (from_user(pid, sk, d->sk_addr, skb) != 0)
        return -EFAULT;
    if (from_user(pid, ct, d->ct_addr, ctb) != 0)
        return -EFAULT;
    int rc = qv_mlkem_decaps(level, sk, skb, ct, ctb, ss, sizeof(ss));
    memset(sk, 0, sizeof(sk));
    d->result = software_result(rc, QUAC100_RES_DECAPSULATION_FAILED);
    if (rc == 0) {
        struct output outs[1] = {{ss, d->ss_addr, sizeof(ss)}};
        mangle(outs, 1);
        if (write_outputs(pid, outs, 1) != 0)
            return -EFAULT;
        counters.kem_decaps++;
    }
    return 0;
}

/* ---- key slots ------------------------------------------------------------------------ */

static int op_key_generate(pid_t pid, struct quac100_key_generate *g)
{
    int level = kem_level(g->algorithm);
    size_t pkb = 0, skb = 0;
    if (level == 0) {
        g->result = QUAC100_RES_INVALID_ALGORITHM;
        return 0;
    }
    qv_mlkem_sizes(level, &pkb, &skb, NULL);
    if (g->pk_size != pkb) {
        g->result = QUAC100_RES_INVALID_KEY_SIZE;
        return 0;
    }
    int i = 0;
    while (i < SIM_KEY_SLOTS && slots[i].used)
        i++;
    if (i == SIM_KEY_SLOTS) {
        g->result = QUAC100_RES_OUT_OF_MEMORY;
        return 0;
    }
    if (qv_mlkem_keygen(level, slots[i].pk, pkb, slots[i].sk, skb) != 0) {
        g->result = QUAC100_RES_KEY_GENERATION_FAILED;
        return 0;
    }
    struct output outs[1] = {{slots[i].pk, g->pk_addr, pkb}};
    if (write_outputs(pid, outs, 1) != 0) {
        memset(slots[i].sk, 0, sizeof(slots[i].sk));
        return -EFAULT;
    }
    slots[i].used = 1;
    slots[i].algorithm = g->algorithm;
    memcpy(slots[i].label, g->label, sizeof(slots[i].label));
    g->slot = faults.slot_reply >= 0 ? (__u32)faults.slot_reply : (__u32)i;
    g->result = QUAC100_OK;
    counters.kem_keygen++;
    return 0;
}

static int op_key_export(pid_t pid, struct quac100_key_export *e)
{
    if (e->slot >= SIM_KEY_SLOTS || !slots[e->slot].used) {
        e->result = QUAC100_RES_INVALID_KEY;
        return 0;
    }
    size_t pkb = 0;
    qv_mlkem_sizes(kem_level(slots[e->slot].algorithm), &pkb, NULL, NULL);
    e->algorithm = slots[e->slot].algorithm;
    if (e->pk_size != pkb) {
        e->result = QUAC100_RES_BUFFER_TOO_SMALL;
        return 0;
    }
    struct output outs[1] = {{slots[e->slot].pk, e->pk_addr, pkb}};
    if (write_outputs(pid, outs, 1) != 0)
        return -EFAULT;
    e->result = QUAC100_OK;
    return 0;
}

static void op_key_delete(struct quac100_key_delete *k)
{
    if (k->slot >= SIM_KEY_SLOTS || !slots[k->slot].used) {
        k->result = QUAC100_RES_INVALID_KEY;
        return;
    }
    memset(&slots[k->slot], 0, sizeof(slots[k->slot]));
    k->result = QUAC100_OK;
}

static int op_key_list(pid_t pid, struct quac100_key_list *l)
{
    struct quac100_key_entry e[SIM_KEY_SLOTS];
    __u32 n = 0;
    for (int i = 0; i < SIM_KEY_SLOTS && n < l->max_entries; i++)
        if (slots[i].used) {
            e[n].slot = (__u32)i;
            e[n].algorithm = slots[i].algorithm;
            memcpy(e[n].label, slots[i].label, sizeof(e[n].label));
            n++;
        }
    if (faults.slot_reply >= 0) /* out of order: a card confused about its own slots */
        for (__u32 i = 0; i < n / 2; i++) {
            struct quac100_key_entry t = e[i];
            e[i] = e[n - 1 - i];
            e[n - 1 - i] = t;
        }
    if (n > 0 && to_user(pid, l->entries_addr, e, n * sizeof(e[0])) != 0)
        return -EFAULT;
    l->count = n;
    l->result = QUAC100_OK;
    return 0;
}

static __u32 slots_used(void)
{
    __u32 n = 0;
    for (int i = 0; i < SIM_KEY_SLOTS; i++)
        n += slots[i].used != 0;
    return n;
}

/* Message and context of a SIGN / VERIFY request, fetched from the caller. */
static int fetch_message(pid_t pid, __u64 msg_addr, __u64 msg_size, __u64 ctx_addr,
                         __u64 ctx_size, uint8_t **msg, uint8_t ctx[255])
{
    if (msg_size > QUAC100_MAX_PAYLOAD || ctx_size > 255)
        return 1;
    *msg = malloc(msg_size ? msg_size : 1);
    if (*msg == NULL)
        return -ENOMEM;
    if (from_user(pid, *msg, msg_addr, msg_size) != 0 ||
        from_user(pid, ctx, ctx_addr, ctx_size) != 0) {
        free(*msg);
        return -EFAULT;
    }
    return 0;
}

static int op_sign(pid_t pid, struct quac100_sign *s)
{
    int param = dsa_param(s->algorithm);
    size_t skb, sigb;
    if (param == 0) {
        s->result = QUAC100_RES_INVALID_ALGORITHM;
        return 0;
    }
    qv_mldsa_sizes(param, NULL, &skb, &sigb);
    if (s->sk_size != skb) {
        s->result = QUAC100_RES_INVALID_KEY_SIZE;
        return 0;
    }
    if (s->sig_size < sigb) {
        s->result = QUAC100_RES_BUFFER_TOO_SMALL;
        return 0;
    }
    uint8_t sk[4896], sig[4627], ctx[255], *msg = NULL;
    int f = fetch_message(pid, s->msg_addr, s->msg_size, s->context_addr, s->context_size, &msg,
                          ctx);
    if (f != 0) {
        if (f > 0)
            s->result = QUAC100_RES_INVALID_PARAMETER;
        return f > 0 ? 0 : f;
    }
    if (from_user(pid, sk, s->sk_addr, skb) != 0) {
        free(msg);
        return -EFAULT;
    }
    int rc = qv_mldsa_sign(param, sig, sk, msg, s->msg_size, ctx, s->context_size,
                           (s->flags & QUAC100_SIGN_FLAG_DETERMINISTIC) != 0);
    memset(sk, 0, sizeof(sk));
    free(msg);
    s->result = software_result(rc, QUAC100_RES_SIGNING_FAILED);
    if (rc == 0) {
        s->sig_actual = faults.sig_actual >= 0 ? (__u64)faults.sig_actual : sigb;
        struct output outs[1] = {{sig, s->sig_addr, sigb}};
        mangle(outs, 1);
        if (write_outputs(pid, outs, 1) != 0)
            return -EFAULT;
        counters.sign++;
    }
    return 0;
}

static int op_verify(pid_t pid, struct quac100_verify *v)
{
    int param = dsa_param(v->algorithm);
    size_t pkb;
    if (param == 0) {
        v->result = QUAC100_RES_INVALID_ALGORITHM;
        return 0;
    }
    qv_mldsa_sizes(param, &pkb, NULL, NULL);
    if (v->pk_size != pkb || v->sig_size > 8192) {
        v->result = QUAC100_RES_INVALID_KEY_SIZE;
        return 0;
    }
    uint8_t pk[2592], sig[8192], ctx[255], *msg = NULL;
    int f = fetch_message(pid, v->msg_addr, v->msg_size, v->context_addr, v->context_size, &msg,
                          ctx);
    if (f != 0) {
        if (f > 0)
            v->result = QUAC100_RES_INVALID_PARAMETER;
        return f > 0 ? 0 : f;
    }
    if (from_user(pid, pk, v->pk_addr, pkb) != 0 ||
        from_user(pid, sig, v->sig_addr, v->sig_size) != 0) {
        free(msg);
        return -EFAULT;
    }
    int rc = qv_mldsa_verify(param, pk, pkb, msg, v->msg_size, sig, v->sig_size, ctx,
                             v->context_size);
    free(msg);
    v->result = software_result(rc, QUAC100_RES_UNKNOWN);
    if (faults.corrupt)
        v->result = v->result == QUAC100_OK ? QUAC100_RES_VERIFICATION_FAILED : QUAC100_OK;
    counters.verify++;
    return 0;
}

static int op_random(pid_t pid, struct quac100_random *r)
{
    if (r->length > QUAC100_MAX_PAYLOAD) {
        r->result = QUAC100_RES_INVALID_PARAMETER;
        return 0;
    }
    uint8_t *buf = malloc(r->length ? r->length : 1);
    if (buf == NULL)
        return -ENOMEM;
    size_t done = 0;
    while (done < r->length) {
        ssize_t n = getrandom(buf + done, r->length - done, 0);
        if (n <= 0) {
            free(buf);
            r->result = QUAC100_RES_QRNG_BASE;
            return 0;
        }
        done += (size_t)n;
    }
    int rc = faults.no_write ? 0 : to_user(pid, r->buf_addr, buf, r->length);
    free(buf);
    if (rc != 0)
        return rc;
    counters.random_bytes += r->length;
    r->result = QUAC100_OK;
    return 0;
}

/* ---- garbage mode: what a broken or hostile card might answer ---------------------- */

static void random_fill(pid_t pid, __u64 addr, __u64 len)
{
    uint8_t buf[8192];
    if (len > sizeof(buf))
        len = sizeof(buf);
    for (__u64 i = 0; i < len; i++)
        buf[i] = (uint8_t)rnd();
    (void)to_user(pid, addr, buf, len);
}

static int32_t random_result(void)
{
    static const int32_t codes[] = {0x001, 0x004, 0x006, 0x009, 0x00B, 0x00C, 0x100, 0x10B,
                                    0x200, 0x203, 0x204, 0x205, 0x206, 0x208, 0x400, 0x605,
                                    -1,    0x7FFFFFFF, 0x0D, 0x1234};
    if (rnd() % 4 == 0)
        return (int32_t)rnd();
    return codes[rnd() % (sizeof(codes) / sizeof(codes[0]))];
}

/* Decides how to misbehave on this request: 0 honest, or -errno, or 1 = the struct was
 * already filled with garbage and must be sent back as it is. */
static int garbage_plan(pid_t pid, unsigned int cmd, void *arg)
{
    uint64_t pick = rnd() % 6;
    if (pick == 0)
        return 0;
    if (pick == 1) {
        static const int errs[] = {EINVAL, EFAULT, ENOTTY, EBUSY, ETIMEDOUT, EAGAIN, EPERM};
        return -errs[rnd() % (sizeof(errs) / sizeof(errs[0]))];
    }
    /* Random bytes into every output buffer the request names, then a random or 0 result. */
    int32_t result = pick == 2 ? random_result() : 0;
    switch (cmd) {
    case QUAC100_IOC_KEM_KEYGEN:
    case QUAC100_IOC_SIGN_KEYGEN: {
        struct quac100_kem_keygen *k = arg;
        random_fill(pid, k->pk_addr, k->pk_size);
        random_fill(pid, k->sk_addr, k->sk_size);
        k->result = result;
        break;
    }
    case QUAC100_IOC_KEM_ENCAPS: {
        struct quac100_kem_encaps *e = arg;
        random_fill(pid, e->ct_addr, e->ct_size);
        random_fill(pid, e->ss_addr, e->ss_size);
        e->result = result;
        break;
    }
    case QUAC100_IOC_KEM_DECAPS: {
        struct quac100_kem_decaps *d = arg;
        random_fill(pid, d->ss_addr, d->ss_size);
        d->result = result;
        break;
    }
    case QUAC100_IOC_SIGN: {
        struct quac100_sign *s = arg;
        random_fill(pid, s->sig_addr, s->sig_size);
        s->result = result;
        s->sig_actual = pick == 4 ? rnd() : (pick == 5 ? s->sig_size : rnd() % 8192);
        break;
    }
    case QUAC100_IOC_VERIFY: {
        struct quac100_verify *v = arg;
        v->result = pick == 3 ? 0 : random_result();
        break;
    }
    case QUAC100_IOC_BATCH_SUBMIT: {
        /* random counts, and random result fields in the caller's items (the outputs keep
         * whatever was there: zeros, as the host cleared them) */
        struct quac100_batch_submit *b = arg;
        b->result = result;
        b->completed = pick == 4 ? b->item_count : (__u32)rnd();
        b->failed = pick == 4 ? 0 : (__u32)(rnd() % 4);
        b->job_id = rnd();
        __u64 n = b->item_count < 64 ? b->item_count : 64;
        for (__u64 i = 0; i < n && b->item_size >= 64; i++) {
            __s32 r = rnd() % 2 ? 0 : random_result();
            __u64 off = b->item_size == sizeof(struct quac100_kem_keygen)
                            ? __builtin_offsetof(struct quac100_kem_keygen, result)
                            : __builtin_offsetof(struct quac100_kem_encaps, result);
            (void)to_user(pid, b->items_addr + i * b->item_size + off, &r, sizeof(r));
        }
        break;
    }
    case QUAC100_IOC_KEY_GENERATE: {
        struct quac100_key_generate *g = arg;
        random_fill(pid, g->pk_addr, g->pk_size);
        g->slot = (__u32)rnd();
        g->result = result;
        break;
    }
    case QUAC100_IOC_KEY_EXPORT_PUBLIC: {
        struct quac100_key_export *e = arg;
        random_fill(pid, e->pk_addr, e->pk_size);
        e->algorithm = pick == 4 ? (__u32)rnd() : e->algorithm;
        e->result = result;
        break;
    }
    case QUAC100_IOC_KEY_LIST: {
        struct quac100_key_list *l = arg;
        random_fill(pid, l->entries_addr, (__u64)l->max_entries * sizeof(struct quac100_key_entry));
        l->count = pick == 4 ? (__u32)rnd() : l->max_entries;
        l->result = result;
        break;
    }
    default:
        return 0;
    }
    return 1;
}

/* BATCH_SUBMIT: the items (request structs of one ML-KEM operation) fetched from the caller,
 * run one by one as their single ioctls would be, their result fields written back. */
static int op_batch(pid_t pid, struct quac100_batch_submit *s)
{
    const unsigned op = s->flags & QUAC100_BATCH_OP_MASK;
    const size_t want = op == QUAC100_BATCH_OP_KEM_KEYGEN   ? sizeof(struct quac100_kem_keygen)
                        : op == QUAC100_BATCH_OP_KEM_ENCAPS ? sizeof(struct quac100_kem_encaps)
                        : op == QUAC100_BATCH_OP_KEM_DECAPS ? sizeof(struct quac100_kem_decaps)
                                                            : 0;
    if (want == 0) {
        s->result = QUAC100_RES_NOT_SUPPORTED;
        return 0;
    }
    if (s->item_size != want || s->item_count == 0 || s->item_count > faults.batch_max) {
        s->result = QUAC100_RES_INVALID_PARAMETER;
        return 0;
    }
    memset(&job, 0, sizeof(job));
    job.id = (__u64)time(NULL) * 1000 + (__u64)(crypto_requests % 1000);
    job.count = s->item_count;
    s->job_id = job.id;
    s->result = QUAC100_OK;
    if (faults.batch_stuck) { /* accepted, never run */
        job.status = QUAC100_BATCH_RUNNING;
        return 0;
    }
    uint8_t *items = malloc((size_t)s->item_count * want);
    if (items == NULL)
        return -ENOMEM;
    if (from_user(pid, items, s->items_addr, (__u64)s->item_count * want) != 0) {
        free(items);
        return -EFAULT;
    }
    for (__u32 i = 0; i < s->item_count; i++) {
        void *item = items + (size_t)i * want;
        int rc = op == QUAC100_BATCH_OP_KEM_KEYGEN   ? op_keygen(pid, item, 1)
                 : op == QUAC100_BATCH_OP_KEM_ENCAPS ? op_encaps(pid, item)
                                                     : op_decaps(pid, item);
        if (rc < 0) {
            free(items);
            return rc;
        }
        __s32 r = op == QUAC100_BATCH_OP_KEM_KEYGEN ? ((struct quac100_kem_keygen *)item)->result
                  : op == QUAC100_BATCH_OP_KEM_ENCAPS
                      ? ((struct quac100_kem_encaps *)item)->result
                      : ((struct quac100_kem_decaps *)item)->result;
        if (r == QUAC100_OK)
            job.completed++;
        else
            job.failed++;
    }
    int rc = to_user(pid, s->items_addr, items, (__u64)s->item_count * want);
    free(items);
    if (rc != 0)
        return -EFAULT;
    job.status = QUAC100_BATCH_DONE;
    if (faults.batch_async > 0) { /* finished, but says so only after some polls */
        job.status = QUAC100_BATCH_RUNNING;
        return 0;
    }
    s->completed = job.completed;
    s->failed = job.failed;
    if (faults.batch_count >= 0) {
        s->completed = (__u32)faults.batch_count;
        s->failed = 0;
    }
    return 0;
}

static void op_batch_status(struct quac100_batch_status *st)
{
    if (st->job_id != job.id || job.id == 0) {
        st->result = QUAC100_RES_INVALID_PARAMETER;
        return;
    }
    job.polls++;
    if (job.status == QUAC100_BATCH_RUNNING && !faults.batch_stuck &&
        job.polls > faults.batch_async)
        job.status = QUAC100_BATCH_DONE;
    st->status = job.status;
    st->progress = job.status == QUAC100_BATCH_DONE ? 100 : 0;
    if (job.status == QUAC100_BATCH_DONE) {
        st->completed = faults.batch_count >= 0 ? (__u32)faults.batch_count : job.completed;
        st->failed = faults.batch_count >= 0 ? 0 : job.failed;
    }
    st->result = QUAC100_OK;
}

/* ---- FUSE ---------------------------------------------------------------------------- */

static void fill_attr(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | (ino == INO_DEVICE ? 0666 : 0600);
        st->st_nlink = 1;
    }
}

static void sim_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    if (parent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (strcmp(name, device_name) == 0)
        e.ino = INO_DEVICE;
    else if (strcmp(name, "control") == 0)
        e.ino = INO_CONTROL;
    else {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fill_attr(e.ino, &e.attr);
    fuse_reply_entry(req, &e);
}

static void sim_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct stat st;
    if (ino != FUSE_ROOT_ID && ino != INO_DEVICE && ino != INO_CONTROL) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fill_attr(ino, &st);
    fuse_reply_attr(req, &st, 0.0);
}

static void sim_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != INO_DEVICE && ino != INO_CONTROL) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    fi->direct_io = 1;
    fi->nonseekable = 1;
    fuse_reply_open(req, fi);
}

static void sim_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)fi;
    if (ino != INO_CONTROL) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    char text[256];
    int n = snprintf(text, sizeof(text),
                     "requests=%ld kem_keygen=%llu kem_encaps=%llu kem_decaps=%llu "
                     "sign_keygen=%llu sign=%llu verify=%llu\n",
                     crypto_requests, (unsigned long long)counters.kem_keygen,
                     (unsigned long long)counters.kem_encaps,
                     (unsigned long long)counters.kem_decaps,
                     (unsigned long long)counters.sign_keygen,
                     (unsigned long long)counters.sign, (unsigned long long)counters.verify);
    size_t len = (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
    if (off < 0 || (size_t)off >= len) {
        fuse_reply_buf(req, NULL, 0); /* end of file */
        return;
    }
    size_t left = len - (size_t)off;
    fuse_reply_buf(req, text + off, left < size ? left : size);
}

static void sim_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
    (void)fi;
    (void)off;
    if (ino != INO_CONTROL) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    char text[1024];
    if (size >= sizeof(text)) {
        fuse_reply_err(req, EFBIG);
        return;
    }
    memcpy(text, buf, size);
    text[size] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(text, "\n ", &save); line != NULL;
         line = strtok_r(NULL, "\n ", &save)) {
        if (set_fault(line) != 0) {
            fuse_reply_err(req, EINVAL);
            return;
        }
    }
    fuse_reply_write(req, size);
}

static int is_crypto(unsigned int cmd)
{
    return cmd == QUAC100_IOC_KEM_KEYGEN || cmd == QUAC100_IOC_KEM_ENCAPS ||
           cmd == QUAC100_IOC_KEM_DECAPS || cmd == QUAC100_IOC_SIGN_KEYGEN ||
           cmd == QUAC100_IOC_SIGN || cmd == QUAC100_IOC_VERIFY ||
           cmd == QUAC100_IOC_BATCH_SUBMIT || cmd == QUAC100_IOC_KEY_GENERATE ||
           cmd == QUAC100_IOC_KEY_EXPORT_PUBLIC || cmd == QUAC100_IOC_KEY_DELETE ||
           cmd == QUAC100_IOC_KEY_LIST;
}

/* The offset of `result` in each crypto request struct, for fail_result. */
static int32_t *result_field(unsigned int cmd, void *arg)
{
    switch (cmd) {
    case QUAC100_IOC_KEM_KEYGEN:
    case QUAC100_IOC_SIGN_KEYGEN:
        return &((struct quac100_kem_keygen *)arg)->result;
    case QUAC100_IOC_KEM_ENCAPS:
        return &((struct quac100_kem_encaps *)arg)->result;
    case QUAC100_IOC_KEM_DECAPS:
        return &((struct quac100_kem_decaps *)arg)->result;
    case QUAC100_IOC_SIGN:
        return &((struct quac100_sign *)arg)->result;
    case QUAC100_IOC_BATCH_SUBMIT:
        return &((struct quac100_batch_submit *)arg)->result;
    case QUAC100_IOC_KEY_GENERATE:
        return &((struct quac100_key_generate *)arg)->result;
    case QUAC100_IOC_KEY_EXPORT_PUBLIC:
        return &((struct quac100_key_export *)arg)->result;
    case QUAC100_IOC_KEY_DELETE:
        return &((struct quac100_key_delete *)arg)->result;
    case QUAC100_IOC_KEY_LIST:
        return &((struct quac100_key_list *)arg)->result;
    default:
        return &((struct quac100_verify *)arg)->result;
    }
}

static void sim_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
                      struct fuse_file_info *fi, unsigned flags, const void *in_buf,
                      size_t in_bufsz, size_t out_bufsz)
{
    (void)arg;
    (void)fi;
    (void)flags;
    if (ino != INO_DEVICE) {
        fuse_reply_err(req, ENOTTY);
        return;
    }
    pid_t pid = fuse_req_ctx(req)->pid;
    size_t size = _IOC_SIZE(cmd);
    union {
        __u32 u32;
        __s32 s32;
        struct quac100_device_info info;
        struct quac100_kem_keygen keygen;
        struct quac100_kem_encaps encaps;
        struct quac100_kem_decaps decaps;
        struct quac100_sign sign;
        struct quac100_verify verify;
        struct quac100_random random;
        struct quac100_self_test self_test;
        struct quac100_health health;
        struct quac100_counters counters;
        struct quac100_batch_submit batch;
        struct quac100_batch_status batch_status;
        struct quac100_key_generate key_generate;
        struct quac100_key_export key_export;
        struct quac100_key_delete key_delete;
        struct quac100_key_list key_list;
        __u64 u64;
    } u;
    memset(&u, 0, sizeof(u));
    if (size > sizeof(u) || ((_IOC_DIR(cmd) & _IOC_WRITE) && in_bufsz != size) ||
        ((_IOC_DIR(cmd) & _IOC_READ) && out_bufsz < size)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (in_bufsz > 0)
        memcpy(&u, in_buf, in_bufsz);

    if (is_crypto(cmd)) {
        crypto_requests++;
        if (faults.exit_after > 0 && crypto_requests >= faults.exit_after)
            _exit(0); /* the device vanishes with this request in flight */
        if (faults.fail_errno != 0) {
            fuse_reply_err(req, faults.fail_errno);
            return;
        }
        if (faults.fail_result != 0) {
            *result_field(cmd, &u) = faults.fail_result;
            counters.errors_total++;
            fuse_reply_ioctl(req, 0, &u, size);
            return;
        }
        if (faults.garbage) {
            int g = garbage_plan(pid, cmd, &u);
            if (g < 0) {
                fuse_reply_err(req, -g);
                return;
            }
            if (g > 0) {
                fuse_reply_ioctl(req, 0, &u, size);
                return;
            }
        }
    }

    int rc = 0;
    switch (cmd) {
    case QUAC100_IOC_GET_VERSION:
        u.u32 = faults.version;
        break;
    case QUAC100_IOC_GET_INFO:
        u.info.struct_size = faults.info_size ? faults.info_size : sizeof(u.info);
        u.info.driver_version = 0x00010000;
        u.info.device_index = 15;
        snprintf(u.info.device_name, sizeof(u.info.device_name), "QUAC 100 (QuantaVirt test device)");
        snprintf(u.info.serial_number, sizeof(u.info.serial_number), "QVSIM-%08d", (int)getpid());
        u.info.vendor_id = 0x1DEA;
        u.info.device_id = 0x0100;
        u.info.revision = 1;
        u.info.fw_major = 1;
        u.info.capabilities = QUAC100_CAP_SIMULATOR | 0x3F;
        u.info.status = 1;
        u.info.max_batch_size = faults.batch_max;
        u.info.max_pending_jobs = 64;
        u.info.key_slots_total = SIM_KEY_SLOTS;
        u.info.key_slots_used = slots_used();
        break;
    case QUAC100_IOC_GET_CAPS:
        u.u32 = QUAC100_CAP_SIMULATOR | 0x3F;
        break;
    case QUAC100_IOC_GET_STATUS:
        u.u32 = 1; /* ready */
        break;
    case QUAC100_IOC_RESET:
        memset(&counters, 0, sizeof(counters));
        break;
    case QUAC100_IOC_KEM_KEYGEN:
        rc = op_keygen(pid, &u.keygen, 1);
        break;
    case QUAC100_IOC_SIGN_KEYGEN:
        rc = op_keygen(pid, &u.keygen, 0);
        break;
    case QUAC100_IOC_KEM_ENCAPS:
        rc = op_encaps(pid, &u.encaps);
        break;
    case QUAC100_IOC_KEM_DECAPS:
        rc = op_decaps(pid, &u.decaps);
        break;
    case QUAC100_IOC_SIGN:
        rc = op_sign(pid, &u.sign);
        break;
    case QUAC100_IOC_VERIFY:
        rc = op_verify(pid, &u.verify);
        break;
    case QUAC100_IOC_RANDOM:
        rc = op_random(pid, &u.random);
        break;
    case QUAC100_IOC_BATCH_SUBMIT:
        rc = faults.batch_max == 0 ? -ENOTTY : op_batch(pid, &u.batch);
        break;
    case QUAC100_IOC_BATCH_STATUS:
        op_batch_status(&u.batch_status);
        break;
    case QUAC100_IOC_BATCH_CANCEL:
        if (u.u64 == job.id && job.status != QUAC100_BATCH_DONE)
            job.status = QUAC100_BATCH_CANCELLED;
        break;
    case QUAC100_IOC_KEY_GENERATE:
        rc = op_key_generate(pid, &u.key_generate);
        break;
    case QUAC100_IOC_KEY_EXPORT_PUBLIC:
        rc = op_key_export(pid, &u.key_export);
        break;
    case QUAC100_IOC_KEY_DELETE:
        op_key_delete(&u.key_delete);
        break;
    case QUAC100_IOC_KEY_LIST:
        rc = op_key_list(pid, &u.key_list);
        break;
    case QUAC100_IOC_DIAG_SELF_TEST:
        u.self_test.tests_passed = u.self_test.tests;
        u.self_test.duration_us = 1;
        u.self_test.result = QUAC100_OK;
        break;
    case QUAC100_IOC_DIAG_GET_HEALTH:
        u.health.state = 1;
        u.health.temp_core = 45;
        u.health.temp_memory = 40;
        u.health.entropy_bits = 256;
        u.health.uptime_sec = (__u64)(time(NULL) - started);
        u.health.ops_completed = counters.kem_keygen + counters.kem_encaps +
                                 counters.kem_decaps + counters.sign_keygen + counters.sign +
                                 counters.verify;
        u.health.ops_failed = counters.errors_total;
        break;
    case QUAC100_IOC_DIAG_GET_TEMP:
        u.s32 = 45;
        break;
    case QUAC100_IOC_DIAG_GET_COUNTERS:
        u.counters = counters;
        break;
    default:
        fuse_reply_err(req, ENOTTY);
        return;
    }
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    fuse_reply_ioctl(req, 0, size ? (void *)&u : NULL, (_IOC_DIR(cmd) & _IOC_READ) ? size : 0);
}

static const struct fuse_lowlevel_ops sim_ops = {
    .lookup = sim_lookup,
    .getattr = sim_getattr,
    .open = sim_open,
    .read = sim_read,
    .write = sim_write,
    .ioctl = sim_ioctl,
};

int main(int argc, char **argv)
{
    faults_reset();
    started = time(NULL);
    /* A test runner that dies must not leave the device mounted: SIGTERM on parent death
     * ends the session loop, which unmounts. */
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        return 1;
    const char *mountpoint = NULL;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--name=", 7) == 0)
            device_name = argv[i] + 7;
        else if (strncmp(argv[i], "--", 2) == 0) {
            if (set_fault(argv[i] + 2) != 0) {
                fprintf(stderr, "quac100_sim: unknown option %s\n", argv[i]);
                return 2;
            }
        } else
            mountpoint = argv[i];
    }
    if (mountpoint == NULL) {
        fprintf(stderr, "usage: quac100_sim MOUNTPOINT [--name=NAME] [--fault=VALUE ...]\n");
        return 2;
    }
    char *fuse_argv[] = {argv[0], "-o", "fsname=quac100sim,subtype=quac100sim", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
    struct fuse_session *se = fuse_session_new(&args, &sim_ops, sizeof(sim_ops), NULL);
    if (se == NULL)
        return 1;
    if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, mountpoint) != 0) {
        fuse_session_destroy(se);
        return 1;
    }
    printf("ready %s/%s\n", mountpoint, device_name);
    fflush(stdout);
    int rc = fuse_session_loop(se);
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return rc == 0 ? 0 : 1;
}
