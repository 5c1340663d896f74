#include "core/wipe.h"

#include <string.h>

void qv_wipe(void *p, size_t n)
{
    if (p == NULL || n == 0)
        return;
    memset(p, 0, n);
    /* The barrier tells the compiler the zeroed memory is observed, so the memset stays. */
    __asm__ __volatile__("" : : "r"(p) : "memory");
}
