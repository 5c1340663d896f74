/* Little-endian accessors and overflow-safe range checks shared by the loaders and the table
 * builders. Everything a loader reads from a file goes through these, so a lying size or
 * offset can never index past a buffer. */
#ifndef QV_BOOT_BYTES_H
#define QV_BOOT_BYTES_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* True when [off, off + len) lies inside a buffer of `size` bytes (no overflow possible). */
static inline bool qv_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

static inline uint16_t qv_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t qv_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t qv_rd64(const uint8_t *p)
{
    return (uint64_t)qv_rd32(p) | ((uint64_t)qv_rd32(p + 4) << 32);
}
static inline void qv_wr8(uint8_t *p, uint8_t v) { p[0] = v; }
static inline void qv_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void qv_wr32(uint8_t *p, uint32_t v)
{
    qv_wr16(p, (uint16_t)v);
    qv_wr16(p + 2, (uint16_t)(v >> 16));
}
static inline void qv_wr64(uint8_t *p, uint64_t v)
{
    qv_wr32(p, (uint32_t)v);
    qv_wr32(p + 4, (uint32_t)(v >> 32));
}

/* printf into a caller's error buffer (NULL or 0-length buffers are fine); returns `code`. */
__attribute__((format(printf, 4, 5))) static inline int qv_fail(int code, char *errbuf,
                                                                 size_t errlen, const char *fmt,
                                                                 ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

#endif
