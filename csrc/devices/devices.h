/* The built-in legacy devices: 8250 UART, i8042 (reset line only), CMOS RTC, and the test
 * devices (debug exit, result port, boot timer, MMIO scratch). Each registers its ranges on
 * the bus and reports interrupts and VM-level events through the callbacks below. */
#ifndef QV_DEVICES_DEVICES_H
#define QV_DEVICES_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"

/* Drive ISA interrupt line `irq` to `level` (in-kernel PIC/IOAPIC). */
typedef void (*qv_irq_fn)(void *ctx, uint32_t irq, int level);
/* End the VM: reason is an enum qv_exit_reason, status its value. */
typedef void (*qv_vm_exit_fn)(void *ctx, int reason, int64_t status);

/* serial.c */
struct qv_serial;
int qv_serial_create(struct qv_bus *bus, uint16_t port, uint32_t irq, qv_irq_fn irq_fn,
                     void *irq_ctx, int out_fd, int log_fd, struct qv_serial **out);
void qv_serial_input(struct qv_serial *s, const uint8_t *data, size_t len);
void qv_serial_counters(struct qv_serial *s, uint64_t *bytes, uint64_t *dropped);
void qv_serial_destroy(struct qv_serial *s);

/* i8042.c */
struct qv_i8042;
int qv_i8042_create(struct qv_bus *bus, qv_vm_exit_fn exit_fn, void *ctx, struct qv_i8042 **out);
void qv_i8042_destroy(struct qv_i8042 *k);

/* rtc.c */
struct qv_rtc;
int qv_rtc_create(struct qv_bus *bus, uint64_t mem_size, struct qv_rtc **out);
void qv_rtc_destroy(struct qv_rtc *r);

/* acpi_pm.c */
struct qv_acpi_pm;
int qv_acpi_pm_create(struct qv_bus *bus, qv_vm_exit_fn exit_fn, void *ctx,
                      struct qv_acpi_pm **out);
void qv_acpi_pm_destroy(struct qv_acpi_pm *pm);
/* Press the power button: set PWRBTN_STS; the SCI (QV_ACPI_SCI_IRQ, through irq_fn) is held
 * high while any status bit the guest enabled is set, and dropped when the guest clears it. */
void qv_acpi_pm_power_button(struct qv_acpi_pm *pm, qv_irq_fn irq_fn, void *irq_ctx);
void qv_acpi_pm_registers(struct qv_acpi_pm *pm, uint16_t *status, uint16_t *enable);

/* debug_exit.c */
struct qv_debugdev;
int qv_debugdev_create(struct qv_bus *bus, int with_mmio, qv_vm_exit_fn exit_fn, void *ctx,
                       struct qv_debugdev **out);
/* Results written to the result port, and the boot-timer record. */
void qv_debugdev_snapshot(struct qv_debugdev *d, uint32_t *results, uint32_t max,
                          uint32_t *nresults, uint64_t *boot_ns, uint32_t *boot_value);
void qv_debugdev_destroy(struct qv_debugdev *d);

#endif
