/* Secret wiping that the compiler may not remove as a dead store. */
#ifndef QV_CORE_WIPE_H
#define QV_CORE_WIPE_H

#include <stddef.h>

void qv_wipe(void *p, size_t n);

#endif
