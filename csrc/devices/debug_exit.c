/* Devices for test guests and boot measurements:
 *  - debug exit (port 0xf4): a write ends the VM with the written value as its status;
 *  - result port (0xf8): each write appends a value to a list the host reads back;
 *  - boot timer (port 0x440, or MMIO at QV_BOOT_TIMER_MMIO): the first write records the time since the device was created
 *    (the guest's init writes it when boot is done, as Firecracker's boot timer);
 *  - MMIO test device (optional, 4 KiB at QV_TEST_MMIO_BASE): offset 0 reads an ID, the other
 *    32-bit registers are scratch, so a guest can check MMIO round trips. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices/devices.h"
#include "quantavirt/engine.h"
#include "quantavirt/errors.h"

#define TESTDEV_ID 0x44545651u /* "QVTD" */

struct qv_debugdev {
    pthread_mutex_t lock;
    qv_vm_exit_fn exit_fn;
    void *ctx;
    uint64_t created_ns;
    uint32_t results[QV_MAX_RESULTS];
    uint32_t nresults;
    uint64_t boot_ns;
    uint32_t boot_value;
    uint32_t scratch[QV_TEST_MMIO_SIZE / 4];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t le_value(const uint8_t *data, uint32_t len)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < len && i < 4; i++)
        v |= (uint32_t)data[i] << (8 * i);
    return v;
}

static void exit_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_debugdev *d = opaque;
    (void)off;
    if (!is_write) {
        memset(data, 0, len);
        return;
    }
    d->exit_fn(d->ctx, QV_EXIT_DEBUG, le_value(data, len));
}

static void result_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_debugdev *d = opaque;
    (void)off;
    if (!is_write) {
        memset(data, 0, len);
        return;
    }
    pthread_mutex_lock(&d->lock);
    if (d->nresults < QV_MAX_RESULTS)
        d->results[d->nresults++] = le_value(data, len);
    pthread_mutex_unlock(&d->lock);
}

static void boot_timer_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_debugdev *d = opaque;
    (void)off;
    if (!is_write) {
        memset(data, 0, len);
        return;
    }
    pthread_mutex_lock(&d->lock);
    if (d->boot_ns == 0) {
        d->boot_ns = now_ns() - d->created_ns;
        d->boot_value = le_value(data, len);
    }
    pthread_mutex_unlock(&d->lock);
}

static void testdev_mmio(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_debugdev *d = opaque;
    /* 32-bit registers; a narrower access works on the low bytes of its register. */
    uint64_t reg = off / 4;
    uint32_t shift = (uint32_t)(off % 4) * 8;
    pthread_mutex_lock(&d->lock);
    if (is_write) {
        if (reg != 0 && len <= 4 - off % 4) {
            uint32_t v = le_value(data, len);
            uint32_t mask = len == 4 ? 0xffffffffu : ((1u << (8 * len)) - 1) << shift;
            d->scratch[reg] = (d->scratch[reg] & ~mask) | ((v << shift) & mask);
        }
    } else {
        uint64_t v = reg == 0 ? TESTDEV_ID : d->scratch[reg];
        if (len == 8 && reg + 1 < QV_TEST_MMIO_SIZE / 4)
            v |= (uint64_t)d->scratch[reg + 1] << 32;
        v >>= shift;
        for (uint32_t i = 0; i < len; i++)
            data[i] = (uint8_t)(v >> (8 * i));
    }
    pthread_mutex_unlock(&d->lock);
}

int qv_debugdev_create(struct qv_bus *bus, int with_mmio, qv_vm_exit_fn exit_fn, void *ctx,
                       struct qv_debugdev **out)
{
    struct qv_debugdev *d = calloc(1, sizeof(*d));
    if (!d)
        return QV_ERR_NOMEM;
    pthread_mutex_init(&d->lock, NULL);
    d->exit_fn = exit_fn;
    d->ctx = ctx;
    d->created_ns = now_ns();
    int rc = qv_bus_register(bus, QV_BUS_PIO, QV_DEBUG_EXIT_PORT, 4, exit_io, d, "debug-exit");
    if (!rc)
        rc = qv_bus_register(bus, QV_BUS_PIO, QV_RESULT_PORT, 4, result_io, d, "result");
    if (!rc)
        rc = qv_bus_register(bus, QV_BUS_PIO, QV_BOOT_TIMER_PORT, 4, boot_timer_io, d,
                             "boot-timer");
    if (!rc)
        rc = qv_bus_register(bus, QV_BUS_MMIO, QV_BOOT_TIMER_MMIO, 0x1000, boot_timer_io, d,
                             "boot-timer-mmio");
    if (!rc && with_mmio)
        rc = qv_bus_register(bus, QV_BUS_MMIO, QV_TEST_MMIO_BASE, QV_TEST_MMIO_SIZE,
                             testdev_mmio, d, "testdev");
    if (rc) {
        qv_debugdev_destroy(d);
        return rc;
    }
    *out = d;
    return QV_SUCCESS;
}

void qv_debugdev_snapshot(struct qv_debugdev *d, uint32_t *results, uint32_t max,
                          uint32_t *nresults, uint64_t *boot_ns, uint32_t *boot_value)
{
    pthread_mutex_lock(&d->lock);
    uint32_t n = d->nresults < max ? d->nresults : max;
    memcpy(results, d->results, n * sizeof(uint32_t));
    *nresults = n;
    *boot_ns = d->boot_ns;
    *boot_value = d->boot_value;
    pthread_mutex_unlock(&d->lock);
}

void qv_debugdev_destroy(struct qv_debugdev *d)
{
    if (!d)
        return;
    pthread_mutex_destroy(&d->lock);
    free(d);
}
