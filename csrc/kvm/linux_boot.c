/* Direct Linux boot inside the engine: the layout, the ACPI tables (one Local APIC per vCPU
 * with the topology's APIC ids, the PM1a/reset ports devices/acpi_pm.c answers), the kernel
 * (bzImage or PVH vmlinux), initrd and command line through csrc/boot, then the boot vCPU
 * state. The APs wait for INIT-SIPI-SIPI from the guest through the in-kernel LAPIC. */
#include <inttypes.h>
#include <string.h>

#include "kvm/vm_internal.h"
#include "quantavirt/acpi.h"
#include "quantavirt/boot.h"
#include "quantavirt/errors.h"
#include "quantavirt/layout.h"

_Static_assert(QV_LAYOUT_MMIO_HOLE_START == QV_LOWMEM_END,
               "the loaders' layout and the engine's memory slots must agree");

int qv_vm_load_linux(struct qv_vm *vm, const char *kernel, const char *initrd,
                     const char *cmdline, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (!vm || !kernel || !kernel[0]) {
        snprintf(err, errlen, "boot.kernel: no kernel image given");
        return QV_ERR_INVAL;
    }
    if (vm->state != QV_VM_CREATED) {
        snprintf(err, errlen, "the VM was already started");
        return QV_ERR_STATE;
    }
    if (vm->nvcpus > QV_ACPI_MAX_CPUS) {
        snprintf(err, errlen, "cpu.count: at most %d vCPUs can be described", QV_ACPI_MAX_CPUS);
        return QV_ERR_INVAL;
    }
    struct qv_memory_layout layout;
    int rc = qv_layout_init(&layout, vm->ram_size, 0, err, errlen);
    if (rc < 0)
        return rc;
    /* The loaders see the hot-add range too, so nothing they place can land in it. */
    rc = qv_layout_set_hotplug(&layout, vm->ram_size + vm->hotplug_size, err, errlen);
    if (rc < 0)
        return rc;
    if (vm->hotplug_size && layout.hotplug_base != vm->hotplug_gpa) {
        snprintf(err, errlen, "memory.max_size: layout and reservation disagree");
        return QV_ERR_INVAL;
    }
    if (layout.low_ram_end != vm->low_size) {
        snprintf(err, errlen, "memory.size: layout and memory slots disagree");
        return QV_ERR_INVAL;
    }
    struct qv_acpi_config acpi;
    qv_acpi_config_init(&acpi, vm->nvcpus);
    for (uint32_t i = 0; i < vm->nvcpus; i++)
        acpi.apic_ids[i] = vm->apic_ids[i];
    acpi.pm1a_evt_port = QV_ACPI_PM1A_EVT_PORT;
    acpi.pm1a_cnt_port = QV_ACPI_PM1A_CNT_PORT;
    acpi.reset_port = QV_ACPI_RESET_PORT;
    acpi.reset_value = QV_ACPI_RESET_VALUE;
    rc = qv_acpi_build(vm->ram, vm->ram_size, &layout, &acpi, err, errlen);
    if (rc < 0)
        return rc;
    struct qv_boot_cpu_state st;
    memset(&st, 0, sizeof(st));
    rc = qv_boot_load_kernel(vm->ram, vm->ram_size, kernel, initrd, cmdline, &layout, &st, err,
                             errlen);
    if (rc < 0)
        return rc;
    vm->boot = st;
    vm->boot_set = true;
    qv_vm_log(vm, "INFO",
              "direct boot: %s kernel %s at %#" PRIx64 "-%#" PRIx64 ", entry %#" PRIx64
              ", initrd %" PRIu64 " bytes at %#" PRIx64 ", %" PRIu32 " vCPUs",
              st.kernel_format == QV_KERNEL_PVH ? "PVH" : "bzImage", kernel, st.kernel_start,
              st.kernel_end, st.rip, st.initrd_size, st.initrd_start, vm->nvcpus);
    qv_vm_log(vm, "INFO", "guest command line: %s", cmdline ? cmdline : "");
    return QV_SUCCESS;
}
