/* Host probe: what /dev/kvm offers (API version, capabilities, vCPU limits) and what the host
 * CPU is (vendor, CPUID feature bits). Python (quantavirt.host) adds the sysfs facts. */
#ifndef QUANTAVIRT_PROBE_H
#define QUANTAVIRT_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* Capabilities the engine asks KVM_CHECK_EXTENSION about, in this order. */
#define QV_PROBE_CAP_COUNT 20

struct qv_kvm_probe {
    int api_version;
    int32_t caps[QV_PROBE_CAP_COUNT];   /* KVM_CHECK_EXTENSION result per qv_probe_cap_name */
    int nr_vcpus;                        /* recommended */
    int max_vcpus;
    uint32_t supported_cpuid_1_ecx;      /* KVM_GET_SUPPORTED_CPUID leaf 1 */
    uint32_t supported_cpuid_1_edx;
};

struct qv_cpu_probe {
    char vendor[13];
    uint32_t max_leaf;
    uint32_t max_ext_leaf;
    uint32_t leaf1_ecx, leaf1_edx;
    uint32_t leaf7_ebx, leaf7_ecx, leaf7_edx;
    uint32_t ext1_ecx, ext1_edx;         /* 0x80000001 */
    uint32_t ext1f_eax;                  /* 0x8000001f: AMD memory encryption */
};

/* Open kvm_path (NULL: /dev/kvm) and fill *out. QV_ERR_NOVMX with a message naming the fix
 * when the device is missing or not accessible; QV_ERR_KVM when an ioctl fails. */
int qv_probe_kvm(const char *kvm_path, struct qv_kvm_probe *out, char *err, size_t errlen);
const char *qv_probe_cap_name(int index);
/* The host CPU through the CPUID instruction. */
int qv_probe_cpu(struct qv_cpu_probe *out);

#endif
