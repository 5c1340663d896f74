/* CPUID for the vCPUs: glue between KVM and the one CPUID builder (csrc/cpuid). The supported
 * list is read once from this VM's KVM fd; each vCPU then gets qv_cpuid_build's entries for
 * its index (model masking, +/-flags, topology, APIC id). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm/vm_internal.h"
#include "quantavirt/errors.h"

static void free_cpu_config(struct qv_vm *vm)
{
    free((char *)vm->cpuid_cfg.model);
    for (size_t i = 0; i < vm->cpuid_cfg.n_features; i++)
        free((char *)vm->cpuid_cfg.features[i]);
    free((void *)vm->cpuid_cfg.features);
    memset(&vm->cpuid_cfg, 0, sizeof(vm->cpuid_cfg));
}

/* Private copies of the caller's strings: only the create call may rely on them. */
static int copy_cpu_config(struct qv_vm *vm, const struct qv_vm_config *cfg, char *err,
                           size_t errlen)
{
    struct qv_cpuid_config *c = &vm->cpuid_cfg;
    c->topology.sockets = cfg->sockets ? cfg->sockets : 1;
    c->topology.cores = cfg->cores ? cfg->cores : cfg->vcpus;
    c->topology.threads = cfg->threads ? cfg->threads : 1;
    c->strict = 0;
    if ((uint64_t)c->topology.sockets * c->topology.cores * c->topology.threads != cfg->vcpus) {
        snprintf(err, errlen, "cpu.topology: %u sockets x %u cores x %u threads is not the %u "
                 "vCPUs of cpu.count", c->topology.sockets, c->topology.cores,
                 c->topology.threads, cfg->vcpus);
        return QV_ERR_INVAL;
    }
    if (cfg->cpu_model && !(c->model = strdup(cfg->cpu_model)))
        goto nomem;
    if (cfg->n_cpu_features) {
        if (!cfg->cpu_features || cfg->n_cpu_features > 1024) {
            snprintf(err, errlen, "cpu.features: invalid list");
            return QV_ERR_INVAL;
        }
        const char **f = calloc(cfg->n_cpu_features, sizeof(*f));
        if (!f)
            goto nomem;
        c->features = f;
        for (size_t i = 0; i < cfg->n_cpu_features; i++) {
            if (!cfg->cpu_features[i] || !(f[i] = strdup(cfg->cpu_features[i])))
                goto nomem;
            c->n_features = i + 1;
        }
    }
    return QV_SUCCESS;
nomem:
    snprintf(err, errlen, "out of memory for the CPU configuration");
    return QV_ERR_NOMEM;
}

int qv_cpuid_init(struct qv_vm *vm, const struct qv_vm_config *cfg, char *err, size_t errlen)
{
    int rc = copy_cpu_config(vm, cfg, err, errlen);
    if (rc)
        return rc;
    size_t cap = QV_CPUID_MAX_ENTRIES;
    size_t sz = sizeof(struct kvm_cpuid2) + cap * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = calloc(1, sz);
    if (!c) {
        snprintf(err, errlen, "out of memory for the CPUID table");
        return QV_ERR_NOMEM;
    }
    c->nent = (uint32_t)cap;
    if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) != 0) {
        snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
        free(c);
        return QV_ERR_KVM;
    }
    size_t n = c->nent <= cap ? c->nent : cap; /* never trust the count beyond the buffer */
    vm->cpuid_supported = calloc(n ? n : 1, sizeof(struct qv_cpuid_entry));
    if (!vm->cpuid_supported) {
        free(c);
        snprintf(err, errlen, "out of memory for the CPUID table");
        return QV_ERR_NOMEM;
    }
    memcpy(vm->cpuid_supported, c->entries, n * sizeof(struct qv_cpuid_entry));
    vm->n_cpuid_supported = n;
    free(c);
    /* APIC ids follow the topology; KVM's vCPU id must be the APIC id. */
    vm->apic_ids = calloc(cfg->vcpus, sizeof(uint32_t));
    if (!vm->apic_ids) {
        snprintf(err, errlen, "out of memory for the APIC ids");
        return QV_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < cfg->vcpus; i++) {
        vm->apic_ids[i] = qv_cpuid_apic_id(&vm->cpuid_cfg.topology, i);
        if (vm->apic_ids[i] == UINT32_MAX) {
            snprintf(err, errlen, "cpu.topology: no APIC id for vCPU %u", i);
            return QV_ERR_INVAL;
        }
    }
    /* Build vCPU 0's table now: a bad model or flag fails the create with its config path. */
    struct qv_cpuid_entry tmp[QV_CPUID_MAX_ENTRIES + 8];
    int got = qv_cpuid_build(vm->cpuid_supported, n, &vm->cpuid_cfg, 0, tmp,
                             sizeof(tmp) / sizeof(tmp[0]), err, errlen);
    return got < 0 ? got : QV_SUCCESS;
}

int qv_cpuid_apply(struct qv_vm *vm, struct qv_vcpu *vcpu, char *err, size_t errlen)
{
    size_t cap = vm->n_cpuid_supported + 8;
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + cap * sizeof(struct kvm_cpuid_entry2));
    if (!c) {
        snprintf(err, errlen, "out of memory for the CPUID table");
        return QV_ERR_NOMEM;
    }
    int n = qv_cpuid_build(vm->cpuid_supported, vm->n_cpuid_supported, &vm->cpuid_cfg,
                           vcpu->id, (struct qv_cpuid_entry *)c->entries, cap, err, errlen);
    if (n < 0) {
        free(c);
        return n;
    }
    c->nent = (uint32_t)n;
    int rc = QV_SUCCESS;
    if (ioctl(vcpu->fd, KVM_SET_CPUID2, c) != 0) {
        snprintf(err, errlen, "KVM_SET_CPUID2 on vCPU %u: %s", vcpu->id, strerror(errno));
        rc = QV_ERR_KVM;
    }
    free(c);
    return rc;
}

void qv_cpuid_free(struct qv_vm *vm)
{
    free(vm->cpuid_supported);
    vm->cpuid_supported = NULL;
    free(vm->apic_ids);
    vm->apic_ids = NULL;
    free_cpu_config(vm);
}
