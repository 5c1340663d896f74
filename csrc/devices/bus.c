/* The device bus (see bus.h). */
#include "devices/bus.h"

#include <string.h>

#include "quantavirt/errors.h"

static int bus_add(struct qv_bus *bus, enum qv_bus_space space, uint64_t base, uint64_t size,
                   qv_bus_handler handler, void *opaque, const char *name, bool overlap_ok)
{
    if (!bus || !handler || size == 0 || base + size < base || (space != QV_BUS_PIO &&
                                                                 space != QV_BUS_MMIO))
        return QV_ERR_INVAL;
    if (space == QV_BUS_PIO && base + size > 0x10000)
        return QV_ERR_INVAL;
    for (int i = 0; i < bus->count[space] && !overlap_ok; i++) {
        const struct qv_bus_range *r = &bus->ranges[space][i];
        if (base < r->base + r->size && r->base < base + size)
            return QV_ERR_EXIST;
    }
    if (bus->count[space] >= QV_BUS_MAX_RANGES)
        return QV_ERR_NOMEM;
    bus->ranges[space][bus->count[space]++] = (struct qv_bus_range){
        .base = base, .size = size, .handler = handler, .opaque = opaque, .name = name};
    return QV_SUCCESS;
}

int qv_bus_register(struct qv_bus *bus, enum qv_bus_space space, uint64_t base, uint64_t size,
                    qv_bus_handler handler, void *opaque, const char *name)
{
    return bus_add(bus, space, base, size, handler, opaque, name, false);
}

int qv_bus_register_under(struct qv_bus *bus, enum qv_bus_space space, uint64_t base,
                          uint64_t size, qv_bus_handler handler, void *opaque, const char *name)
{
    /* Dispatch takes the first range that holds the whole access: registered later, this
     * one only gets what the earlier, overlapping ranges cannot take. */
    return bus_add(bus, space, base, size, handler, opaque, name, true);
}

void qv_bus_set_fallback(struct qv_bus *bus, enum qv_bus_space space, qv_bus_fallback fn,
                         void *opaque)
{
    if (!bus || (space != QV_BUS_PIO && space != QV_BUS_MMIO))
        return;
    bus->fallback[space] = fn;
    bus->fallback_opaque[space] = opaque;
}

bool qv_bus_dispatch(struct qv_bus *bus, enum qv_bus_space space, uint64_t addr, uint8_t *data,
                     uint32_t len, bool is_write)
{
    for (int i = 0; i < bus->count[space]; i++) {
        const struct qv_bus_range *r = &bus->ranges[space][i];
        /* The whole access must fall inside one range. */
        if (addr >= r->base && addr - r->base < r->size && len <= r->size - (addr - r->base)) {
            r->handler(r->opaque, addr - r->base, data, len, is_write);
            return true;
        }
    }
    if (bus->fallback[space] &&
        bus->fallback[space](bus->fallback_opaque[space], addr, data, len, is_write))
        return true;
    if (!is_write)
        memset(data, 0xff, len);
    return false;
}
