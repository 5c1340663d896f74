#include "quantavirt/guest_memory.h"

void *qv_guest_ptr(const struct qv_guest_memory *mem, uint64_t gpa, uint64_t len)
{
    for (unsigned int i = 0; i < mem->nregions && i < QV_GUEST_MEMORY_MAX_REGIONS; i++) {
        const struct qv_guest_region *r = &mem->regions[i];
        if (gpa < r->gpa)
            continue;
        uint64_t off = gpa - r->gpa;
        /* off < size and len <= size - off, written so nothing can overflow */
        if (off < r->size && len <= r->size - off)
            return r->host + off;
        if (off == r->size && len == 0)
            return r->host + off;
    }
    return 0;
}
