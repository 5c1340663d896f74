/* CPUID for the vCPUs: what KVM_GET_SUPPORTED_CPUID offers ("host" model), with each vCPU's
 * APIC ID written into the leaves that carry it. Named models and topology masking plug in
 * here later (the config side owns the model tables). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm/vm_internal.h"
#include "quantavirt/errors.h"

int qv_cpuid_init(struct qv_vm *vm, char *err, size_t errlen)
{
    for (uint32_t nent = 128; nent <= 4096; nent *= 2) {
        size_t sz = sizeof(struct kvm_cpuid2) + nent * sizeof(struct kvm_cpuid_entry2);
        struct kvm_cpuid2 *c = calloc(1, sz);
        if (!c) {
            snprintf(err, errlen, "out of memory for the CPUID table");
            return QV_ERR_NOMEM;
        }
        c->nent = nent;
        if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            vm->cpuid = c;
            return QV_SUCCESS;
        }
        int e = errno;
        free(c);
        if (e != E2BIG) {
            snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(e));
            return QV_ERR_KVM;
        }
    }
    snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: table too large");
    return QV_ERR_KVM;
}

int qv_cpuid_apply(struct qv_vm *vm, struct qv_vcpu *vcpu)
{
    size_t sz = sizeof(struct kvm_cpuid2) + vm->cpuid->nent * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = malloc(sz);
    if (!c)
        return QV_ERR_NOMEM;
    memcpy(c, vm->cpuid, sz);
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == 1) {
            /* Initial APIC ID and the logical processor count of the package. */
            e->ebx = (e->ebx & 0x0000ffffu) | ((vcpu->id & 0xffu) << 24) |
                     ((vm->nvcpus > 255 ? 255u : vm->nvcpus) << 16);
            if (vm->nvcpus > 1)
                e->edx |= 1u << 28; /* HTT: the count above is meaningful */
        } else if (e->function == 0xb || e->function == 0x1f) {
            e->edx = vcpu->id; /* x2APIC ID */
        }
    }
    int rc = ioctl(vcpu->fd, KVM_SET_CPUID2, c) == 0 ? QV_SUCCESS : QV_ERR_KVM;
    free(c);
    return rc;
}
