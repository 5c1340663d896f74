/* cpu.pin: each pinned vCPU thread is bound to its one host CPU with sched_setaffinity before
 * it first enters KVM_RUN. The map is checked when the VM is created, against the host's online
 * CPUs and the CPUs this process may use, so a bad pin fails before any vCPU runs. */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/vm_internal.h"
#include "quantavirt/errors.h"

/* Linux's largest NR_CPUS; the config allows pin values up to 8191. */
#define MAX_HOST_CPUS 8192

int qv_host_online_cpus(uint8_t *bitmap, size_t nbits)
{
    if (!bitmap || nbits == 0)
        return QV_ERR_INVAL;
    memset(bitmap, 0, (nbits + 7) / 8);
    FILE *f = fopen("/sys/devices/system/cpu/online", "re");
    if (!f)
        return QV_ERR_NOENT;
    char line[4096];
    char *ok = fgets(line, sizeof(line), f);
    fclose(f);
    if (!ok)
        return QV_ERR_IO;
    /* The kernel's list format: "0-3,8,10-11\n". */
    int count = 0;
    for (char *p = line; *p && *p != '\n';) {
        char *end;
        errno = 0;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        if (end == p || errno)
            return QV_ERR_IO;
        p = end;
        if (*p == '-') {
            hi = strtoul(p + 1, &end, 10);
            if (end == p + 1 || errno || hi < lo)
                return QV_ERR_IO;
            p = end;
        }
        for (unsigned long c = lo; c <= hi && c < nbits; c++) {
            bitmap[c / 8] |= (uint8_t)(1u << (c % 8));
            count++;
        }
        if (*p == ',')
            p++;
        else if (*p && *p != '\n')
            return QV_ERR_IO;
    }
    return count;
}

int qv_affinity_init(struct qv_vm *vm, const struct qv_vm_config *cfg, char *err, size_t errlen)
{
    if (!cfg->vcpu_pin)
        return QV_SUCCESS;
    uint8_t local[MAX_HOST_CPUS / 8];
    int n = qv_host_online_cpus(local, MAX_HOST_CPUS);
    if (n <= 0) {
        snprintf(err, errlen, "cpu.pin: cannot read the host's online CPUs "
                 "(/sys/devices/system/cpu/online): %s", qv_strerror(n ? n : QV_ERR_IO));
        return QV_ERR_NODEV;
    }
    cpu_set_t *allowed = CPU_ALLOC(MAX_HOST_CPUS);
    size_t setsize = CPU_ALLOC_SIZE(MAX_HOST_CPUS);
    if (!allowed) {
        snprintf(err, errlen, "out of memory for the CPU set");
        return QV_ERR_NOMEM;
    }
    CPU_ZERO_S(setsize, allowed);
    bool have_allowed = sched_getaffinity(0, setsize, allowed) == 0;
    vm->pin = calloc(cfg->vcpus, sizeof(*vm->pin));
    if (!vm->pin) {
        CPU_FREE(allowed);
        snprintf(err, errlen, "out of memory for cpu.pin");
        return QV_ERR_NOMEM;
    }
    int rc = QV_SUCCESS;
    for (uint32_t i = 0; i < cfg->vcpus && rc == QV_SUCCESS; i++) {
        int32_t c = cfg->vcpu_pin[i];
        vm->pin[i] = c;
        if (c == -1)
            continue;
        if (c < -1 || c >= MAX_HOST_CPUS || !(local[c / 8] >> (c % 8) & 1)) {
            snprintf(err, errlen, "cpu.pin.%" PRIu32 ": host CPU %" PRId32 " does not exist or "
                     "is offline (this host has %d online CPUs, see "
                     "/sys/devices/system/cpu/online)", i, c, n);
            rc = QV_ERR_NODEV;
        } else if (have_allowed && !CPU_ISSET_S((size_t)c, setsize, allowed)) {
            snprintf(err, errlen, "cpu.pin.%" PRIu32 ": host CPU %" PRId32 " is online but "
                     "outside the CPUs this process may use (its cpuset or affinity)", i, c);
            rc = QV_ERR_NODEV;
        }
    }
    CPU_FREE(allowed);
    return rc;
}

int qv_affinity_apply(struct qv_vcpu *v, char *err, size_t errlen)
{
    struct qv_vm *vm = v->vm;
    if (!vm->pin || vm->pin[v->id] < 0)
        return QV_SUCCESS;
    int c = vm->pin[v->id];
    cpu_set_t *set = CPU_ALLOC(MAX_HOST_CPUS);
    size_t setsize = CPU_ALLOC_SIZE(MAX_HOST_CPUS);
    if (!set) {
        snprintf(err, errlen, "out of memory for the CPU set");
        return QV_ERR_NOMEM;
    }
    CPU_ZERO_S(setsize, set);
    CPU_SET_S((size_t)c, setsize, set);
    int rc = QV_SUCCESS;
    if (sched_setaffinity(0, setsize, set) != 0) { /* 0: the calling thread */
        snprintf(err, errlen, "cpu.pin.%" PRIu32 ": binding to host CPU %d failed: %s", v->id,
                 c, strerror(errno));
        rc = QV_ERR_NODEV;
    } else {
        qv_vm_log(vm, "INFO", "vCPU %" PRIu32 " pinned to host CPU %d", v->id, c);
    }
    CPU_FREE(set);
    return rc;
}

void qv_affinity_free(struct qv_vm *vm)
{
    free(vm->pin);
    vm->pin = NULL;
}
