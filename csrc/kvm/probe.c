/* Host probe: /dev/kvm API version and capabilities, host CPUID. */
#include "quantavirt/probe.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "quantavirt/errors.h"

struct cap_entry {
    const char *name;
    int cap;
};

/* The capabilities the engine relies on or adapts to. Order is the ABI of caps[]. */
static const struct cap_entry caps_table[QV_PROBE_CAP_COUNT] = {
    {"USER_MEMORY", KVM_CAP_USER_MEMORY},
    {"SET_TSS_ADDR", KVM_CAP_SET_TSS_ADDR},
    {"SET_IDENTITY_MAP_ADDR", KVM_CAP_SET_IDENTITY_MAP_ADDR},
    {"EXT_CPUID", KVM_CAP_EXT_CPUID},
    {"IRQCHIP", KVM_CAP_IRQCHIP},
    {"PIT2", KVM_CAP_PIT2},
    {"PIT_STATE2", KVM_CAP_PIT_STATE2},
    {"IRQFD", KVM_CAP_IRQFD},
    {"IOEVENTFD", KVM_CAP_IOEVENTFD},
    {"IRQ_ROUTING", KVM_CAP_IRQ_ROUTING},
    {"NR_VCPUS", KVM_CAP_NR_VCPUS},
    {"MAX_VCPUS", KVM_CAP_MAX_VCPUS},
    {"NR_MEMSLOTS", KVM_CAP_NR_MEMSLOTS},
    {"IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT},
    {"X86_ROBUST_SINGLESTEP", KVM_CAP_X86_ROBUST_SINGLESTEP},
    {"VCPU_EVENTS", KVM_CAP_VCPU_EVENTS},
    {"XSAVE", KVM_CAP_XSAVE},
    {"XCRS", KVM_CAP_XCRS},
    {"MP_STATE", KVM_CAP_MP_STATE},
    {"EXIT_ON_EMULATION_FAILURE", KVM_CAP_EXIT_ON_EMULATION_FAILURE},
};

const char *qv_probe_cap_name(int index)
{
    if (index < 0 || index >= QV_PROBE_CAP_COUNT)
        return "";
    return caps_table[index].name;
}

#define set_err(err, errlen, ...)                                                  \
    do {                                                                           \
        if ((err) && (errlen))                                                     \
            snprintf((err), (errlen), __VA_ARGS__);                                \
    } while (0)

int qv_probe_kvm(const char *kvm_path, struct qv_kvm_probe *out, char *err, size_t errlen)
{
    if (!out)
        return QV_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    const char *path = kvm_path ? kvm_path : "/dev/kvm";
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENODEV || e == ENXIO)
            set_err(err, errlen,
                    "%s: %s; load the KVM module (modprobe kvm_intel or kvm_amd) and enable "
                    "virtualization (VT-x/AMD-V) in the firmware",
                    path, strerror(e));
        else if (e == EACCES || e == EPERM)
            set_err(err, errlen,
                    "%s: %s; run as root or add the user to the group owning the device "
                    "(usually 'kvm')",
                    path, strerror(e));
        else
            set_err(err, errlen, "%s: %s; KVM is not usable on this host", path, strerror(e));
        return QV_ERR_NOVMX;
    }
    out->api_version = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (out->api_version != KVM_API_VERSION) {
        char ver[32];
        snprintf(ver, sizeof(ver), "%d", out->api_version);
        set_err(err, errlen, "%s: unsupported KVM API version %s (need 12)", path, ver);
        close(fd);
        return QV_ERR_NOVMX;
    }
    for (int i = 0; i < QV_PROBE_CAP_COUNT; i++) {
        int r = ioctl(fd, KVM_CHECK_EXTENSION, caps_table[i].cap);
        out->caps[i] = r < 0 ? 0 : r;
    }
    int nr = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    int max = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    /* The API says: NR_VCPUS absent -> 4; MAX_VCPUS absent -> NR_VCPUS. */
    out->nr_vcpus = nr > 0 ? nr : 4;
    out->max_vcpus = max > 0 ? max : out->nr_vcpus;

    /* Leaf 1 of what KVM would let a guest see. */
    int nent = 256;
    size_t sz = sizeof(struct kvm_cpuid2) + (size_t)nent * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = calloc(1, sz);
    if (cpuid) {
        cpuid->nent = (uint32_t)nent;
        if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0) {
            for (uint32_t i = 0; i < cpuid->nent; i++) {
                if (cpuid->entries[i].function == 1) {
                    out->supported_cpuid_1_ecx = cpuid->entries[i].ecx;
                    out->supported_cpuid_1_edx = cpuid->entries[i].edx;
                }
            }
        }
        free(cpuid);
    }
    close(fd);
    return QV_SUCCESS;
}

int qv_probe_cpu(struct qv_cpu_probe *out)
{
    if (!out)
        return QV_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    unsigned a, b, c, d;
    __cpuid(0, a, b, c, d);
    out->max_leaf = a;
    memcpy(out->vendor, &b, 4);
    memcpy(out->vendor + 4, &d, 4);
    memcpy(out->vendor + 8, &c, 4);
    out->vendor[12] = '\0';
    if (out->max_leaf >= 1) {
        __cpuid(1, a, b, c, d);
        out->leaf1_ecx = c;
        out->leaf1_edx = d;
    }
    if (out->max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        out->leaf7_ebx = b;
        out->leaf7_ecx = c;
        out->leaf7_edx = d;
    }
    __cpuid(0x80000000, a, b, c, d);
    out->max_ext_leaf = a;
    if (out->max_ext_leaf >= 0x80000001) {
        __cpuid(0x80000001, a, b, c, d);
        out->ext1_ecx = c;
        out->ext1_edx = d;
    }
    if (out->max_ext_leaf >= 0x8000001f) {
        __cpuid(0x8000001f, a, b, c, d);
        out->ext1f_eax = a;
    }
    return QV_SUCCESS;
}
