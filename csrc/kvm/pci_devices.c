/* The engine side of the PCI devices: the host bridge on the VM's bus, virtio-pci functions
 * (blk, console, rng, balloon) with their interrupts and queue notifications wired to KVM.
 *
 * - Interrupts: with KVM_CAP_IRQ_ROUTING and KVM_CAP_IRQFD each MSI-X vector a function uses
 *   gets a GSI with an MSI route and an irqfd; sending the message is a write to the eventfd.
 *   The route is compared with the table entry (address, data) at every delivery and the
 *   GSI table re-sent when the guest changed it, so it is always the message the guest wrote.
 *   Masking stays in the transport (a masked vector sets its PBA bit and is sent on unmask).
 *   Without those capabilities (or if a routing update fails) KVM_SIGNAL_MSI sends it.
 * - Kicks: with KVM_CAP_IOEVENTFD every queue's notify address gets an eventfd (re-registered
 *   when the guest moves the BAR), so a kick costs the vCPU no exit to user space; an I/O
 *   thread (epoll) processes the queue. A notify write KVM does not match (other width) takes
 *   the MMIO exit and the transport wakes the same eventfd. Without ioeventfd the queue is
 *   processed inline on the vCPU thread.
 * - Rate limits: a device that defers (virtio-blk token buckets) returns a deadline; the I/O
 *   thread arms a timerfd for the earliest one. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/pci.h"
#include "kvm/vm_internal.h"
#include "quantavirt/acpi.h"
#include "quantavirt/errors.h"
#include "quantavirt/layout.h"
#include "quantavirt/virtio_balloon.h"
#include "quantavirt/virtio_blk.h"
#include "quantavirt/virtio_console.h"
#include "quantavirt/virtio_pci.h"
#include "quantavirt/virtio_rng.h"

#define MAX_VIRTIO 16
#define EV_STOP UINT64_MAX
#define EV_TIMER (UINT64_MAX - 1)
#define EV_COMPLETE 0xffu /* low byte of a function's key: its completion fd, not a queue */
#define CONSOLE_INPUT_MAX 4096
#define MAX_MSI_ROUTES 512
#define MSI_GSI_BASE QV_VM_IOAPIC_PINS /* after the IOAPIC's GSIs */
#define MAX_VECTORS (QV_VIRTIO_MAX_QUEUES + 1)

struct msi_route {
    uint32_t gsi;
    uint64_t addr;
    uint32_t data;
    int fd;               /* the irqfd */
};

struct virtio_fn {
    struct qv_vm *vm;
    int kind;             /* enum qv_virtio_kind */
    unsigned index;       /* position in vm->pcidev->fns */
    unsigned slot;
    struct qv_virtio_pci *pci;
    void *model;
    unsigned nq;
    int qfd[QV_VIRTIO_MAX_QUEUES];
    int cfd;              /* the device's completion fd (virtio-blk engines), -1 = none */
    uint64_t deadline[QV_VIRTIO_MAX_QUEUES];
    uint64_t mapped;      /* BAR base the ioeventfds are registered at, 0 = none */
    _Atomic uint64_t kicks_thread, kicks_exit, msis, irqfd_msis;
    int route[MAX_VECTORS]; /* index in qv_vm_pci.routes per MSI-X vector, -1 = none yet */
};

struct qv_vm_pci {
    struct qv_pci_host *host;
    struct qv_guest_memory mem;
    struct virtio_fn *fns[MAX_VIRTIO];
    unsigned nfns;
    bool ioeventfd;       /* KVM_CAP_IOEVENTFD */
    bool any_length;      /* KVM_CAP_IOEVENTFD_ANY_LENGTH */
    int epfd, stopfd, timerfd;
    pthread_t thread;
    bool thread_started;
    /* virtio-console input typed by the host, pulled by the device's input callback */
    pthread_mutex_t in_lock;
    uint8_t in_buf[CONSOLE_INPUT_MAX];
    size_t in_len;
    struct virtio_fn *console;
    struct virtio_fn *balloon;
    uint64_t next_bar;    /* firmware-style initial BAR placement */
    /* MSI routes + irqfds (KVM_CAP_IRQ_ROUTING and KVM_CAP_IRQFD); shared by every
     * function, so under route_lock (deliveries come from vCPU and I/O threads) */
    bool irqfd;
    pthread_mutex_t route_lock;
    struct msi_route routes[MAX_MSI_ROUTES];
    unsigned nroutes;
    /* INTx (MSI-X off): functions asserting INTA, per _PRT GSI (slots share GSIs) */
    pthread_mutex_t intx_lock;
    uint32_t intx_asserted[QV_PCI_INTX_GSIS];
};


/* --- interrupts and kicks ------------------------------------------------------------- */

/* The whole GSI table: the PC wiring plus every MSI route (route_lock held). */
static int commit_routes(struct qv_vm *vm)
{
    struct qv_vm_pci *p = vm->pcidev;
    size_t bytes = sizeof(struct kvm_irq_routing) +
                   (QV_VM_BASE_ROUTES + p->nroutes) * sizeof(struct kvm_irq_routing_entry);
    struct kvm_irq_routing *t = calloc(1, bytes);
    if (!t)
        return -1;
    uint32_t n = qv_vm_base_routes(t->entries);
    for (unsigned i = 0; i < p->nroutes; i++, n++) {
        t->entries[n].gsi = p->routes[i].gsi;
        t->entries[n].type = KVM_IRQ_ROUTING_MSI;
        t->entries[n].u.msi.address_lo = (uint32_t)p->routes[i].addr;
        t->entries[n].u.msi.address_hi = (uint32_t)(p->routes[i].addr >> 32);
        t->entries[n].u.msi.data = p->routes[i].data;
    }
    t->nr = n;
    int rc = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, t);
    free(t);
    return rc;
}

/* Send through the vector's irqfd, creating or updating its route; false: use SIGNAL_MSI. */
static bool irqfd_deliver(struct virtio_fn *f, uint16_t vector, uint64_t addr, uint32_t data)
{
    struct qv_vm_pci *p = f->vm->pcidev;
    if (vector >= MAX_VECTORS)
        return false;
    pthread_mutex_lock(&p->route_lock);
    if (!p->irqfd) {
        pthread_mutex_unlock(&p->route_lock);
        return false;
    }
    int idx = f->route[vector];
    if (idx < 0) {
        if (p->nroutes >= MAX_MSI_ROUTES) {
            pthread_mutex_unlock(&p->route_lock);
            return false;
        }
        struct msi_route *r = &p->routes[p->nroutes];
        r->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->fd < 0) {
            pthread_mutex_unlock(&p->route_lock);
            return false;
        }
        r->gsi = MSI_GSI_BASE + p->nroutes;
        r->addr = addr;
        r->data = data;
        p->nroutes++;
        struct kvm_irqfd irqfd = {.fd = (uint32_t)r->fd, .gsi = r->gsi};
        if (commit_routes(f->vm) != 0 || ioctl(f->vm->vm_fd, KVM_IRQFD, &irqfd) != 0) {
            qv_vm_log(f->vm, "WARN", "MSI route / irqfd for GSI %u: %s; interrupts use "
                      "KVM_SIGNAL_MSI", r->gsi, strerror(errno));
            close(r->fd);
            p->nroutes--;
            p->irqfd = false;
            pthread_mutex_unlock(&p->route_lock);
            return false;
        }
        idx = (int)(r - p->routes);
        f->route[vector] = idx;
    } else if (p->routes[idx].addr != addr || p->routes[idx].data != data) {
        /* the guest rewrote the table entry since the route was made */
        p->routes[idx].addr = addr;
        p->routes[idx].data = data;
        if (commit_routes(f->vm) != 0) {
            qv_vm_log(f->vm, "WARN", "MSI route update: %s; interrupts use KVM_SIGNAL_MSI",
                      strerror(errno));
            p->irqfd = false;
            pthread_mutex_unlock(&p->route_lock);
            return false;
        }
    }
    uint64_t one = 1;
    ssize_t n = write(p->routes[idx].fd, &one, sizeof(one));
    pthread_mutex_unlock(&p->route_lock);
    return n == (ssize_t)sizeof(one);
}

static void fn_msi(void *opaque, uint16_t vector, uint64_t addr, uint32_t data)
{
    struct virtio_fn *f = opaque;
    f->msis++;
    if (irqfd_deliver(f, vector, addr, data)) {
        f->irqfd_msis++;
        return;
    }
    struct kvm_msi msi = {.address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32),
                          .data = data};
    /* A message the guest left nonsensical is its own problem; KVM refuses it harmlessly. */
    ioctl(f->vm->vm_fd, KVM_SIGNAL_MSI, &msi);
}

/* The transport's INTx level (MSI-X disabled): the function's INTA through the _PRT GSI,
 * level-triggered; a GSI shared by several slots is high while any of them asserts it. */
static void fn_intx(void *opaque, int level)
{
    struct virtio_fn *f = opaque;
    struct qv_vm_pci *p = f->vm->pcidev;
    uint32_t gsi = qv_pci_intx_gsi(f->slot, 0);
    uint32_t bit = 1u << f->slot, *mask = &p->intx_asserted[gsi - QV_PCI_INTX_GSI_BASE];
    pthread_mutex_lock(&p->intx_lock);
    uint32_t before = *mask;
    *mask = level ? before | bit : before & ~bit;
    if (!before != !*mask) {
        struct kvm_irq_level l = {.irq = gsi, .level = *mask != 0};
        ioctl(f->vm->vm_fd, KVM_IRQ_LINE, &l);
    }
    pthread_mutex_unlock(&p->intx_lock);
}

/* A notify write that reached user space: hand it to the I/O thread like an ioeventfd. */
static void fn_queue_notify(void *opaque, unsigned int q)
{
    struct virtio_fn *f = opaque;
    f->kicks_exit++;
    if (q < f->nq && f->qfd[q] >= 0) {
        uint64_t one = 1;
        ssize_t n = write(f->qfd[q], &one, sizeof(one));
        (void)n; /* a saturated counter already means "kicked" */
    }
}

static int ioeventfd(struct qv_vm *vm, uint64_t addr, int fd, bool assign)
{
    struct kvm_ioeventfd io = {.addr = addr, .len = vm->pcidev->any_length ? 0 : 2, .fd = fd,
                               .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN};
    return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io);
}

/* The bridge saw a BAR move (vCPU thread, bridge lock held). */
static void bar_moved(void *opaque, unsigned slot, uint64_t old_addr, uint64_t new_addr)
{
    struct qv_vm *vm = opaque;
    struct qv_vm_pci *p = vm->pcidev;
    if (!p->ioeventfd)
        return;
    for (unsigned i = 0; i < p->nfns; i++) {
        struct virtio_fn *f = p->fns[i];
        if (f->slot != slot)
            continue;
        (void)old_addr;
        for (unsigned q = 0; q < f->nq && f->mapped; q++)
            ioeventfd(vm, f->mapped + QV_VIRTIO_PCI_NOTIFY_OFFSET +
                      q * QV_VIRTIO_PCI_NOTIFY_MULTIPLIER, f->qfd[q], false);
        f->mapped = new_addr;
        for (unsigned q = 0; q < f->nq && new_addr; q++) {
            if (ioeventfd(vm, new_addr + QV_VIRTIO_PCI_NOTIFY_OFFSET +
                          q * QV_VIRTIO_PCI_NOTIFY_MULTIPLIER, f->qfd[q], true) != 0)
                qv_vm_log(vm, "WARN", "KVM_IOEVENTFD at %#" PRIx64 ": %s (kicks take the MMIO "
                          "exit)", new_addr, strerror(errno));
        }
    }
}

/* --- the I/O thread -------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void run_queue(struct virtio_fn *f, unsigned q)
{
    f->kicks_thread++;
    f->deadline[q] = qv_virtio_pci_process_queue(f->pci, q);
}

static void rearm_timer(struct qv_vm_pci *p)
{
    uint64_t first = 0;
    for (unsigned i = 0; i < p->nfns; i++)
        for (unsigned q = 0; q < p->fns[i]->nq; q++) {
            uint64_t d = p->fns[i]->deadline[q];
            if (d && (!first || d < first))
                first = d;
        }
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    if (first) { /* absolute; a past deadline fires at once */
        its.it_value.tv_sec = (time_t)(first / 1000000000ull);
        its.it_value.tv_nsec = (long)(first % 1000000000ull);
        if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(p->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void *io_thread(void *arg)
{
    struct qv_vm *vm = arg;
    struct qv_vm_pci *p = vm->pcidev;
    struct epoll_event ev[32];
    for (;;) {
        int n = epoll_wait(p->epfd, ev, 32, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            qv_vm_log(vm, "ERROR", "I/O thread: epoll_wait: %s", strerror(errno));
            break;
        }
        bool timer = false;
        for (int i = 0; i < n; i++) {
            uint64_t key = ev[i].data.u64, cnt;
            if (key == EV_STOP)
                return NULL;
            if (key == EV_TIMER) {
                ssize_t r = read(p->timerfd, &cnt, sizeof(cnt));
                (void)r;
                timer = true;
                continue;
            }
            struct virtio_fn *f = p->fns[key >> 8];
            unsigned q = key & 0xff;
            if (q == EV_COMPLETE) {
                ssize_t r = read(f->cfd, &cnt, sizeof(cnt));
                (void)r;
                qv_virtio_pci_complete(f->pci, f->deadline);
                continue;
            }
            ssize_t r = read(f->qfd[q], &cnt, sizeof(cnt));
            (void)r;
            run_queue(f, q);
        }
        if (timer) {
            uint64_t t = now_ns();
            for (unsigned i = 0; i < p->nfns; i++)
                for (unsigned q = 0; q < p->fns[i]->nq; q++)
                    if (p->fns[i]->deadline[q] && p->fns[i]->deadline[q] <= t)
                        run_queue(p->fns[i], q);
        }
        rearm_timer(p);
    }
    return NULL;
}

/* --- console input -------------------------------------------------------------------- */

static ssize_t console_input(void *opaque, void *buf, size_t len)
{
    struct qv_vm_pci *p = opaque;
    pthread_mutex_lock(&p->in_lock);
    size_t n = p->in_len < len ? p->in_len : len;
    memcpy(buf, p->in_buf, n);
    memmove(p->in_buf, p->in_buf + n, p->in_len - n);
    p->in_len -= n;
    pthread_mutex_unlock(&p->in_lock);
    return (ssize_t)n;
}

bool qv_pci_console_input(struct qv_vm *vm, const uint8_t *data, size_t len)
{
    struct qv_vm_pci *p = vm->pcidev;
    if (!p || !p->console)
        return false;
    pthread_mutex_lock(&p->in_lock);
    size_t room = CONSOLE_INPUT_MAX - p->in_len, n = len < room ? len : room;
    memcpy(p->in_buf + p->in_len, data, n);
    p->in_len += n;
    pthread_mutex_unlock(&p->in_lock);
    qv_virtio_pci_process_queue(p->console->pci, QV_VIRTIO_CONSOLE_RX);
    return true;
}

/* --- setup and teardown ---------------------------------------------------------------- */

int qv_pci_devices_init(struct qv_vm *vm, char *err, size_t errlen)
{
    struct qv_vm_pci *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return QV_ERR_NOMEM;
    }
    vm->pcidev = p;
    p->epfd = p->stopfd = p->timerfd = -1;
    pthread_mutex_init(&p->in_lock, NULL);
    pthread_mutex_init(&p->route_lock, NULL);
    pthread_mutex_init(&p->intx_lock, NULL);
    p->irqfd = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING) > 0 &&
               ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) > 0 &&
               !getenv("QV_NO_IRQFD"); /* tests force the KVM_SIGNAL_MSI fallback */
    p->mem.regions[0] = (struct qv_guest_region){.gpa = 0, .size = vm->low_size,
                                                 .host = vm->ram};
    p->mem.nregions = 1;
    if (vm->ram_size > vm->low_size) {
        p->mem.regions[1] = (struct qv_guest_region){
            .gpa = QV_HIGHMEM_START, .size = vm->ram_size - vm->low_size,
            .host = vm->ram + vm->low_size};
        p->mem.nregions = 2;
    }
    p->ioeventfd = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) > 0;
    p->any_length = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
    p->next_bar = QV_LAYOUT_MMIO_HOLE_START;
    int rc = qv_pci_host_create(&vm->bus, QV_LAYOUT_ECAM_BASE, 1u << 20, bar_moved, vm,
                                &p->host);
    if (rc) {
        snprintf(err, errlen, "PCI host bridge: %s", qv_strerror(rc));
        return rc;
    }
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (p->epfd < 0 || p->stopfd < 0 || p->timerfd < 0) {
        snprintf(err, errlen, "I/O thread fds: %s", strerror(errno));
        return QV_ERR_IO;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = EV_STOP};
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->stopfd, &e);
    e.data.u64 = EV_TIMER;
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->timerfd, &e);
    if (!p->ioeventfd)
        qv_vm_log(vm, "INFO", "no KVM_CAP_IOEVENTFD: virtio kicks are handled on the vCPU "
                  "thread");
    return QV_SUCCESS;
}

int qv_pci_devices_start(struct qv_vm *vm)
{
    struct qv_vm_pci *p = vm->pcidev;
    bool completions = false;
    for (unsigned i = 0; p && i < p->nfns; i++)
        completions |= p->fns[i]->cfd >= 0;
    /* the thread serves ioeventfd kicks and asynchronous disk completions */
    if (!p || (!p->ioeventfd && !completions) || p->nfns == 0)
        return QV_SUCCESS;
    if (pthread_create(&p->thread, NULL, io_thread, vm) != 0)
        return QV_ERR_NOMEM;
    p->thread_started = true;
    return QV_SUCCESS;
}

static void free_model(struct virtio_fn *f)
{
    switch (f->kind) {
    case QV_VIRTIO_KIND_BLK: qv_virtio_blk_free(f->model); break;
    case QV_VIRTIO_KIND_CONSOLE: qv_virtio_console_free(f->model); break;
    case QV_VIRTIO_KIND_RNG: qv_virtio_rng_free(f->model); break;
    case QV_VIRTIO_KIND_BALLOON: qv_virtio_balloon_free(f->model); break;
    default: break;
    }
}

void qv_pci_devices_destroy(struct qv_vm *vm)
{
    struct qv_vm_pci *p = vm->pcidev;
    if (!p)
        return;
    if (p->thread_started) {
        uint64_t one = 1;
        ssize_t n = write(p->stopfd, &one, sizeof(one));
        (void)n;
        pthread_join(p->thread, NULL);
    }
    qv_bus_set_fallback(&vm->bus, QV_BUS_MMIO, NULL, NULL);
    for (unsigned i = 0; i < p->nfns; i++) {
        struct virtio_fn *f = p->fns[i];
        qv_virtio_pci_free(f->pci);
        free_model(f);
        for (unsigned q = 0; q < f->nq; q++)
            if (f->qfd[q] >= 0)
                close(f->qfd[q]); /* closing the fd drops the KVM ioeventfd too */
        free(f);
    }
    qv_pci_host_destroy(p->host);
    if (p->epfd >= 0)
        close(p->epfd);
    if (p->stopfd >= 0)
        close(p->stopfd);
    if (p->timerfd >= 0)
        close(p->timerfd);
    for (unsigned i = 0; i < p->nroutes; i++)
        close(p->routes[i].fd); /* closing an irqfd's eventfd detaches it from KVM */
    pthread_mutex_destroy(&p->in_lock);
    pthread_mutex_destroy(&p->route_lock);
    pthread_mutex_destroy(&p->intx_lock);
    free(p);
    vm->pcidev = NULL;
}

/* --- adding functions ----------------------------------------------------------------- */

static int add_fn(struct qv_vm *vm, int kind, void *model, struct qv_virtio_device *dev,
                  int *index_out)
{
    struct qv_vm_pci *p = vm->pcidev;
    if (!p || vm->state != QV_VM_CREATED)
        return QV_ERR_STATE;
    if (p->nfns >= MAX_VIRTIO)
        return QV_ERR_NOMEM;
    struct virtio_fn *f = calloc(1, sizeof(*f));
    if (!f)
        return QV_ERR_NOMEM;
    f->vm = vm;
    f->kind = kind;
    f->model = model;
    f->index = p->nfns;
    f->nq = dev->num_queues;
    f->cfd = -1;
    for (unsigned v = 0; v < MAX_VECTORS; v++)
        f->route[v] = -1;
    for (unsigned q = 0; q < QV_VIRTIO_MAX_QUEUES; q++)
        f->qfd[q] = -1;
    int rc = QV_SUCCESS;
    for (unsigned q = 0; q < f->nq && !rc && p->ioeventfd; q++) {
        f->qfd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = ((uint64_t)f->index << 8) | q};
        if (f->qfd[q] < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, f->qfd[q], &e) != 0)
            rc = QV_ERR_IO;
    }
    struct qv_virtio_pci_callbacks cb = {
        .msi = fn_msi, .intx = fn_intx, .queue_notify = p->ioeventfd ? fn_queue_notify : NULL,
        .opaque = f};
    if (!rc) {
        f->pci = qv_virtio_pci_new(dev, &p->mem, (uint16_t)(f->nq + 1), &cb);
        if (!f->pci)
            rc = QV_ERR_NOMEM;
    }
    if (!rc)
        rc = qv_pci_host_add(p->host, &qv_virtio_pci_function_ops, f->pci,
                             QV_VIRTIO_PCI_BAR_SIZE, &f->slot);
    if (rc) {
        qv_virtio_pci_free(f->pci);
        for (unsigned q = 0; q < f->nq; q++)
            if (f->qfd[q] >= 0)
                close(f->qfd[q]);
        free(f);
        return rc;
    }
    /* Firmware-style initial placement in the 32-bit window (decoding off): a guest that
     * keeps firmware assignments finds the BAR set, one that reassigns moves it. */
    uint64_t bar = p->next_bar;
    p->next_bar += QV_VIRTIO_PCI_BAR_SIZE;
    qv_pci_config_write(p->host, 0, f->slot, 0, 0x10, 4, (uint32_t)bar);
    qv_pci_config_write(p->host, 0, f->slot, 0, 0x14, 4, (uint32_t)(bar >> 32));
    p->fns[p->nfns++] = f;
    if (kind == QV_VIRTIO_KIND_CONSOLE)
        p->console = f;
    if (kind == QV_VIRTIO_KIND_BALLOON)
        p->balloon = f;
    if (index_out)
        *index_out = (int)f->index;
    return QV_SUCCESS;
}

int qv_vm_add_virtio_blk(struct qv_vm *vm, struct qv_disk *disk,
                         const struct qv_virtio_blk_options *opts, int *index_out)
{
    if (!vm || !disk || !opts)
        return QV_ERR_INVAL;
    if (opts->num_queues > QV_VIRTIO_MAX_QUEUES - 1 || !vm->pcidev)
        return QV_ERR_INVAL;
    struct qv_virtio_blk *blk = NULL;
    char err[256];
    int rc = qv_virtio_blk_create(disk, opts, &blk, err, sizeof err);
    if (rc) {
        qv_vm_log(vm, "ERROR", "virtio-blk: %s", err[0] ? err : qv_strerror(rc));
        return rc;
    }
    int index = -1;
    rc = add_fn(vm, QV_VIRTIO_KIND_BLK, blk, qv_virtio_blk_device(blk), &index);
    if (rc) {
        qv_virtio_blk_free(blk);
        return rc;
    }
    struct virtio_fn *f = vm->pcidev->fns[index];
    int cfd = qv_virtio_blk_completion_fd(blk);
    if (cfd >= 0) {
        /* the function stays registered; the engine's fd is owned by the device */
        struct epoll_event e = {.events = EPOLLIN,
                                .data.u64 = ((uint64_t)f->index << 8) | EV_COMPLETE};
        if (epoll_ctl(vm->pcidev->epfd, EPOLL_CTL_ADD, cfd, &e) != 0)
            return QV_ERR_IO;
        f->cfd = cfd;
    }
    if (index_out)
        *index_out = index;
    return QV_SUCCESS;
}

int qv_vm_add_virtio_console(struct qv_vm *vm)
{
    if (!vm || !vm->pcidev)
        return QV_ERR_INVAL;
    if (vm->pcidev->console)
        return QV_ERR_EXIST;
    struct qv_virtio_console_options o = {.out_fd = vm->cfg.console_fd,
                                          .log_fd = vm->console_log_fd,
                                          .input = console_input, .opaque = vm->pcidev,
                                          .cols = 80, .rows = 25};
    struct qv_virtio_console *c = qv_virtio_console_new(&o);
    if (!c)
        return QV_ERR_NOMEM;
    int rc = add_fn(vm, QV_VIRTIO_KIND_CONSOLE, c, qv_virtio_console_device(c), NULL);
    if (rc)
        qv_virtio_console_free(c);
    return rc;
}

int qv_vm_add_virtio_rng(struct qv_vm *vm)
{
    if (!vm)
        return QV_ERR_INVAL;
    struct qv_virtio_rng *r = qv_virtio_rng_new(NULL, NULL);
    if (!r)
        return QV_ERR_NOMEM;
    int rc = add_fn(vm, QV_VIRTIO_KIND_RNG, r, qv_virtio_rng_device(r), NULL);
    if (rc)
        qv_virtio_rng_free(r);
    return rc;
}

int qv_vm_add_virtio_balloon(struct qv_vm *vm, int deflate_on_oom)
{
    if (!vm || !vm->pcidev)
        return QV_ERR_INVAL;
    if (vm->pcidev->balloon)
        return QV_ERR_EXIST;
    struct qv_virtio_balloon_options o = {.deflate_on_oom = deflate_on_oom};
    struct qv_virtio_balloon *b = qv_virtio_balloon_new(&o);
    if (!b)
        return QV_ERR_NOMEM;
    int rc = add_fn(vm, QV_VIRTIO_KIND_BALLOON, b, qv_virtio_balloon_device(b), NULL);
    if (rc)
        qv_virtio_balloon_free(b);
    return rc;
}

static struct virtio_fn *fn_at(struct qv_vm *vm, int index)
{
    if (!vm || !vm->pcidev || index < 0 || (unsigned)index >= vm->pcidev->nfns)
        return NULL;
    return vm->pcidev->fns[index];
}

int qv_vm_virtio_info(struct qv_vm *vm, int index, struct qv_vm_virtio_info *out)
{
    struct virtio_fn *f = fn_at(vm, index);
    if (!f || !out)
        return QV_ERR_INVAL;
    memset(out, 0, sizeof(*out));
    out->kind = f->kind;
    out->slot = f->slot;
    out->status = qv_virtio_pci_status(f->pci);
    out->bar = qv_virtio_pci_bar_address(f->pci);
    out->memory_enabled = qv_virtio_pci_memory_enabled(f->pci);
    out->num_queues = f->nq;
    out->ioeventfd = vm->pcidev->ioeventfd;
    out->thread_kicks = f->kicks_thread;
    out->exit_kicks = f->kicks_exit;
    out->msis = f->msis;
    out->irqfd_msis = f->irqfd_msis;
    return QV_SUCCESS;
}

int qv_vm_virtio_blk_stats(struct qv_vm *vm, int index, struct qv_virtio_blk_stats *out)
{
    struct virtio_fn *f = fn_at(vm, index);
    if (!f || !out || f->kind != QV_VIRTIO_KIND_BLK)
        return QV_ERR_INVAL;
    qv_virtio_blk_get_stats(f->model, out);
    return QV_SUCCESS;
}

int qv_vm_balloon_set_target(struct qv_vm *vm, uint64_t bytes)
{
    if (!vm || !vm->pcidev || !vm->pcidev->balloon)
        return QV_ERR_NODEV;
    if (bytes > vm->ram_size)
        return QV_ERR_INVAL;
    struct virtio_fn *f = vm->pcidev->balloon;
    qv_virtio_balloon_set_target(f->model, (uint32_t)(bytes / QV_VIRTIO_BALLOON_PAGE_SIZE));
    qv_virtio_pci_config_changed(f->pci);
    return QV_SUCCESS;
}

int qv_vm_balloon_info(struct qv_vm *vm, uint32_t *actual_pages,
                       struct qv_virtio_balloon_stats *stats, int refresh)
{
    if (!vm || !vm->pcidev || !vm->pcidev->balloon)
        return QV_ERR_NODEV;
    struct virtio_fn *f = vm->pcidev->balloon;
    if (refresh) {
        qv_virtio_balloon_request_stats(f->model);
        qv_virtio_pci_process_queue(f->pci, QV_VIRTIO_BALLOON_STATSQ);
    }
    if (actual_pages)
        *actual_pages = qv_virtio_balloon_actual(f->model);
    if (stats)
        qv_virtio_balloon_get_stats(f->model, stats);
    return QV_SUCCESS;
}

