/* Guest CPUID construction (see quantavirt/cpuid.h): feature masking for named models and
 * +flag/-flag overrides, then a topology that agrees across every leaf that describes it. */
#include "quantavirt/cpuid.h"

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "boot/bytes.h"
#include "cpuid/tables.h"
#include "quantavirt/errors.h"

_Static_assert(sizeof(struct qv_cpuid_entry) == sizeof(struct kvm_cpuid_entry2),
               "qv_cpuid_entry must match kvm_cpuid_entry2");
_Static_assert(offsetof(struct qv_cpuid_entry, edx) == offsetof(struct kvm_cpuid_entry2, edx),
               "qv_cpuid_entry must match kvm_cpuid_entry2");

#define MAX_SOCKETS 8
#define MAX_CORES 128
#define MAX_THREADS 2

/* Registers that hold feature flags; under a named model only the model's bits survive. */
static const struct {
    uint32_t function, index;
    uint8_t reg;
} feature_regs[] = {
    {0x1, 0, QV_CPUID_ECX},        {0x1, 0, QV_CPUID_EDX},        {0x7, 0, QV_CPUID_EBX},
    {0x7, 0, QV_CPUID_ECX},        {0x7, 0, QV_CPUID_EDX},        {0x7, 1, QV_CPUID_EAX},
    {0xd, 1, QV_CPUID_EAX},        {0x80000001, 0, QV_CPUID_ECX}, {0x80000001, 0, QV_CPUID_EDX},
    {0x80000008, 0, QV_CPUID_EBX},
};
#define N_FEATURE_REGS (sizeof(feature_regs) / sizeof(feature_regs[0]))

static bool has_subleaves(uint32_t fn)
{
    return fn == 0x4 || fn == 0x7 || fn == 0xb || fn == 0xd || fn == 0xf || fn == 0x10 ||
           fn == 0x12 || fn == 0x14 || fn == 0x17 || fn == 0x18 || fn == 0x1d || fn == 0x1e ||
           fn == 0x1f || fn == 0x24 || fn == 0x8000001d || fn == 0x80000020;
}

const struct qv_cpuid_entry *qv_cpuid_find(const struct qv_cpuid_entry *e, size_t n,
                                           uint32_t function, uint32_t index)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].function == function &&
            (!(e[i].flags & QV_CPUID_FLAG_SIGNIFICANT_INDEX) || e[i].index == index))
            return &e[i];
    return NULL;
}

static struct qv_cpuid_entry *find_mut(struct qv_cpuid_entry *e, size_t n, uint32_t fn,
                                       uint32_t idx)
{
    return (struct qv_cpuid_entry *)qv_cpuid_find(e, n, fn, idx);
}

static uint32_t *reg_of(struct qv_cpuid_entry *e, uint8_t reg)
{
    switch (reg) {
    case QV_CPUID_EAX: return &e->eax;
    case QV_CPUID_EBX: return &e->ebx;
    case QV_CPUID_ECX: return &e->ecx;
    default: return &e->edx;
    }
}

/* Bits needed to number `n` things (ceil(log2(n))). */
static uint32_t bits_for(uint32_t n)
{
    uint32_t b = 0;
    while ((1u << b) < n)
        b++;
    return b;
}

static bool topology_ok(const struct qv_cpu_topology *t)
{
    return t && t->sockets >= 1 && t->sockets <= MAX_SOCKETS && t->cores >= 1 &&
           t->cores <= MAX_CORES && t->threads >= 1 && t->threads <= MAX_THREADS;
}

uint32_t qv_cpuid_apic_id(const struct qv_cpu_topology *t, uint32_t index)
{
    if (!topology_ok(t) || index >= t->sockets * t->cores * t->threads)
        return UINT32_MAX;
    uint32_t smt = bits_for(t->threads), core = bits_for(t->cores);
    uint32_t thread_id = index % t->threads;
    uint32_t core_id = (index / t->threads) % t->cores;
    uint32_t socket_id = index / (t->threads * t->cores);
    return (socket_id << (smt + core)) | (core_id << smt) | thread_id;
}

static bool is_amd(const struct qv_cpuid_entry *e, size_t n)
{
    const struct qv_cpuid_entry *l0 = qv_cpuid_find(e, n, 0, 0);
    if (!l0)
        return false;
    char v[12];
    memcpy(v, &l0->ebx, 4);
    memcpy(v + 4, &l0->edx, 4);
    memcpy(v + 8, &l0->ecx, 4);
    return memcmp(v, "AuthenticAMD", 12) == 0 || memcmp(v, "HygonGenuine", 12) == 0;
}

static bool feature_set(struct qv_cpuid_entry *e, size_t n, const struct qv_cpuid_feature *f)
{
    struct qv_cpuid_entry *l = find_mut(e, n, f->function, f->index);
    return l && (*reg_of(l, f->reg) >> f->bit & 1);
}

static void feature_write(struct qv_cpuid_entry *e, size_t n, const struct qv_cpuid_feature *f,
                          bool on)
{
    struct qv_cpuid_entry *l = find_mut(e, n, f->function, f->index);
    if (!l)
        return;
    if (on)
        *reg_of(l, f->reg) |= 1u << f->bit;
    else
        *reg_of(l, f->reg) &= ~(1u << f->bit);
}

static bool feature_named_set(struct qv_cpuid_entry *e, size_t n, const char *name)
{
    const struct qv_cpuid_feature *f = qv_cpuid_feature_find(name, strlen(name));
    return f && feature_set(e, n, f);
}

/* Mask the feature registers to the model's baseline; report (when strict) what KVM lacks. */
static int apply_model(struct qv_cpuid_entry *e, size_t n, const struct qv_cpu_model *m,
                       int strict, char *errbuf, size_t errlen)
{
    uint32_t keep[N_FEATURE_REGS] = {0};
    char missing[256] = "";
    size_t mlen = 0;
    for (int i = 0; i < qv_cpuid_feature_total; i++) {
        const struct qv_cpuid_feature *f = &qv_cpuid_features[i];
        if (!qv_cpu_model_has_feature(m, f))
            continue;
        for (size_t r = 0; r < N_FEATURE_REGS; r++)
            if (feature_regs[r].function == f->function && feature_regs[r].index == f->index &&
                feature_regs[r].reg == f->reg)
                keep[r] |= 1u << f->bit;
        if (strict && !feature_set(e, n, f) && strcmp(f->name, "hypervisor") != 0) {
            int w = snprintf(missing + mlen, sizeof(missing) - mlen, "%s%s", mlen ? " " : "",
                             f->name);
            if (w > 0 && (size_t)w < sizeof(missing) - mlen)
                mlen += (size_t)w;
        }
    }
    if (mlen)
        return qv_fail(QV_ERR_NODEV, errbuf, errlen,
                       "cpu.model: KVM on this host does not offer these %s features: %s",
                       m->name, missing);
    for (size_t r = 0; r < N_FEATURE_REGS; r++) {
        struct qv_cpuid_entry *l = find_mut(e, n, feature_regs[r].function,
                                            feature_regs[r].index);
        if (l)
            *reg_of(l, feature_regs[r].reg) &= keep[r];
    }
    /* XSAVE state components the guest may enable must match the features left. */
    struct qv_cpuid_entry *xs = find_mut(e, n, 0xd, 0);
    if (xs) {
        uint32_t xcr0 = xs->eax;
        if (!feature_named_set(e, n, "xsave"))
            xcr0 &= 0x3;
        if (!feature_named_set(e, n, "avx"))
            xcr0 &= ~(1u << 2);
        if (!feature_named_set(e, n, "mpx"))
            xcr0 &= ~(3u << 3);
        if (!feature_named_set(e, n, "avx512f"))
            xcr0 &= ~(7u << 5);
        if (!feature_named_set(e, n, "pku"))
            xcr0 &= ~(1u << 9);
        if (!feature_named_set(e, n, "amx_tile"))
            xcr0 &= ~(3u << 17);
        xs->eax = xcr0;
    }
    return 0;
}

static int apply_overrides(struct qv_cpuid_entry *e, size_t n, const struct qv_cpuid_config *cfg,
                           const struct qv_cpuid_entry *supported, size_t n_supported,
                           char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_features; i++) {
        const char *s = cfg->features ? cfg->features[i] : NULL;
        if (!s || (s[0] != '+' && s[0] != '-'))
            return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                           "cpu.features[%zu]: \"%s\" must be \"+flag\" or \"-flag\"", i,
                           s ? s : "(null)");
        const struct qv_cpuid_feature *f = qv_cpuid_feature_find(s + 1, strlen(s + 1));
        if (!f)
            return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                           "cpu.features[%zu]: unknown CPU feature \"%s\"", i, s + 1);
        if (s[0] == '+') {
            /* The supported list is the truth about what KVM can give this guest. */
            const struct qv_cpuid_entry *l =
                qv_cpuid_find(supported, n_supported, f->function, f->index);
            const uint32_t regs[4] = {l ? l->eax : 0, l ? l->ebx : 0, l ? l->ecx : 0,
                                      l ? l->edx : 0};
            bool offered = (regs[f->reg & 3] >> f->bit) & 1;
            if (!offered && strcmp(f->name, "hypervisor") != 0)
                return qv_fail(QV_ERR_NODEV, errbuf, errlen,
                               "cpu.features[%zu]: KVM on this host does not offer \"%s\"", i,
                               f->name);
            if (!find_mut(e, n, f->function, f->index))
                return qv_fail(QV_ERR_NODEV, errbuf, errlen,
                               "cpu.features[%zu]: CPUID leaf 0x%x of \"%s\" is not available",
                               i, f->function, f->name);
            feature_write(e, n, f, true);
        } else {
            feature_write(e, n, f, false);
        }
    }
    return 0;
}

/* Leaves 0xB / 0x1F: SMT and core levels with x2APIC ids, then the invalid terminator. */
static size_t put_extended_topology(struct qv_cpuid_entry *out, size_t n, uint32_t fn,
                                    const struct qv_cpu_topology *t, uint32_t apic_id)
{
    uint32_t smt = bits_for(t->threads), core = bits_for(t->cores);
    const uint32_t shift[2] = {smt, smt + core};
    const uint32_t count[2] = {t->threads, t->threads * t->cores};
    for (uint32_t lvl = 0; lvl < 3; lvl++) {
        struct qv_cpuid_entry *e = &out[n++];
        memset(e, 0, sizeof(*e));
        e->function = fn;
        e->index = lvl;
        e->flags = QV_CPUID_FLAG_SIGNIFICANT_INDEX;
        if (lvl < 2) {
            e->eax = shift[lvl];
            e->ebx = count[lvl];
            e->ecx = ((lvl + 1) << 8) | lvl; /* level type 1 = SMT, 2 = core */
        } else {
            e->ecx = lvl; /* type 0: no more levels */
        }
        e->edx = apic_id;
    }
    return n;
}

static void apply_topology(struct qv_cpuid_entry *e, size_t n, const struct qv_cpu_topology *t,
                           uint32_t index, bool amd)
{
    uint32_t apic = qv_cpuid_apic_id(t, index);
    uint32_t smt = bits_for(t->threads), core = bits_for(t->cores);
    uint32_t per_pkg = t->threads * t->cores;
    uint32_t addressable = 1u << (smt + core); /* ids one package may use */
    struct qv_cpuid_entry *l;

    if ((l = find_mut(e, n, 0x1, 0))) {
        uint32_t lc = addressable > 255 ? 255 : addressable;
        l->ebx = (l->ebx & 0x0000ffff) | (lc << 16) | ((apic & 0xff) << 24);
        if (per_pkg > 1)
            l->edx |= 1u << 28; /* HTT: more than one logical processor per package */
        else
            l->edx &= ~(1u << 28);
    }
    for (size_t i = 0; i < n; i++) {
        l = &e[i];
        if (l->function != 0x4 && l->function != 0x8000001d)
            continue;
        if ((l->eax & 0x1f) == 0) /* no cache at this subleaf */
            continue;
        uint32_t level = (l->eax >> 5) & 0x7;
        uint32_t sharing = level >= 3 ? addressable : (1u << smt);
        l->eax = (l->eax & 0x00003fff) | ((sharing - 1) << 14);
        if (l->function == 0x4)
            l->eax |= ((1u << core) - 1) << 26; /* addressable core ids per package - 1 */
    }
    if (amd) {
        if ((l = find_mut(e, n, 0x80000001, 0))) {
            if (per_pkg > 1)
                l->ecx |= 1u << 1; /* CmpLegacy */
            else
                l->ecx &= ~(1u << 1);
        }
        if ((l = find_mut(e, n, 0x80000008, 0)))
            l->ecx = (l->ecx & ~0xf0ffu) | ((smt + core) << 12) | ((per_pkg - 1) & 0xff);
        if ((l = find_mut(e, n, 0x8000001e, 0))) {
            uint32_t core_id = (index / t->threads) % t->cores;
            uint32_t socket_id = index / per_pkg;
            l->eax = apic;
            l->ebx = ((t->threads - 1) << 8) | (core_id & 0xff);
            l->ecx = socket_id & 0xff; /* node id; one node per socket */
            l->edx = 0;
        }
    }
}

int qv_cpuid_build(const struct qv_cpuid_entry *supported, size_t n_supported,
                   const struct qv_cpuid_config *cfg, uint32_t vcpu_index,
                   struct qv_cpuid_entry *out, size_t out_cap, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (!supported || !cfg || !out || n_supported == 0 || n_supported > QV_CPUID_MAX_ENTRIES)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "cpuid: need 1..%d supported entries, a config and an output array",
                       QV_CPUID_MAX_ENTRIES);
    const struct qv_cpu_topology *t = &cfg->topology;
    if (!topology_ok(t))
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "cpu.topology: %u sockets x %u cores x %u threads is outside 1..%d x "
                       "1..%d x 1..%d",
                       t->sockets, t->cores, t->threads, MAX_SOCKETS, MAX_CORES, MAX_THREADS);
    if (vcpu_index >= t->sockets * t->cores * t->threads)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                       "cpu.count: vCPU %u does not exist in %u x %u x %u", vcpu_index,
                       t->sockets, t->cores, t->threads);
    const struct qv_cpu_model *model = NULL;
    if (cfg->model && strcmp(cfg->model, "host") != 0) {
        model = qv_cpu_model_find(cfg->model);
        if (!model)
            return qv_fail(QV_ERR_INVAL, errbuf, errlen,
                           "cpu.model: unknown CPU model \"%s\" (\"host\" or a named model)",
                           cfg->model);
    }

    /* Copy, dropping the topology leaves we regenerate. */
    size_t n = 0;
    bool want_b = false, want_1f = false;
    for (size_t i = 0; i < n_supported; i++) {
        uint32_t fn = supported[i].function;
        if (fn == 0xb || fn == 0x1f) {
            want_b |= fn == 0xb;
            want_1f |= fn == 0x1f;
            continue;
        }
        struct qv_cpuid_entry e = supported[i];
        /* Normalise what KVM sent: subleaves only where the architecture has them, and one
         * entry per (leaf, subleaf), so every lookup finds the entry the guest will see. */
        if (has_subleaves(fn)) {
            e.flags |= QV_CPUID_FLAG_SIGNIFICANT_INDEX;
        } else {
            e.flags &= ~(uint32_t)QV_CPUID_FLAG_SIGNIFICANT_INDEX;
            e.index = 0;
        }
        if (qv_cpuid_find(out, n, e.function, e.index))
            continue;
        if (n == out_cap)
            goto full;
        out[n++] = e;
    }
    if ((want_b && out_cap - n < 3) || (want_1f && out_cap - n < 3 + (want_b ? 3 : 0)))
        goto full;

    if (model) {
        int rc = apply_model(out, n, model, cfg->strict, errbuf, errlen);
        if (rc)
            return rc;
    }
    struct qv_cpuid_entry *l1 = find_mut(out, n, 0x1, 0);
    if (l1)
        l1->ecx |= 1u << 31; /* hypervisor present: guests then trust the CPUID they see */
    int rc = apply_overrides(out, n, cfg, supported, n_supported, errbuf, errlen);
    if (rc)
        return rc;
    apply_topology(out, n, t, vcpu_index, is_amd(out, n));
    uint32_t apic = qv_cpuid_apic_id(t, vcpu_index);
    if (want_b)
        n = put_extended_topology(out, n, 0xb, t, apic);
    if (want_1f)
        n = put_extended_topology(out, n, 0x1f, t, apic);
    return (int)n;
full:
    return qv_fail(QV_ERR_INVAL, errbuf, errlen, "cpuid: output array too small (%zu entries)",
                   out_cap);
}
