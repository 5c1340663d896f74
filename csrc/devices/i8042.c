/* i8042 keyboard controller, reduced to what a VM needs: a status register that says "no
 * data", and the output-port pulse command (0xfe on port 0x64) that resets the machine —
 * Linux' `reboot` uses it. */
#include <stdlib.h>
#include <string.h>

#include "devices/devices.h"
#include "quantavirt/engine.h"
#include "quantavirt/errors.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define CMD_PULSE_RESET 0xfe

struct qv_i8042 {
    qv_vm_exit_fn exit_fn;
    void *ctx;
};

static void i8042_data(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    (void)opaque;
    (void)off;
    if (!is_write)
        memset(data, 0, len); /* no key pressed */
}

static void i8042_cmd(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_i8042 *k = opaque;
    (void)off;
    if (!is_write) {
        memset(data, 0, len); /* status: output buffer empty, input buffer empty */
        return;
    }
    if (len >= 1 && data[0] == CMD_PULSE_RESET)
        k->exit_fn(k->ctx, QV_EXIT_RESET, 0);
}

int qv_i8042_create(struct qv_bus *bus, qv_vm_exit_fn exit_fn, void *ctx, struct qv_i8042 **out)
{
    struct qv_i8042 *k = calloc(1, sizeof(*k));
    if (!k)
        return QV_ERR_NOMEM;
    k->exit_fn = exit_fn;
    k->ctx = ctx;
    int rc = qv_bus_register(bus, QV_BUS_PIO, I8042_DATA, 1, i8042_data, k, "i8042-data");
    if (!rc)
        rc = qv_bus_register(bus, QV_BUS_PIO, I8042_CMD, 1, i8042_cmd, k, "i8042-cmd");
    if (rc) {
        free(k);
        return rc;
    }
    *out = k;
    return QV_SUCCESS;
}

void qv_i8042_destroy(struct qv_i8042 *k)
{
    free(k);
}
