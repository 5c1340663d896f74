/* ACPI fixed-hardware power management, the part a guest needs to power off and reset, and
 * the power button the host presses for a graceful stop:
 * PM1a event block (status / enable, 2 + 2 bytes; PWRBTN_STS / PWRBTN_EN raise the SCI,
 * level-triggered, while both are set) and PM1a control block at the ports the
 * FADT names (QV_ACPI_PM1A_*), where SLP_EN with SLP_TYP = QV_ACPI_S5_SLP_TYP powers the VM
 * off; and the reset control register at 0xcf9 (RST_CPU), the FADT's RESET_REG. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "devices/devices.h"
#include "quantavirt/engine.h"
#include "quantavirt/errors.h"

#define PM1_CNT_SLP_EN (1u << 13)
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SCI_EN 1u
#define RESET_CF9_RST_CPU 0x04
#define PM1_PWRBTN (1u << 8) /* PWRBTN_STS in PM1_STS, PWRBTN_EN in PM1_EN */

struct qv_acpi_pm {
    pthread_mutex_t lock;
    qv_vm_exit_fn exit_fn;
    void *ctx;
    uint16_t sts, en, cnt;
    qv_irq_fn sci_fn;  /* set by the first power-button press */
    void *sci_ctx;
    int sci_level;
};

/* Called with pm->lock held: the SCI follows (status & enable) while ACPI mode is on. */
static void update_sci(struct qv_acpi_pm *pm)
{
    int level = (pm->sts & pm->en & PM1_PWRBTN) && (pm->cnt & PM1_CNT_SCI_EN) ? 1 : 0;
    if (pm->sci_fn && level != pm->sci_level) {
        pm->sci_level = level;
        pm->sci_fn(pm->sci_ctx, QV_ACPI_SCI_IRQ, level);
    }
}

static uint32_t le(const uint8_t *d, uint32_t len)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < len && i < 4; i++)
        v |= (uint32_t)d[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *d, uint32_t len, uint32_t v)
{
    for (uint32_t i = 0; i < len; i++)
        d[i] = i < 4 ? (uint8_t)(v >> (8 * i)) : 0;
}

static void evt_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_acpi_pm *pm = opaque;
    pthread_mutex_lock(&pm->lock);
    /* Registers as one little-endian dword: status (write 1 to clear), then enable. */
    uint32_t reg = pm->sts | ((uint32_t)pm->en << 16);
    uint32_t shift = (uint32_t)off * 8;
    if (is_write) {
        uint32_t v = le(data, len) << shift;
        uint32_t mask = (len >= 4 ? 0xffffffffu : ((1u << (8 * len)) - 1)) << shift;
        pm->sts &= (uint16_t)~(v & mask & 0xffff);
        if (mask >> 16)
            pm->en = (uint16_t)(((pm->en & ~(mask >> 16)) | (v >> 16)) & 0xffff);
        update_sci(pm);
    } else {
        put_le(data, len, reg >> shift);
    }
    pthread_mutex_unlock(&pm->lock);
}

static void cnt_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_acpi_pm *pm = opaque;
    bool poweroff = false;
    pthread_mutex_lock(&pm->lock);
    if (is_write) {
        uint32_t v = le(data, len) << (off * 8);
        pm->cnt = (uint16_t)((v & ~PM1_CNT_SLP_EN) | PM1_CNT_SCI_EN);
        uint32_t typ = (v >> PM1_CNT_SLP_TYP_SHIFT) & 7;
        poweroff = (v & PM1_CNT_SLP_EN) && typ == QV_ACPI_S5_SLP_TYP;
    } else {
        put_le(data, len, (uint32_t)pm->cnt >> (off * 8));
    }
    pthread_mutex_unlock(&pm->lock);
    if (poweroff)
        pm->exit_fn(pm->ctx, QV_EXIT_POWEROFF, 0);
}

static void cf9_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_acpi_pm *pm = opaque;
    (void)off;
    if (!is_write) {
        memset(data, 0, len);
        return;
    }
    if (data[0] & RESET_CF9_RST_CPU)
        pm->exit_fn(pm->ctx, QV_EXIT_RESET, 0);
}

int qv_acpi_pm_create(struct qv_bus *bus, qv_vm_exit_fn exit_fn, void *ctx,
                      struct qv_acpi_pm **out)
{
    struct qv_acpi_pm *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return QV_ERR_NOMEM;
    pthread_mutex_init(&pm->lock, NULL);
    pm->exit_fn = exit_fn;
    pm->ctx = ctx;
    pm->cnt = PM1_CNT_SCI_EN; /* hardware-reduced style: ACPI mode from the start */
    int rc = qv_bus_register(bus, QV_BUS_PIO, QV_ACPI_PM1A_EVT_PORT, 4, evt_io, pm, "pm1a-evt");
    if (!rc)
        rc = qv_bus_register(bus, QV_BUS_PIO, QV_ACPI_PM1A_CNT_PORT, 2, cnt_io, pm, "pm1a-cnt");
    if (!rc)
        rc = qv_bus_register(bus, QV_BUS_PIO, QV_RESET_PORT, 1, cf9_io, pm, "reset-cf9");
    if (rc) {
        qv_acpi_pm_destroy(pm);
        return rc;
    }
    *out = pm;
    return QV_SUCCESS;
}

void qv_acpi_pm_power_button(struct qv_acpi_pm *pm, qv_irq_fn irq_fn, void *irq_ctx)
{
    pthread_mutex_lock(&pm->lock);
    pm->sci_fn = irq_fn;
    pm->sci_ctx = irq_ctx;
    pm->sts |= PM1_PWRBTN;
    update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
}

void qv_acpi_pm_registers(struct qv_acpi_pm *pm, uint16_t *status, uint16_t *enable)
{
    pthread_mutex_lock(&pm->lock);
    *status = pm->sts;
    *enable = pm->en;
    pthread_mutex_unlock(&pm->lock);
}

void qv_acpi_pm_destroy(struct qv_acpi_pm *pm)
{
    if (!pm)
        return;
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}
