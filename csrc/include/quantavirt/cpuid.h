/* Guest CPUID: from what KVM offers (KVM_GET_SUPPORTED_CPUID) and the VM's cpu config (model
 * "host" or a named model's baseline, "+flag"/"-flag" overrides, sockets x cores x threads)
 * to the entries one vCPU gets through KVM_SET_CPUID2, with the topology consistent in leaves
 * 0x1, 0x4, 0xB, 0x1F, 0x80000008 and 0x8000001E. Pure functions except
 * qv_cpuid_query_supported, which only asks /dev/kvm. */
#ifndef QUANTAVIRT_CPUID_H
#define QUANTAVIRT_CPUID_H

#include <stddef.h>
#include <stdint.h>

/* Same layout as struct kvm_cpuid_entry2 (checked at compile time in csrc/cpuid/cpuid.c), so
 * an array of these can be handed to KVM_SET_CPUID2 as is. */
struct qv_cpuid_entry {
    uint32_t function;
    uint32_t index;
    uint32_t flags; /* QV_CPUID_FLAG_SIGNIFICANT_INDEX when `index` selects a subleaf */
    uint32_t eax, ebx, ecx, edx;
    uint32_t padding[3];
};

#define QV_CPUID_FLAG_SIGNIFICANT_INDEX 1
#define QV_CPUID_MAX_ENTRIES 256

enum qv_cpuid_reg { QV_CPUID_EAX = 0, QV_CPUID_EBX = 1, QV_CPUID_ECX = 2, QV_CPUID_EDX = 3 };

struct qv_cpu_topology {
    uint32_t sockets; /* 1..8 */
    uint32_t cores;   /* per socket, 1..128 */
    uint32_t threads; /* per core, 1..2 */
};

struct qv_cpuid_config {
    const char *model;              /* "host" (or NULL) or a name from the model table */
    const char *const *features;    /* "+aes", "-avx512f", ...; may be NULL when n is 0 */
    size_t n_features;
    struct qv_cpu_topology topology;
    int strict;                     /* 1: a model feature KVM lacks is an error, not dropped */
};

/* APIC id of vCPU `index` (packed socket | core | thread fields, each rounded up to a power of
 * two, as hardware does). UINT32_MAX for a bad topology or index. */
uint32_t qv_cpuid_apic_id(const struct qv_cpu_topology *topo, uint32_t index);

/* Build the entries for vCPU `vcpu_index` from KVM's supported list. out_cap >= n_supported + 8
 * is always enough. Returns the number of entries, or a negative QV code with a message naming
 * the config path in errbuf: QV_ERR_INVAL (unknown model "cpu.model", unknown flag
 * "cpu.features[i]", topology "cpu.topology"), QV_ERR_NODEV (a "+flag" or, when strict, a model
 * feature that KVM does not offer on this host). */
int qv_cpuid_build(const struct qv_cpuid_entry *supported, size_t n_supported,
                   const struct qv_cpuid_config *cfg, uint32_t vcpu_index,
                   struct qv_cpuid_entry *out, size_t out_cap, char *errbuf, size_t errlen);

/* Find a leaf in a list (NULL when absent); index is ignored for leaves without subleaves. */
const struct qv_cpuid_entry *qv_cpuid_find(const struct qv_cpuid_entry *e, size_t n,
                                           uint32_t function, uint32_t index);

/* The tables, for bindings and `host info`: named models and feature flags. */
int qv_cpuid_model_count(void);
const char *qv_cpuid_model_name(int i);
int qv_cpuid_feature_count(void);
/* Name and location of flag i; returns 0, or QV_ERR_INVAL for a bad index. */
int qv_cpuid_feature_at(int i, const char **name, uint32_t *function, uint32_t *index,
                        uint32_t *reg, uint32_t *bit);
/* 1 when the named model's baseline contains the named feature, 0 when not, QV_ERR_INVAL for an
 * unknown model or flag. */
int qv_cpuid_model_has(const char *model, const char *feature);

/* KVM_GET_SUPPORTED_CPUID on /dev/kvm (a read-only query). Returns the number of entries, or
 * QV_ERR_NOVMX (no /dev/kvm or no permission) / QV_ERR_KVM with a message. */
int qv_cpuid_query_supported(struct qv_cpuid_entry *out, size_t cap, char *errbuf,
                             size_t errlen);

#endif
