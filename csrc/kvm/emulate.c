/* placeholder, replaced below */
#include <stdio.h>
#include "kvm/vm_internal.h"
#include "quantavirt/errors.h"
int qv_emulate_complete(struct qv_vcpu *vcpu, char *why, size_t whylen)
{
    struct kvm_run *run = vcpu->run;
    uint32_t nd = run->emulation_failure.ndata;
    snprintf(why, whylen, "ndata=%u flags=%llx size=%u bytes=%02x %02x %02x %02x", nd,
             (unsigned long long)run->emulation_failure.flags, run->emulation_failure.insn_size,
             run->emulation_failure.insn_bytes[0], run->emulation_failure.insn_bytes[1],
             run->emulation_failure.insn_bytes[2], run->emulation_failure.insn_bytes[3]);
    return QV_ERR_GUEST;
}
uint32_t qv_emulate_host_mxcsr_mask(void) { return 0xffff; }
