/* An in-memory qv_disk: the block backend for tests, benchmarks and scratch disks. */
#ifndef QUANTAVIRT_MEMDISK_H
#define QUANTAVIRT_MEMDISK_H

#include <stdint.h>

#include "quantavirt/disk.h"

/* A zero-filled disk of size bytes; NULL when out of memory. Free with disk->ops->close. */
struct qv_disk *qv_memdisk_new(uint64_t size, int readonly);
/* The backing bytes (size bytes) and how many flushes and discards reached the disk. */
uint8_t *qv_memdisk_data(struct qv_disk *disk);
uint64_t qv_memdisk_flush_count(struct qv_disk *disk);
uint64_t qv_memdisk_discard_count(struct qv_disk *disk);

#endif
