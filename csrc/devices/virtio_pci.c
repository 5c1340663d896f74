/* virtio 1.x modern PCI transport: configuration space, capability list, common configuration,
 * ISR, notifications, device configuration window and MSI-X, as register logic only.
 * See quantavirt/virtio_pci.h for the BAR layout. */
#include "quantavirt/virtio_pci.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci.h"
#include "quantavirt/errors.h"

/* PCI configuration-space offsets */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_BAR1 0x14
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID 0x2e
#define PCI_CAP_PTR 0x34
#define PCI_INT_LINE 0x3c
#define PCI_INT_PIN 0x3d

#define PCI_COMMAND_MEMORY 0x2u
#define PCI_COMMAND_INTX_DISABLE 0x400u
#define PCI_STATUS_INTERRUPT 0x08u
#define PCI_STATUS_CAP_LIST 0x10u

#define CAP_ID_VENDOR 0x09
#define CAP_ID_MSIX 0x11

/* our capability placement */
#define CAP_MSIX 0x40
#define CAP_COMMON 0x50
#define CAP_NOTIFY 0x60 /* 20 bytes */
#define CAP_ISR 0x78
#define CAP_DEVICE 0x88
#define CAP_PCICFG 0x98 /* 20 bytes: the last 4 are the data window */

#define MSIX_CTRL_ENABLE 0x8000u
#define MSIX_CTRL_MASKALL 0x4000u
#define MSIX_ENTRY_MASKED 0x1u
#define MSIX_MAX_VECTORS 64u

/* common configuration register offsets (struct virtio_pci_common_cfg) */
enum {
    CC_DFSELECT = 0x00,
    CC_DF = 0x04,
    CC_GFSELECT = 0x08,
    CC_GF = 0x0c,
    CC_MSIX_CONFIG = 0x10,
    CC_NUM_QUEUES = 0x12,
    CC_STATUS = 0x14,
    CC_CFG_GENERATION = 0x15,
    CC_Q_SELECT = 0x16,
    CC_Q_SIZE = 0x18,
    CC_Q_MSIX = 0x1a,
    CC_Q_ENABLE = 0x1c,
    CC_Q_NOTIFY_OFF = 0x1e,
    CC_Q_DESC = 0x20,
    CC_Q_DRIVER = 0x28,
    CC_Q_DEVICE = 0x30,
};

/* the transport-level features this implementation offers in addition to the device's */
#define TRANSPORT_FEATURES                                                                   \
    ((1ull << QV_VIRTIO_F_VERSION_1) | (1ull << QV_VIRTIO_F_INDIRECT_DESC) |                 \
     (1ull << QV_VIRTIO_F_EVENT_IDX))

struct queue_regs {
    uint16_t size;
    uint16_t msix_vector;
    uint16_t enable;
    uint64_t desc, driver, device;
};

struct msix_entry {
    uint32_t addr_lo, addr_hi, data, ctrl;
};

struct qv_virtio_pci {
    pthread_mutex_t lock;
    struct qv_virtio_device *dev;
    const struct qv_guest_memory *mem;
    struct qv_virtio_pci_callbacks cb;

    uint8_t cfg[QV_VIRTIO_PCI_CONFIG_SIZE];
    uint8_t wmask[QV_VIRTIO_PCI_CONFIG_SIZE]; /* bits the driver may write */

    uint64_t offered;          /* device | transport features */
    uint32_t dfselect, gfselect;
    uint64_t driver_features;
    uint16_t msix_config;
    uint8_t status;
    uint8_t config_generation;
    uint16_t queue_select;
    struct queue_regs q[QV_VIRTIO_MAX_QUEUES];

    uint8_t isr;
    int intx_level; /* interrupt pending (ISR non-zero while MSI-X is off) */
    int intx_line;  /* what the intx callback was last told */
    uint16_t nvec;
    struct msix_entry msix[MSIX_MAX_VECTORS];
    uint64_t pba;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static uint32_t get_le(const uint8_t *p, unsigned size)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

/* ---- interrupts ---- */

static int msix_enabled(const struct qv_virtio_pci *pci)
{
    return get_le(pci->cfg + CAP_MSIX + 2, 2) & MSIX_CTRL_ENABLE;
}

static int msix_function_masked(const struct qv_virtio_pci *pci)
{
    return get_le(pci->cfg + CAP_MSIX + 2, 2) & MSIX_CTRL_MASKALL;
}

/* The line follows the interrupt status unless the driver set INTx Disable in the command
 * register; PCI status bit 3 shows the status either way. */
static void update_intx_line(struct qv_virtio_pci *pci)
{
    int line = pci->intx_level && !(get_le(pci->cfg + PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE);
    if (line == pci->intx_line)
        return;
    pci->intx_line = line;
    if (pci->cb.intx)
        pci->cb.intx(pci->cb.opaque, line);
}

static void set_intx(struct qv_virtio_pci *pci, int level)
{
    pci->intx_level = level;
    if (level)
        pci->cfg[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
    else
        pci->cfg[PCI_STATUS] &= (uint8_t)~PCI_STATUS_INTERRUPT;
    update_intx_line(pci);
}

static void msix_deliver(struct qv_virtio_pci *pci, uint16_t v)
{
    if (v >= pci->nvec)
        return;
    if (msix_function_masked(pci) || (pci->msix[v].ctrl & MSIX_ENTRY_MASKED)) {
        pci->pba |= 1ull << v; /* delivered when unmasked */
        return;
    }
    pci->pba &= ~(1ull << v);
    if (pci->cb.msi) {
        uint64_t addr = ((uint64_t)pci->msix[v].addr_hi << 32) | pci->msix[v].addr_lo;
        pci->cb.msi(pci->cb.opaque, v, addr, pci->msix[v].data);
    }
}

static void msix_flush_pending(struct qv_virtio_pci *pci)
{
    if (!msix_enabled(pci) || msix_function_masked(pci))
        return;
    for (uint16_t v = 0; v < pci->nvec; v++)
        if ((pci->pba >> v & 1) && !(pci->msix[v].ctrl & MSIX_ENTRY_MASKED))
            msix_deliver(pci, v);
}

/* isr_bit: 1 = queue interrupt, 2 = configuration change */
static void raise_irq(struct qv_virtio_pci *pci, uint16_t vector, uint8_t isr_bit)
{
    if (msix_enabled(pci)) {
        if (isr_bit == 2)
            pci->isr |= isr_bit;
        if (vector != QV_VIRTIO_MSI_NO_VECTOR)
            msix_deliver(pci, vector);
        return;
    }
    pci->isr |= isr_bit;
    set_intx(pci, 1);
}

static void config_interrupt(struct qv_virtio_pci *pci)
{
    if (pci->status & QV_VIRTIO_STATUS_DRIVER_OK)
        raise_irq(pci, pci->msix_config, 2);
}

/* called by the device with the lock held */
static void device_signal(void *opaque, unsigned int q)
{
    struct qv_virtio_pci *pci = opaque;
    if (q >= pci->dev->num_queues)
        return;
    if (qv_vq_should_notify(&pci->dev->queues[q]))
        raise_irq(pci, pci->q[q].msix_vector, 1);
}

static void device_config_changed(void *opaque)
{
    struct qv_virtio_pci *pci = opaque;
    pci->config_generation++;
    config_interrupt(pci);
}

/* A broken queue (hostile or buggy driver) stops the device until the driver resets it. */
static void check_broken(struct qv_virtio_pci *pci, unsigned int q)
{
    if (!pci->dev->queues[q].broken || (pci->status & QV_VIRTIO_STATUS_NEEDS_RESET))
        return;
    pci->status |= QV_VIRTIO_STATUS_NEEDS_RESET;
    config_interrupt(pci);
}

/* ---- reset and queues ---- */

static void device_reset(struct qv_virtio_pci *pci)
{
    struct qv_virtio_device *dev = pci->dev;
    if (dev->ops->reset)
        dev->ops->reset(dev);
    pci->status = 0;
    pci->dfselect = pci->gfselect = 0;
    pci->driver_features = 0;
    dev->features = 0;
    pci->msix_config = QV_VIRTIO_MSI_NO_VECTOR;
    pci->queue_select = 0;
    for (unsigned i = 0; i < dev->num_queues; i++) {
        pci->q[i] = (struct queue_regs){.size = dev->queue_max_size,
                                        .msix_vector = QV_VIRTIO_MSI_NO_VECTOR};
        qv_vq_reset(&dev->queues[i]);
    }
    pci->isr = 0;
    set_intx(pci, 0);
}

static int process_locked(struct qv_virtio_pci *pci, unsigned int q, uint64_t *deadline)
{
    struct qv_virtio_device *dev = pci->dev;
    *deadline = 0;
    if (q >= dev->num_queues || !(pci->status & QV_VIRTIO_STATUS_DRIVER_OK) ||
        (pci->status & QV_VIRTIO_STATUS_NEEDS_RESET) || !pci->q[q].enable ||
        dev->queues[q].broken)
        return 0;
    *deadline = dev->ops->process_queue(dev, q);
    check_broken(pci, q);
    return 1;
}

static void kick(struct qv_virtio_pci *pci, unsigned int q)
{
    if (pci->cb.queue_notify) {
        pci->cb.queue_notify(pci->cb.opaque, q);
    } else {
        uint64_t deadline;
        process_locked(pci, q, &deadline);
    }
}

static void enable_queue(struct qv_virtio_pci *pci, unsigned int q)
{
    struct qv_virtio_device *dev = pci->dev;
    struct queue_regs *r = &pci->q[q];
    struct qv_virtqueue *vq = &dev->queues[q];
    r->enable = 1;
    if (!(pci->status & QV_VIRTIO_STATUS_FEATURES_OK)) {
        /* the ring format depends on the negotiated features */
        qv_vq_reset(vq);
        qv_vq_set_broken(vq, QV_VQ_ERR_SIZE);
    } else {
        qv_vq_setup(vq, pci->mem, r->size, dev->queue_max_size, r->desc, r->driver, r->device,
                    dev->features);
    }
    check_broken(pci, q);
}

static void write_status(struct qv_virtio_pci *pci, uint8_t v)
{
    struct qv_virtio_device *dev = pci->dev;
    if (v == 0) {
        device_reset(pci);
        return;
    }
    uint8_t old = pci->status;
    /* bits are only added until a reset; NEEDS_RESET is the device's to set */
    uint8_t next = (uint8_t)(old | (v & (uint8_t)~QV_VIRTIO_STATUS_NEEDS_RESET));
    if ((next & QV_VIRTIO_STATUS_FEATURES_OK) && !(old & QV_VIRTIO_STATUS_FEATURES_OK)) {
        uint64_t f = pci->driver_features;
        int ok = (f & ~pci->offered) == 0 && ((f >> QV_VIRTIO_F_VERSION_1) & 1) &&
                 (old & QV_VIRTIO_STATUS_DRIVER);
        if (ok && dev->ops->set_features && dev->ops->set_features(dev, f) != 0)
            ok = 0;
        if (ok)
            dev->features = f;
        else
            next &= (uint8_t)~QV_VIRTIO_STATUS_FEATURES_OK; /* the driver sees the refusal */
    }
    if ((next & QV_VIRTIO_STATUS_DRIVER_OK) && !(next & QV_VIRTIO_STATUS_FEATURES_OK))
        next &= (uint8_t)~QV_VIRTIO_STATUS_DRIVER_OK;
    pci->status = next;
    if ((next & QV_VIRTIO_STATUS_DRIVER_OK) && !(old & QV_VIRTIO_STATUS_DRIVER_OK)) {
        /* buffers the driver queued before DRIVER_OK are picked up now */
        for (unsigned q = 0; q < dev->num_queues; q++)
            if (pci->q[q].enable && !dev->queues[q].broken)
                kick(pci, q);
    }
}

static int queue_writable(const struct qv_virtio_pci *pci)
{
    return pci->queue_select < pci->dev->num_queues && !pci->q[pci->queue_select].enable;
}

static uint16_t valid_vector(const struct qv_virtio_pci *pci, uint16_t v)
{
    return v < pci->nvec ? v : QV_VIRTIO_MSI_NO_VECTOR;
}

/* a 64-bit register accessed as a whole or as 32-bit halves */
static int addr64_access(uint32_t off, unsigned size, uint32_t base, unsigned *shift)
{
    if (size == 8 && off == base) {
        *shift = 0;
        return 1;
    }
    if (size == 4 && (off == base || off == base + 4)) {
        *shift = (off - base) * 8;
        return 1;
    }
    return 0;
}

static uint64_t common_read(struct qv_virtio_pci *pci, uint32_t off, unsigned size)
{
    struct qv_virtio_device *dev = pci->dev;
    unsigned qs = pci->queue_select;
    int qvalid = qs < dev->num_queues;
    unsigned shift;
    for (uint32_t base = CC_Q_DESC; base <= CC_Q_DEVICE; base += 8) {
        if (!addr64_access(off, size, base, &shift))
            continue;
        if (!qvalid)
            return 0;
        uint64_t v = base == CC_Q_DESC     ? pci->q[qs].desc
                     : base == CC_Q_DRIVER ? pci->q[qs].driver
                                           : pci->q[qs].device;
        v >>= shift;
        return size == 4 ? (uint32_t)v : v;
    }
    switch (off | (uint32_t)size << 16) {
    case CC_DFSELECT | 4u << 16:
        return pci->dfselect;
    case CC_DF | 4u << 16:
        return pci->dfselect < 2 ? (uint32_t)(pci->offered >> (32 * pci->dfselect)) : 0;
    case CC_GFSELECT | 4u << 16:
        return pci->gfselect;
    case CC_GF | 4u << 16:
        return pci->gfselect < 2 ? (uint32_t)(pci->driver_features >> (32 * pci->gfselect))
                                 : 0;
    case CC_MSIX_CONFIG | 2u << 16:
        return pci->msix_config;
    case CC_NUM_QUEUES | 2u << 16:
        return dev->num_queues;
    case CC_STATUS | 1u << 16:
        return pci->status;
    case CC_CFG_GENERATION | 1u << 16:
        return pci->config_generation;
    case CC_Q_SELECT | 2u << 16:
        return pci->queue_select;
    case CC_Q_SIZE | 2u << 16:
        return qvalid ? pci->q[qs].size : 0;
    case CC_Q_MSIX | 2u << 16:
        return qvalid ? pci->q[qs].msix_vector : QV_VIRTIO_MSI_NO_VECTOR;
    case CC_Q_ENABLE | 2u << 16:
        return qvalid ? pci->q[qs].enable : 0;
    case CC_Q_NOTIFY_OFF | 2u << 16:
        return qvalid ? qs : 0;
    default:
        return 0; /* unknown register or wrong width */
    }
}

static void common_write(struct qv_virtio_pci *pci, uint32_t off, unsigned size, uint64_t val)
{
    struct qv_virtio_device *dev = pci->dev;
    unsigned qs = pci->queue_select;
    unsigned shift;
    for (uint32_t base = CC_Q_DESC; base <= CC_Q_DEVICE; base += 8) {
        if (!addr64_access(off, size, base, &shift))
            continue;
        if (!queue_writable(pci) || (pci->status & QV_VIRTIO_STATUS_DRIVER_OK))
            return;
        uint64_t *reg = base == CC_Q_DESC     ? &pci->q[qs].desc
                        : base == CC_Q_DRIVER ? &pci->q[qs].driver
                                              : &pci->q[qs].device;
        if (size == 8)
            *reg = val;
        else
            *reg = (*reg & ~(0xffffffffull << shift)) | ((val & 0xffffffffull) << shift);
        return;
    }
    switch (off | (uint32_t)size << 16) {
    case CC_DFSELECT | 4u << 16:
        pci->dfselect = (uint32_t)val;
        break;
    case CC_GFSELECT | 4u << 16:
        pci->gfselect = (uint32_t)val;
        break;
    case CC_GF | 4u << 16:
        /* features are written between DRIVER and FEATURES_OK only */
        if (pci->gfselect < 2 && (pci->status & QV_VIRTIO_STATUS_DRIVER) &&
            !(pci->status & QV_VIRTIO_STATUS_FEATURES_OK)) {
            unsigned sh = 32 * pci->gfselect;
            pci->driver_features =
                (pci->driver_features & ~(0xffffffffull << sh)) | ((val & 0xffffffffull) << sh);
        }
        break;
    case CC_MSIX_CONFIG | 2u << 16:
        pci->msix_config = valid_vector(pci, (uint16_t)val);
        break;
    case CC_STATUS | 1u << 16:
        write_status(pci, (uint8_t)val);
        break;
    case CC_Q_SELECT | 2u << 16:
        pci->queue_select = (uint16_t)val;
        break;
    case CC_Q_SIZE | 2u << 16:
        /* checked (power of 2, <= max) when the queue is enabled */
        if (queue_writable(pci) && !(pci->status & QV_VIRTIO_STATUS_DRIVER_OK))
            pci->q[qs].size = (uint16_t)val;
        break;
    case CC_Q_MSIX | 2u << 16:
        if (qs < dev->num_queues)
            pci->q[qs].msix_vector = valid_vector(pci, (uint16_t)val);
        break;
    case CC_Q_ENABLE | 2u << 16:
        /* only 1 may be written; a queue is disabled by a device reset */
        if (val == 1 && queue_writable(pci))
            enable_queue(pci, qs);
        break;
    default:
        break; /* read-only, unknown or wrong width: ignored */
    }
}

static uint64_t msix_read(struct qv_virtio_pci *pci, uint32_t off, unsigned size)
{
    if (off >= QV_VIRTIO_PCI_MSIX_PBA_OFFSET - QV_VIRTIO_PCI_MSIX_TABLE_OFFSET) {
        uint32_t poff = off - (QV_VIRTIO_PCI_MSIX_PBA_OFFSET - QV_VIRTIO_PCI_MSIX_TABLE_OFFSET);
        if (size == 8 && poff == 0)
            return pci->pba;
        if (size == 4 && poff < 8)
            return (uint32_t)(pci->pba >> (8 * poff));
        return 0;
    }
    uint32_t v = off / 16, field = off % 16;
    if (v >= pci->nvec)
        return 0;
    const struct msix_entry *e = &pci->msix[v];
    uint32_t words[4] = {e->addr_lo, e->addr_hi, e->data, e->ctrl};
    if (size == 4)
        return words[field / 4];
    if (size == 8 && (field == 0 || field == 8))
        return words[field / 4] | (uint64_t)words[field / 4 + 1] << 32;
    return 0;
}

static void msix_write_word(struct qv_virtio_pci *pci, uint32_t v, uint32_t word, uint32_t val)
{
    struct msix_entry *e = &pci->msix[v];
    switch (word) {
    case 0:
        e->addr_lo = val;
        break;
    case 1:
        e->addr_hi = val;
        break;
    case 2:
        e->data = val;
        break;
    default:
        e->ctrl = val & MSIX_ENTRY_MASKED;
        msix_flush_pending(pci); /* unmasking delivers a pending message */
        break;
    }
}

static void msix_write(struct qv_virtio_pci *pci, uint32_t off, unsigned size, uint64_t val)
{
    if (off >= QV_VIRTIO_PCI_MSIX_PBA_OFFSET - QV_VIRTIO_PCI_MSIX_TABLE_OFFSET)
        return; /* PBA is read-only */
    uint32_t v = off / 16, field = off % 16;
    if (v >= pci->nvec)
        return;
    if (size == 4) {
        msix_write_word(pci, v, field / 4, (uint32_t)val);
    } else if (size == 8 && (field == 0 || field == 8)) {
        msix_write_word(pci, v, field / 4, (uint32_t)val);
        msix_write_word(pci, v, field / 4 + 1, (uint32_t)(val >> 32));
    }
}

static uint64_t bar_read_locked(struct qv_virtio_pci *pci, uint64_t offset, unsigned size)
{
    struct qv_virtio_device *dev = pci->dev;
    if ((size != 1 && size != 2 && size != 4 && size != 8) || (offset & (size - 1)) ||
        offset >= QV_VIRTIO_PCI_BAR_SIZE)
        return 0;
    uint32_t region = (uint32_t)offset & ~(QV_VIRTIO_PCI_REGION_SIZE - 1);
    uint32_t off = (uint32_t)offset & (QV_VIRTIO_PCI_REGION_SIZE - 1);
    switch (region) {
    case QV_VIRTIO_PCI_COMMON_OFFSET:
        return common_read(pci, off, size);
    case QV_VIRTIO_PCI_ISR_OFFSET:
        if (off == 0 && size == 1) {
            /* reading ISR acknowledges the interrupt */
            uint8_t v = pci->isr;
            pci->isr = 0;
            set_intx(pci, 0);
            return v;
        }
        return 0;
    case QV_VIRTIO_PCI_DEVICE_OFFSET:
        if (size <= dev->config_size && off <= dev->config_size - size && dev->ops->read_config) {
            uint8_t buf[8] = {0};
            dev->ops->read_config(dev, off, buf, size);
            uint64_t v = 0;
            for (unsigned i = 0; i < size; i++)
                v |= (uint64_t)buf[i] << (8 * i);
            return v;
        }
        return 0;
    case QV_VIRTIO_PCI_MSIX_TABLE_OFFSET:
    case QV_VIRTIO_PCI_MSIX_PBA_OFFSET:
        return msix_read(pci, (uint32_t)offset - QV_VIRTIO_PCI_MSIX_TABLE_OFFSET, size);
    default:
        return 0; /* notify region reads as 0 */
    }
}

static void bar_write_locked(struct qv_virtio_pci *pci, uint64_t offset, unsigned size,
                             uint64_t val)
{
    struct qv_virtio_device *dev = pci->dev;
    if ((size != 1 && size != 2 && size != 4 && size != 8) || (offset & (size - 1)) ||
        offset >= QV_VIRTIO_PCI_BAR_SIZE)
        return;
    uint32_t region = (uint32_t)offset & ~(QV_VIRTIO_PCI_REGION_SIZE - 1);
    uint32_t off = (uint32_t)offset & (QV_VIRTIO_PCI_REGION_SIZE - 1);
    switch (region) {
    case QV_VIRTIO_PCI_COMMON_OFFSET:
        common_write(pci, off, size, val);
        break;
    case QV_VIRTIO_PCI_DEVICE_OFFSET:
        if (size <= dev->config_size && off <= dev->config_size - size && dev->ops->write_config) {
            uint8_t buf[8];
            for (unsigned i = 0; i < size; i++)
                buf[i] = (uint8_t)(val >> (8 * i));
            dev->ops->write_config(dev, off, buf, size);
        }
        break;
    case QV_VIRTIO_PCI_NOTIFY_OFFSET: {
        unsigned q = off / QV_VIRTIO_PCI_NOTIFY_MULTIPLIER;
        if ((size == 2 || size == 4) && off % QV_VIRTIO_PCI_NOTIFY_MULTIPLIER == 0 &&
            q < dev->num_queues && pci->q[q].enable &&
            (pci->status & QV_VIRTIO_STATUS_DRIVER_OK))
            kick(pci, q);
        break;
    }
    case QV_VIRTIO_PCI_MSIX_TABLE_OFFSET:
    case QV_VIRTIO_PCI_MSIX_PBA_OFFSET:
        msix_write(pci, (uint32_t)offset - QV_VIRTIO_PCI_MSIX_TABLE_OFFSET, size, val);
        break;
    default:
        break;
    }
}

/* ---- PCI configuration space ---- */

static void add_vendor_cap(struct qv_virtio_pci *pci, uint8_t at, uint8_t next, uint8_t len,
                           uint8_t type, uint32_t offset, uint32_t length)
{
    uint8_t *c = pci->cfg + at;
    c[0] = CAP_ID_VENDOR;
    c[1] = next;
    c[2] = len;
    c[3] = type;
    c[4] = 0; /* bar */
    put32(c + 8, offset);
    put32(c + 12, length);
}

static void build_config_space(struct qv_virtio_pci *pci)
{
    struct qv_virtio_device *dev = pci->dev;
    uint8_t *c = pci->cfg;
    memset(pci->cfg, 0, sizeof pci->cfg);
    memset(pci->wmask, 0, sizeof pci->wmask);
    put16(c + PCI_VENDOR_ID, QV_VIRTIO_PCI_VENDOR);
    put16(c + PCI_DEVICE_ID, (uint16_t)(QV_VIRTIO_PCI_DEVICE_BASE + dev->device_id));
    put16(c + PCI_STATUS, PCI_STATUS_CAP_LIST);
    c[PCI_REVISION] = 1; /* modern (non-transitional) device */
    c[PCI_CLASS_PROG] = (uint8_t)dev->pci_class;
    c[PCI_CLASS_PROG + 1] = (uint8_t)(dev->pci_class >> 8);
    c[PCI_CLASS_PROG + 2] = (uint8_t)(dev->pci_class >> 16);
    c[PCI_HEADER_TYPE] = 0;
    /* BAR 0: 64-bit non-prefetchable memory; the size is the mask of writable bits */
    put32(c + PCI_BAR0, 0x4);
    put32(pci->wmask + PCI_BAR0, ~(QV_VIRTIO_PCI_BAR_SIZE - 1));
    put32(pci->wmask + PCI_BAR1, 0xffffffffu);
    put16(c + PCI_SUBSYS_VENDOR, QV_VIRTIO_PCI_VENDOR);
    put16(c + PCI_SUBSYS_ID, (uint16_t)(0x40 + dev->device_id)); /* >= 0x40: non-transitional */
    c[PCI_CAP_PTR] = CAP_MSIX;
    c[PCI_INT_PIN] = 1; /* INTA# */
    pci->wmask[PCI_INT_LINE] = 0xff;
    put16(pci->wmask + PCI_COMMAND, 0x0407); /* I/O, memory, bus master, INTx disable */

    /* MSI-X: table and PBA in BAR 0 */
    c[CAP_MSIX] = CAP_ID_MSIX;
    c[CAP_MSIX + 1] = CAP_COMMON;
    put16(c + CAP_MSIX + 2, (uint16_t)(pci->nvec - 1));
    put16(pci->wmask + CAP_MSIX + 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    put32(c + CAP_MSIX + 4, QV_VIRTIO_PCI_MSIX_TABLE_OFFSET);
    put32(c + CAP_MSIX + 8, QV_VIRTIO_PCI_MSIX_PBA_OFFSET);

    uint8_t after_isr = dev->config_size ? CAP_DEVICE : CAP_PCICFG;
    /* 0x3c: the 1.2 layout (queue_notif_config_data and queue_reset read as 0: the
     * features that give them meaning are not offered) */
    add_vendor_cap(pci, CAP_COMMON, CAP_NOTIFY, 16, QV_VIRTIO_PCI_CAP_COMMON_CFG,
                   QV_VIRTIO_PCI_COMMON_OFFSET, 0x3c);
    add_vendor_cap(pci, CAP_NOTIFY, CAP_ISR, 20, QV_VIRTIO_PCI_CAP_NOTIFY_CFG,
                   QV_VIRTIO_PCI_NOTIFY_OFFSET,
                   (uint32_t)dev->num_queues * QV_VIRTIO_PCI_NOTIFY_MULTIPLIER);
    put32(c + CAP_NOTIFY + 16, QV_VIRTIO_PCI_NOTIFY_MULTIPLIER);
    add_vendor_cap(pci, CAP_ISR, after_isr, 16, QV_VIRTIO_PCI_CAP_ISR_CFG,
                   QV_VIRTIO_PCI_ISR_OFFSET, 1);
    if (dev->config_size)
        add_vendor_cap(pci, CAP_DEVICE, CAP_PCICFG, 16, QV_VIRTIO_PCI_CAP_DEVICE_CFG,
                       QV_VIRTIO_PCI_DEVICE_OFFSET, dev->config_size);
    /* the PCI configuration access window: bar, offset, length and data are writable */
    add_vendor_cap(pci, CAP_PCICFG, 0, 20, QV_VIRTIO_PCI_CAP_PCI_CFG, 0, 0);
    pci->wmask[CAP_PCICFG + 4] = 0xff;
    put32(pci->wmask + CAP_PCICFG + 8, 0xffffffffu);
    put32(pci->wmask + CAP_PCICFG + 12, 0xffffffffu);
}

/* The VIRTIO_PCI_CAP_PCI_CFG window: an access to its data field is an access to BAR `bar`
 * at `offset` of `length` bytes (1, 2 or 4, naturally aligned). */
static int pcicfg_window(struct qv_virtio_pci *pci, uint64_t *offset, unsigned *len)
{
    uint8_t bar = pci->cfg[CAP_PCICFG + 4];
    uint32_t off = get_le(pci->cfg + CAP_PCICFG + 8, 4);
    uint32_t length = get_le(pci->cfg + CAP_PCICFG + 12, 4);
    if (bar != 0 || (length != 1 && length != 2 && length != 4) || (off & (length - 1)))
        return 0;
    *offset = off;
    *len = length;
    return 1;
}

static int config_access_ok(uint32_t offset, unsigned size)
{
    return (size == 1 || size == 2 || size == 4) && (offset & (size - 1)) == 0 &&
           offset < QV_VIRTIO_PCI_CONFIG_SIZE && offset + size <= QV_VIRTIO_PCI_CONFIG_SIZE;
}

uint32_t qv_virtio_pci_config_read(struct qv_virtio_pci *pci, uint32_t offset, unsigned size)
{
    if (!config_access_ok(offset, size))
        return 0;
    pthread_mutex_lock(&pci->lock);
    uint32_t v;
    if (offset >= CAP_PCICFG + 16 && offset < CAP_PCICFG + 20) {
        uint64_t boff;
        unsigned blen;
        v = 0;
        if (pcicfg_window(pci, &boff, &blen)) {
            uint64_t data = bar_read_locked(pci, boff, blen);
            uint8_t bytes[4] = {0};
            for (unsigned i = 0; i < blen; i++)
                bytes[i] = (uint8_t)(data >> (8 * i));
            v = get_le(bytes + (offset - (CAP_PCICFG + 16)), size);
        }
    } else {
        v = get_le(pci->cfg + offset, size);
    }
    pthread_mutex_unlock(&pci->lock);
    return v;
}

void qv_virtio_pci_config_write(struct qv_virtio_pci *pci, uint32_t offset, unsigned size,
                                uint32_t value)
{
    if (!config_access_ok(offset, size))
        return;
    pthread_mutex_lock(&pci->lock);
    if (offset == CAP_PCICFG + 16) {
        uint64_t boff;
        unsigned blen;
        if (pcicfg_window(pci, &boff, &blen) && size >= blen)
            bar_write_locked(pci, boff, blen, value);
        pthread_mutex_unlock(&pci->lock);
        return;
    }
    int was_enabled = msix_enabled(pci);
    for (unsigned i = 0; i < size; i++) {
        uint8_t m = pci->wmask[offset + i];
        uint8_t b = (uint8_t)(value >> (8 * i));
        pci->cfg[offset + i] = (uint8_t)((pci->cfg[offset + i] & ~m) | (b & m));
    }
    if (offset < CAP_MSIX + 4 && offset + size > CAP_MSIX + 2) {
        if (msix_enabled(pci) && !was_enabled)
            set_intx(pci, 0);
        msix_flush_pending(pci); /* function unmask or enable delivers pending vectors */
    }
    if (offset < PCI_COMMAND + 2 && offset + size > PCI_COMMAND)
        update_intx_line(pci);
    pthread_mutex_unlock(&pci->lock);
}

uint64_t qv_virtio_pci_bar_read(struct qv_virtio_pci *pci, uint64_t offset, unsigned size)
{
    pthread_mutex_lock(&pci->lock);
    uint64_t v = bar_read_locked(pci, offset, size);
    pthread_mutex_unlock(&pci->lock);
    return v;
}

void qv_virtio_pci_bar_write(struct qv_virtio_pci *pci, uint64_t offset, unsigned size,
                             uint64_t value)
{
    pthread_mutex_lock(&pci->lock);
    bar_write_locked(pci, offset, size, value);
    pthread_mutex_unlock(&pci->lock);
}

uint64_t qv_virtio_pci_bar_address(struct qv_virtio_pci *pci)
{
    pthread_mutex_lock(&pci->lock);
    uint64_t lo = get_le(pci->cfg + PCI_BAR0, 4) & ~0xfull;
    uint64_t hi = get_le(pci->cfg + PCI_BAR1, 4);
    pthread_mutex_unlock(&pci->lock);
    return hi << 32 | lo;
}

int qv_virtio_pci_memory_enabled(struct qv_virtio_pci *pci)
{
    pthread_mutex_lock(&pci->lock);
    int on = (pci->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY) != 0;
    pthread_mutex_unlock(&pci->lock);
    return on;
}

uint64_t qv_virtio_pci_process_queue(struct qv_virtio_pci *pci, unsigned int q)
{
    uint64_t deadline;
    pthread_mutex_lock(&pci->lock);
    process_locked(pci, q, &deadline);
    pthread_mutex_unlock(&pci->lock);
    return deadline;
}

void qv_virtio_pci_complete(struct qv_virtio_pci *pci, uint64_t *deadlines)
{
    struct qv_virtio_device *dev = pci->dev;
    if (!dev->ops->complete)
        return;
    pthread_mutex_lock(&pci->lock);
    uint64_t again = dev->ops->complete(dev);
    for (unsigned q = 0; q < dev->num_queues; q++) {
        uint64_t deadline;
        if (again >> q & 1 && process_locked(pci, q, &deadline) && deadlines)
            deadlines[q] = deadline;
        check_broken(pci, q);
    }
    pthread_mutex_unlock(&pci->lock);
}

void qv_virtio_pci_config_changed(struct qv_virtio_pci *pci)
{
    pthread_mutex_lock(&pci->lock);
    device_config_changed(pci);
    pthread_mutex_unlock(&pci->lock);
}

uint8_t qv_virtio_pci_status(struct qv_virtio_pci *pci)
{
    pthread_mutex_lock(&pci->lock);
    uint8_t s = pci->status;
    pthread_mutex_unlock(&pci->lock);
    return s;
}

struct qv_virtio_pci *qv_virtio_pci_new(struct qv_virtio_device *dev,
                                        const struct qv_guest_memory *mem,
                                        uint16_t msix_vectors,
                                        const struct qv_virtio_pci_callbacks *cb)
{
    if (!dev || !mem || !dev->ops || !dev->ops->process_queue || dev->num_queues == 0 ||
        dev->num_queues > QV_VIRTIO_MAX_QUEUES || dev->queue_max_size == 0 ||
        dev->queue_max_size > QV_VQ_MAX_SIZE ||
        (dev->queue_max_size & (dev->queue_max_size - 1)) ||
        dev->config_size > QV_VIRTIO_PCI_REGION_SIZE || msix_vectors == 0 ||
        msix_vectors > MSIX_MAX_VECTORS)
        return NULL;
    struct qv_virtio_pci *pci = calloc(1, sizeof *pci);
    if (!pci)
        return NULL;
    if (pthread_mutex_init(&pci->lock, NULL) != 0) {
        free(pci);
        return NULL;
    }
    pci->dev = dev;
    pci->mem = mem;
    if (cb)
        pci->cb = *cb;
    pci->nvec = msix_vectors;
    for (unsigned v = 0; v < msix_vectors; v++)
        pci->msix[v].ctrl = MSIX_ENTRY_MASKED; /* vectors start masked (PCI spec) */
    pci->offered = (dev->ops->features ? dev->ops->features(dev) : 0) | TRANSPORT_FEATURES;
    dev->transport = pci;
    dev->signal = device_signal;
    dev->config_changed = device_config_changed;
    build_config_space(pci);
    device_reset(pci);
    return pci;
}

void qv_virtio_pci_free(struct qv_virtio_pci *pci)
{
    if (!pci)
        return;
    pci->dev->signal = NULL;
    pci->dev->config_changed = NULL;
    pci->dev->transport = NULL;
    pthread_mutex_destroy(&pci->lock);
    free(pci);
}

/* --- the transport as a PCI function ---------------------------------------------------- */

static uint32_t v_cfg_read(void *d, uint32_t off, unsigned size)
{
    return qv_virtio_pci_config_read(d, off, size);
}

static void v_cfg_write(void *d, uint32_t off, unsigned size, uint32_t v)
{
    qv_virtio_pci_config_write(d, off, size, v);
}

static uint64_t v_bar_read(void *d, uint64_t off, unsigned size)
{
    return qv_virtio_pci_bar_read(d, off, size);
}

static void v_bar_write(void *d, uint64_t off, unsigned size, uint64_t v)
{
    qv_virtio_pci_bar_write(d, off, size, v);
}

static uint64_t v_bar_address(void *d)
{
    return qv_virtio_pci_bar_address(d);
}

static int v_memory_enabled(void *d)
{
    return qv_virtio_pci_memory_enabled(d);
}

const struct qv_pci_function_ops qv_virtio_pci_function_ops = {
    .config_read = v_cfg_read, .config_write = v_cfg_write, .bar_read = v_bar_read,
    .bar_write = v_bar_write, .bar_address = v_bar_address, .memory_enabled = v_memory_enabled};
