/* MC146818 CMOS RTC at ports 0x70/0x71: the host's UTC time in BCD, 24-hour mode, no alarms
 * or periodic interrupts; the CMOS bytes where firmware records the memory size; bit 7 of the
 * index port (NMI mask) is ignored. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices/devices.h"
#include "quantavirt/errors.h"

#define CMOS_SIZE 128

struct qv_rtc {
    pthread_mutex_t lock;
    uint8_t index;
    uint8_t cmos[CMOS_SIZE];
};

static uint8_t bcd(int v)
{
    return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static uint8_t read_reg(struct qv_rtc *r, uint8_t idx)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    switch (idx) {
    case 0x00: return bcd(tm.tm_sec);
    case 0x02: return bcd(tm.tm_min);
    case 0x04: return bcd(tm.tm_hour);
    case 0x06: return bcd(tm.tm_wday + 1);
    case 0x07: return bcd(tm.tm_mday);
    case 0x08: return bcd(tm.tm_mon + 1);
    case 0x09: return bcd(tm.tm_year % 100);
    case 0x32: return bcd(tm.tm_year / 100 + 19);   /* century */
    case 0x0a: return 0x26;                          /* 32.768 kHz, 1024 Hz; UIP clear */
    case 0x0b: return 0x02;                          /* 24 h, BCD, no interrupts */
    case 0x0c: return 0x00;
    case 0x0d: return 0x80;                          /* battery good */
    default: return r->cmos[idx];
    }
}

static void rtc_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_rtc *r = opaque;
    pthread_mutex_lock(&r->lock);
    if (off == 0) {
        if (is_write)
            r->index = data[0] & 0x7f;
        else
            data[0] = r->index;
    } else if (is_write) {
        /* Time registers are the host's; the rest is scratch CMOS RAM. */
        if (r->index > 0x0d && r->index != 0x32)
            r->cmos[r->index] = data[0];
    } else {
        data[0] = read_reg(r, r->index);
    }
    for (uint32_t i = 1; i < len && !is_write; i++)
        data[i] = 0xff;
    pthread_mutex_unlock(&r->lock);
}

int qv_rtc_create(struct qv_bus *bus, uint64_t mem_size, struct qv_rtc **out)
{
    struct qv_rtc *r = calloc(1, sizeof(*r));
    if (!r)
        return QV_ERR_NOMEM;
    pthread_mutex_init(&r->lock, NULL);
    /* Extended memory above 1 MiB in KiB (to 64 MiB), and above 16 MiB in 64 KiB units. */
    uint64_t ext_kb = mem_size > (1 << 20) ? (mem_size - (1 << 20)) >> 10 : 0;
    if (ext_kb > 0xfc00)
        ext_kb = 0xfc00;
    r->cmos[0x17] = r->cmos[0x30] = (uint8_t)ext_kb;
    r->cmos[0x18] = r->cmos[0x31] = (uint8_t)(ext_kb >> 8);
    uint64_t low = mem_size < 0xC0000000ULL ? mem_size : 0xC0000000ULL;
    uint64_t above16 = low > (16 << 20) ? (low - (16 << 20)) >> 16 : 0;
    if (above16 > 0xffff)
        above16 = 0xffff;
    r->cmos[0x34] = (uint8_t)above16;
    r->cmos[0x35] = (uint8_t)(above16 >> 8);
    int rc = qv_bus_register(bus, QV_BUS_PIO, 0x70, 2, rtc_io, r, "rtc");
    if (rc) {
        qv_rtc_destroy(r);
        return rc;
    }
    *out = r;
    return QV_SUCCESS;
}

void qv_rtc_destroy(struct qv_rtc *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r);
}
