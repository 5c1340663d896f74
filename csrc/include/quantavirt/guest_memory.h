/* Guest physical memory as the device side sees it: a set of host mappings, and the one
 * translation function every device uses to turn a guest address range into a host pointer.
 * A range that is not entirely inside one region is refused, so guest-controlled addresses
 * can never reach host memory outside guest RAM. */
#ifndef QUANTAVIRT_GUEST_MEMORY_H
#define QUANTAVIRT_GUEST_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define QV_GUEST_MEMORY_MAX_REGIONS 8

struct qv_guest_region {
    uint64_t gpa;    /* guest physical start */
    uint64_t size;
    uint8_t *host;   /* host mapping of the region */
};

struct qv_guest_memory {
    struct qv_guest_region regions[QV_GUEST_MEMORY_MAX_REGIONS];
    unsigned int nregions;
};

/* Host pointer for [gpa, gpa + len) or NULL when any byte of it is outside guest RAM
 * (overflow-safe). len 0 is allowed and checks only gpa. */
void *qv_guest_ptr(const struct qv_guest_memory *mem, uint64_t gpa, uint64_t len);

#endif
