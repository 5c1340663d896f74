/* 8250/16550A UART (COM1): transmit goes to the console fd (non-blocking, so a slow reader
 * never stalls a vCPU) and the console log; receive is a small FIFO fed by the host. Enough of
 * the register set for Linux' 8250 driver: divisor latch, FIFO control, loopback (the driver's
 * probe checks it), scratch, line and modem status, and the THRE / RDA interrupts. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/devices.h"
#include "quantavirt/errors.h"

#define RX_FIFO 256

/* Register offsets and bits. */
enum { REG_DATA = 0, REG_IER = 1, REG_IIR = 2, REG_LCR = 3, REG_MCR = 4, REG_LSR = 5,
       REG_MSR = 6, REG_SCR = 7 };
#define IER_RDA 0x01
#define IER_THRE 0x02
#define IIR_NONE 0x01
#define IIR_THRE 0x02
#define IIR_RDA 0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

struct qv_serial {
    pthread_mutex_t lock;
    qv_irq_fn irq_fn;
    void *irq_ctx;
    uint32_t irq;
    int out_fd;
    int log_fd;
    uint8_t ier, lcr, mcr, scr, fcr, dll, dlm, msr_in;
    bool thre_pending;
    int irq_level;
    uint8_t rx[RX_FIFO];
    uint32_t rx_head, rx_count;
    uint64_t bytes, dropped;
};

static uint8_t iir_of(struct qv_serial *s)
{
    uint8_t fifo = (s->fcr & 1) ? IIR_FIFO : 0;
    if ((s->ier & IER_RDA) && s->rx_count)
        return IIR_RDA | fifo;
    if ((s->ier & IER_THRE) && s->thre_pending)
        return IIR_THRE | fifo;
    return IIR_NONE | fifo;
}

/* Called with the lock held: move the line to match the interrupt state. */
static void update_irq(struct qv_serial *s)
{
    int level = (iir_of(s) & IIR_NONE) ? 0 : 1;
    if (level != s->irq_level) {
        s->irq_level = level;
        if (s->irq_fn)
            s->irq_fn(s->irq_ctx, s->irq, level);
    }
}

static void rx_push(struct qv_serial *s, uint8_t c)
{
    if (s->rx_count == RX_FIFO)
        return; /* overrun: the byte is lost, as on hardware */
    s->rx[(s->rx_head + s->rx_count) % RX_FIFO] = c;
    s->rx_count++;
}

static void write_all(int fd, const uint8_t *p, size_t n, uint64_t *dropped)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (dropped)
                *dropped += n;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void transmit(struct qv_serial *s, uint8_t c)
{
    if (s->mcr & MCR_LOOP) {
        rx_push(s, c);
        return;
    }
    s->bytes++;
    if (s->out_fd >= 0)
        write_all(s->out_fd, &c, 1, &s->dropped);
    if (s->log_fd >= 0)
        write_all(s->log_fd, &c, 1, NULL);
}

static uint8_t msr_of(struct qv_serial *s)
{
    if (s->mcr & MCR_LOOP) {
        /* Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
        uint8_t m = 0;
        if (s->mcr & 0x01)
            m |= 0x20;
        if (s->mcr & 0x02)
            m |= 0x10;
        if (s->mcr & 0x04)
            m |= 0x40;
        if (s->mcr & 0x08)
            m |= 0x80;
        return m;
    }
    return 0xb0; /* DCD, DSR, CTS: a terminal is always there */
}

static void serial_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    struct qv_serial *s = opaque;
    if (len != 1) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (is_write) {
        uint8_t v = data[0];
        switch (off) {
        case REG_DATA:
            if (s->lcr & LCR_DLAB) {
                s->dll = v;
            } else {
                transmit(s, v);
                /* Transmission is instant: the holding register is empty again. */
                s->thre_pending = true;
            }
            break;
        case REG_IER:
            if (s->lcr & LCR_DLAB) {
                s->dlm = v;
            } else {
                /* Enabling THRE with an empty holding register raises it at once. */
                if (!(s->ier & IER_THRE) && (v & IER_THRE))
                    s->thre_pending = true;
                s->ier = v & 0x0f;
            }
            break;
        case REG_IIR: /* FCR */
            s->fcr = v & 0xc9;
            if (v & 0x02)
                s->rx_count = 0;
            break;
        case REG_LCR:
            s->lcr = v;
            break;
        case REG_MCR:
            s->mcr = v & 0x1f;
            break;
        case REG_SCR:
            s->scr = v;
            break;
        default:
            break; /* LSR, MSR: read-only */
        }
    } else {
        uint8_t v = 0;
        switch (off) {
        case REG_DATA:
            if (s->lcr & LCR_DLAB) {
                v = s->dll;
            } else if (s->rx_count) {
                v = s->rx[s->rx_head];
                s->rx_head = (s->rx_head + 1) % RX_FIFO;
                s->rx_count--;
            }
            break;
        case REG_IER:
            v = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
            break;
        case REG_IIR:
            v = iir_of(s);
            /* Reading IIR acknowledges a THRE interrupt. */
            if ((v & 0x0f) == IIR_THRE)
                s->thre_pending = false;
            break;
        case REG_LCR:
            v = s->lcr;
            break;
        case REG_MCR:
            v = s->mcr;
            break;
        case REG_LSR:
            v = LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0);
            break;
        case REG_MSR:
            v = msr_of(s);
            break;
        case REG_SCR:
            v = s->scr;
            break;
        default:
            break;
        }
        data[0] = v;
    }
    update_irq(s);
    pthread_mutex_unlock(&s->lock);
}

int qv_serial_create(struct qv_bus *bus, uint16_t port, uint32_t irq, qv_irq_fn irq_fn,
                     void *irq_ctx, int out_fd, int log_fd, struct qv_serial **out)
{
    struct qv_serial *s = calloc(1, sizeof(*s));
    if (!s)
        return QV_ERR_NOMEM;
    pthread_mutex_init(&s->lock, NULL);
    s->irq_fn = irq_fn;
    s->irq_ctx = irq_ctx;
    s->irq = irq;
    s->out_fd = out_fd;
    s->log_fd = log_fd;
    s->dll = 0x0c; /* 9600 baud */
    int rc = qv_bus_register(bus, QV_BUS_PIO, port, 8, serial_io, s, "serial");
    if (rc) {
        qv_serial_destroy(s);
        return rc;
    }
    *out = s;
    return QV_SUCCESS;
}

void qv_serial_input(struct qv_serial *s, const uint8_t *data, size_t len)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < len; i++)
        rx_push(s, data[i]);
    update_irq(s);
    pthread_mutex_unlock(&s->lock);
}

void qv_serial_counters(struct qv_serial *s, uint64_t *bytes, uint64_t *dropped)
{
    pthread_mutex_lock(&s->lock);
    *bytes = s->bytes;
    *dropped = s->dropped;
    pthread_mutex_unlock(&s->lock);
}

void qv_serial_destroy(struct qv_serial *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}
