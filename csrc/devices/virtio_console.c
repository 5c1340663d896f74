/* virtio-console, single port: transmitq buffers are written to the output sinks, input is
 * pulled from the input callback into receiveq buffers. */
#include "quantavirt/virtio_console.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quantavirt/errors.h"

#define CON_QUEUE_SIZE 128u
#define CON_IOV_CAP 32u
#define CON_CONFIG_SIZE 12u /* cols, rows, max_nr_ports, emerg_wr */

struct qv_virtio_console {
    struct qv_virtio_device dev; /* first */
    struct qv_virtio_console_options opts;
    uint8_t config[CON_CONFIG_SIZE];
    struct iovec rx_iov[CON_IOV_CAP];
    struct iovec tx_iov[CON_IOV_CAP];
    struct qv_vq_elem rx_elem; /* a receive buffer waiting for input */
    int rx_pending;
};

/* Best effort: a full or closed sink must not stall the guest, so EAGAIN drops the rest. */
static void write_fd(int fd, const uint8_t *buf, size_t len)
{
    while (fd >= 0 && len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

static void emit(struct qv_virtio_console *con, const void *buf, size_t len)
{
    if (con->opts.output)
        con->opts.output(con->opts.opaque, buf, len);
    write_fd(con->opts.out_fd, buf, len);
    write_fd(con->opts.log_fd, buf, len);
}

static void process_tx(struct qv_virtio_console *con, struct qv_virtqueue *vq)
{
    struct qv_vq_elem elem = {.iov = con->tx_iov, .iov_cap = CON_IOV_CAP};
    qv_vq_disable_notify(vq);
    for (;;) {
        int r = qv_vq_pop(vq, &elem);
        if (r == 0 && qv_vq_enable_notify(vq)) {
            qv_vq_disable_notify(vq);
            continue;
        }
        if (r <= 0)
            return;
        for (unsigned i = 0; i < elem.out_num; i++)
            emit(con, elem.iov[i].iov_base, elem.iov[i].iov_len);
        if (qv_vq_push(vq, elem.head, 0) < 0)
            return;
    }
}

static void process_rx(struct qv_virtio_console *con, struct qv_virtqueue *vq)
{
    if (!con->opts.input)
        return; /* no input source: the receive buffers stay with us */
    for (;;) {
        if (!con->rx_pending) {
            con->rx_elem.iov = con->rx_iov;
            con->rx_elem.iov_cap = CON_IOV_CAP;
            if (qv_vq_pop(vq, &con->rx_elem) <= 0)
                return;
            con->rx_pending = 1;
        }
        struct qv_vq_elem *e = &con->rx_elem;
        uint64_t filled = 0;
        for (unsigned i = 0; i < e->in_num; i++) {
            struct iovec *v = &e->iov[e->out_num + i];
            ssize_t n = con->opts.input(con->opts.opaque, v->iov_base, v->iov_len);
            if (n <= 0)
                break;
            if ((size_t)n > v->iov_len)
                n = (ssize_t)v->iov_len; /* a misbehaving source cannot overrun */
            filled += (uint64_t)n;
            if ((size_t)n < v->iov_len)
                break;
        }
        if (filled == 0 && e->in_len > 0)
            return; /* keep the buffer until input arrives */
        con->rx_pending = 0;
        if (qv_vq_push(vq, e->head, (uint32_t)filled) < 0)
            return;
    }
}

static uint64_t con_process(struct qv_virtio_device *dev, unsigned int q)
{
    struct qv_virtio_console *con = (struct qv_virtio_console *)(void *)dev;
    if (q == QV_VIRTIO_CONSOLE_TX)
        process_tx(con, &dev->queues[q]);
    else
        process_rx(con, &dev->queues[q]);
    qv_virtio_device_signal(dev, q);
    return 0;
}

static uint64_t con_features(struct qv_virtio_device *dev)
{
    (void)dev;
    return 1ull << QV_VIRTIO_CONSOLE_F_EMERG_WRITE;
}

static void con_read_config(struct qv_virtio_device *dev, uint32_t offset, void *buf,
                            uint32_t len)
{
    struct qv_virtio_console *con = (struct qv_virtio_console *)(void *)dev;
    memcpy(buf, con->config + offset, len);
}

static void con_write_config(struct qv_virtio_device *dev, uint32_t offset, const void *buf,
                             uint32_t len)
{
    struct qv_virtio_console *con = (struct qv_virtio_console *)(void *)dev;
    /* emerg_wr: a 32-bit write whose low byte is one character of early output */
    if (offset == 8 && len == 4)
        emit(con, buf, 1);
}

static void con_reset(struct qv_virtio_device *dev)
{
    ((struct qv_virtio_console *)(void *)dev)->rx_pending = 0;
}

static const struct qv_virtio_device_ops con_ops = {
    .features = con_features,
    .read_config = con_read_config,
    .write_config = con_write_config,
    .process_queue = con_process,
    .reset = con_reset,
};

struct qv_virtio_console *qv_virtio_console_new(const struct qv_virtio_console_options *opts)
{
    struct qv_virtio_console *con = calloc(1, sizeof *con);
    if (!con)
        return NULL;
    if (opts) {
        con->opts = *opts;
    } else {
        con->opts.out_fd = -1;
        con->opts.log_fd = -1;
    }
    uint16_t cols = htole16(con->opts.cols), rows = htole16(con->opts.rows);
    uint32_t ports = htole32(1);
    memcpy(con->config, &cols, 2);
    memcpy(con->config + 2, &rows, 2);
    memcpy(con->config + 4, &ports, 4);
    con->dev.device_id = QV_VIRTIO_ID_CONSOLE;
    con->dev.num_queues = 2;
    con->dev.queue_max_size = CON_QUEUE_SIZE;
    con->dev.pci_class = 0x078000; /* simple communication controller, other */
    con->dev.config_size = CON_CONFIG_SIZE;
    con->dev.ops = &con_ops;
    return con;
}

struct qv_virtio_device *qv_virtio_console_device(struct qv_virtio_console *con)
{
    return &con->dev;
}

void qv_virtio_console_free(struct qv_virtio_console *con)
{
    free(con);
}
