/* vCPUs: one thread each running KVM_RUN and dispatching its exits. The kick signal is
 * blocked in the thread and unblocked only inside KVM_RUN (KVM_SET_SIGNAL_MASK), so a stop
 * request interrupts the guest and never a device handler. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm/vm_internal.h"
#include "quantavirt/boot_kvm.h"
#include "quantavirt/errors.h"

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;

static void kick_handler(int sig)
{
    (void)sig; /* only there to interrupt KVM_RUN */
}

static void install_kick_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(QV_KICK_SIGNAL, &sa, NULL);
}

int qv_vcpu_create(struct qv_vm *vm, uint32_t id, char *err, size_t errlen)
{
    struct qv_vcpu *v = &vm->vcpus[id];
    v->vm = vm;
    v->id = id;
    v->apic_id = vm->apic_ids[id];
    v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->apic_id);
    if (v->fd < 0) {
        snprintf(err, errlen, "KVM_CREATE_VCPU %" PRIu32 " (APIC id %" PRIu32 "): %s", id,
                 v->apic_id, strerror(errno));
        return QV_ERR_KVM;
    }
    void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (run == MAP_FAILED) {
        snprintf(err, errlen, "mmap of vCPU %" PRIu32 " run area: %s", id, strerror(errno));
        return QV_ERR_KVM;
    }
    v->run = run;
    return qv_cpuid_apply(vm, v, err, errlen);
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint64_t base, uint32_t limit,
                    uint8_t type, uint8_t s_flag, uint8_t db, uint8_t l, uint8_t g)
{
    memset(s, 0, sizeof(*s));
    s->selector = sel;
    s->base = base;
    s->limit = limit;
    s->type = type;
    s->s = s_flag;
    s->present = 1;
    s->db = db;
    s->l = l;
    s->g = g;
}

int qv_vcpu_apply_boot_state(struct qv_vcpu *v, const struct qv_boot_cpu_state *st)
{
    struct kvm_sregs sregs;
    struct kvm_regs regs;
    if (ioctl(v->fd, KVM_GET_SREGS, &sregs) != 0)
        return QV_ERR_KVM;
    if (st->kernel_format) {
        /* A loader's state (csrc/boot): segment caches decoded from the GDT it wrote. */
        if (qv_boot_kvm_sregs(v->vm->ram, v->vm->low_size, st, &sregs) != 0)
            return QV_ERR_INVAL;
        qv_boot_kvm_regs(st, &regs);
        if (ioctl(v->fd, KVM_SET_SREGS, &sregs) != 0 || ioctl(v->fd, KVM_SET_REGS, &regs) != 0)
            return QV_ERR_KVM;
        return QV_SUCCESS;
    }
    memset(&regs, 0, sizeof(regs));
    regs.rflags = st->rflags | 0x2; /* bit 1 is reserved and always set */
    regs.rsp = st->rsp;
    regs.rsi = st->rsi;
    regs.rbx = st->rbx;
    switch (st->mode) {
    case QV_BOOT_REAL16: {
        if (st->rip > 0xfffff)
            return QV_ERR_INVAL;
        uint16_t cs = (uint16_t)((st->rip >> 4) & 0xf000);
        set_seg(&sregs.cs, cs, (uint64_t)cs << 4, 0xffff, 0xb, 1, 0, 0, 0);
        struct kvm_segment data;
        set_seg(&data, 0, 0, 0xffff, 0x3, 1, 0, 0, 0);
        sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
        regs.rip = st->rip - ((uint64_t)cs << 4);
        sregs.cr0 = st->cr0 ? st->cr0 : 0x60000010;
        sregs.cr0 &= ~1ULL;
        sregs.cr4 = 0;
        sregs.efer = 0;
        break;
    }
    case QV_BOOT_PROT32:
    case QV_BOOT_LONG64: {
        bool lm = st->mode == QV_BOOT_LONG64;
        set_seg(&sregs.cs, st->code_selector, 0, 0xffffffff, 0xb, 1, lm ? 0 : 1, lm ? 1 : 0, 1);
        struct kvm_segment data;
        set_seg(&data, st->data_selector, 0, 0xffffffff, 0x3, 1, 1, 0, 1);
        sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
        /* A valid busy TSS keeps VMX entry checks happy on hardware. */
        set_seg(&sregs.tr, 0, 0, 0xffff, 0xb, 0, 0, 0, 0);
        sregs.gdt.base = st->gdt_base;
        sregs.gdt.limit = st->gdt_limit;
        sregs.cr0 = (st->cr0 ? st->cr0 : 0x11) | 0x1; /* PE */
        sregs.cr3 = st->cr3;
        sregs.cr4 = st->cr4;
        sregs.efer = st->efer;
        if (lm) {
            sregs.cr0 |= 0x80000000ULL;   /* PG */
            sregs.cr4 |= 0x20;            /* PAE */
            sregs.efer |= 0x500;          /* LME | LMA */
        }
        regs.rip = st->rip;
        break;
    }
    default:
        return QV_ERR_INVAL;
    }
    if (ioctl(v->fd, KVM_SET_SREGS, &sregs) != 0)
        return QV_ERR_KVM;
    if (ioctl(v->fd, KVM_SET_REGS, &regs) != 0)
        return QV_ERR_KVM;
    return QV_SUCCESS;
}

void qv_vcpu_dump_regs(struct qv_vcpu *v, char *buf, size_t len)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (ioctl(v->fd, KVM_GET_REGS, &r) != 0 || ioctl(v->fd, KVM_GET_SREGS, &s) != 0) {
        snprintf(buf, len, "vCPU %" PRIu32 ": registers unavailable: %s", v->id, strerror(errno));
        return;
    }
    struct kvm_mp_state mp = {.mp_state = UINT32_MAX};
    (void)ioctl(v->fd, KVM_GET_MP_STATE, &mp); /* best effort: UINT32_MAX when unknown */
    snprintf(buf, len,
             "vCPU %" PRIu32 " registers (mp_state %" PRIu32 "):\n"
             " RIP=%016llx RSP=%016llx RFLAGS=%016llx\n"
             " RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
             " RSI=%016llx RDI=%016llx RBP=%016llx\n"
             " R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
             " R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
             " CS=%04x base=%016llx l=%u db=%u dpl=%u  SS=%04x  DS=%04x  TR=%04x\n"
             " CR0=%016llx CR2=%016llx CR3=%016llx CR4=%016llx EFER=%016llx\n"
             " GDT=%016llx/%04x IDT=%016llx/%04x",
             v->id, mp.mp_state, (unsigned long long)r.rip, (unsigned long long)r.rsp,
             (unsigned long long)r.rflags, (unsigned long long)r.rax, (unsigned long long)r.rbx,
             (unsigned long long)r.rcx, (unsigned long long)r.rdx, (unsigned long long)r.rsi,
             (unsigned long long)r.rdi, (unsigned long long)r.rbp, (unsigned long long)r.r8,
             (unsigned long long)r.r9, (unsigned long long)r.r10, (unsigned long long)r.r11,
             (unsigned long long)r.r12, (unsigned long long)r.r13, (unsigned long long)r.r14,
             (unsigned long long)r.r15, s.cs.selector, (unsigned long long)s.cs.base, s.cs.l,
             s.cs.db, s.cs.dpl, s.ss.selector, s.ds.selector, s.tr.selector,
             (unsigned long long)s.cr0, (unsigned long long)s.cr2, (unsigned long long)s.cr3,
             (unsigned long long)s.cr4, (unsigned long long)s.efer,
             (unsigned long long)s.gdt.base, s.gdt.limit, (unsigned long long)s.idt.base,
             s.idt.limit);
}

static void fail_with_dump(struct qv_vcpu *v, int code, const char *what)
{
    char dump[1536];
    qv_vcpu_dump_regs(v, dump, sizeof(dump));
    qv_vm_log(v->vm, "ERROR", "%s\n%s", what, dump);
    qv_vm_request_exit(v->vm, QV_EXIT_ERROR, code, 0, "%s\n%s", what, dump);
}

static bool handle_io(struct qv_vcpu *v)
{
    struct kvm_run *run = v->run;
    uint32_t size = run->io.size;
    uint64_t total = (uint64_t)run->io.count * size;
    /* The kernel fills these; check them anyway before touching the shared page. */
    if ((size != 1 && size != 2 && size != 4) || run->io.data_offset >= v->vm->run_size ||
        total > v->vm->run_size - run->io.data_offset) {
        fail_with_dump(v, QV_ERR_KVM, "KVM_EXIT_IO with an inconsistent data area");
        return false;
    }
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
    v->pio_exits++;
    for (uint32_t i = 0; i < run->io.count; i++) {
        if (!qv_bus_dispatch(&v->vm->bus, QV_BUS_PIO, run->io.port, data + (size_t)i * size, size,
                             is_write))
            v->unhandled_pio++;
    }
    return true;
}

static bool handle_mmio(struct qv_vcpu *v)
{
    struct kvm_run *run = v->run;
    if (run->mmio.len == 0 || run->mmio.len > 8) {
        fail_with_dump(v, QV_ERR_KVM, "KVM_EXIT_MMIO with an invalid length");
        return false;
    }
    v->mmio_exits++;
    if (!qv_bus_dispatch(&v->vm->bus, QV_BUS_MMIO, run->mmio.phys_addr, run->mmio.data,
                         run->mmio.len, run->mmio.is_write != 0))
        v->unhandled_mmio++;
    return true;
}

static bool handle_internal_error(struct qv_vcpu *v)
{
    struct kvm_run *run = v->run;
    char what[512];
    if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
        if (v->vm->cfg.emulation_fallback) {
            char why[384];
            if (qv_emulate_complete(v, why, sizeof(why)) == QV_SUCCESS)
                return true;
            snprintf(what, sizeof(what), "emulation failure not completed: %s", why);
        } else {
            snprintf(what, sizeof(what), "KVM emulation failure (fallback disabled)");
        }
    } else {
        snprintf(what, sizeof(what), "KVM internal error, suberror %" PRIu32,
                 run->internal.suberror);
    }
    fail_with_dump(v, QV_ERR_GUEST, what);
    return false;
}

static void *vcpu_thread(void *arg)
{
    struct qv_vcpu *v = arg;
    struct qv_vm *vm = v->vm;
    bool go = true;
    atomic_store(&v->tid, (int)syscall(SYS_gettid));
    char name[16];
    snprintf(name, sizeof(name), "qv-vcpu%" PRIu32, v->id % 100000u);
    pthread_setname_np(pthread_self(), name); /* for per-thread CPU accounting (top, /proc) */
    char why[256];
    int prc = qv_affinity_apply(v, why, sizeof(why));
    if (prc) {
        qv_vm_request_exit(vm, QV_EXIT_ERROR, prc, 0, "%s", why);
        go = false;
    }
    while (go && !atomic_load(&vm->stopping)) {
        qv_vcpu_maybe_park(v);
        if (atomic_load(&vm->stopping))
            break;
        int r = ioctl(v->fd, KVM_RUN, 0);
        if (r < 0) {
            int e = errno;
            /* EINTR: kicked; EAGAIN: an AP right after SIPI (the backend asks once more). */
            if (e == EAGAIN)
                v->run_eagain++;
            if (e == EINTR || e == EAGAIN)
                continue;
            char msg[128];
            snprintf(msg, sizeof(msg), "KVM_RUN failed: %s", strerror(e));
            fail_with_dump(v, QV_ERR_KVM, msg);
            break;
        }
        uint32_t reason = v->run->exit_reason;
        v->exits_by_reason[reason < QV_STAT_EXIT_KINDS ? reason : QV_STAT_EXIT_KINDS - 1]++;
        switch (reason) {
        case KVM_EXIT_IO:
            go = handle_io(v);
            break;
        case KVM_EXIT_MMIO:
            go = handle_mmio(v);
            break;
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            go = handle_internal_error(v);
            break;
        case KVM_EXIT_SHUTDOWN:
            fail_with_dump(v, QV_ERR_GUEST, "guest triple fault (KVM_EXIT_SHUTDOWN)");
            go = false;
            break;
        case KVM_EXIT_SYSTEM_EVENT:
            switch (v->run->system_event.type) {
            case KVM_SYSTEM_EVENT_SHUTDOWN:
                qv_vm_request_exit(vm, QV_EXIT_POWEROFF, 0, 0, "guest powered off");
                break;
            case KVM_SYSTEM_EVENT_RESET:
                qv_vm_request_exit(vm, QV_EXIT_RESET, 0, 0, "guest reset");
                break;
            default:
                fail_with_dump(v, QV_ERR_GUEST, "guest crash system event");
                break;
            }
            go = false;
            break;
        case KVM_EXIT_HLT:
            fail_with_dump(v, QV_ERR_GUEST, "vCPU halted with no interrupt controller");
            go = false;
            break;
        case KVM_EXIT_FAIL_ENTRY: {
            char msg[128];
            snprintf(msg, sizeof(msg), "VM entry failed, hardware reason 0x%llx",
                     (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
            fail_with_dump(v, QV_ERR_KVM, msg);
            go = false;
            break;
        }
        default: {
            char msg[64];
            snprintf(msg, sizeof(msg), "unexpected KVM exit reason %" PRIu32, reason);
            fail_with_dump(v, QV_ERR_KVM, msg);
            go = false;
            break;
        }
        }
    }
    pthread_mutex_lock(&vm->lock);
    vm->running--;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    return NULL;
}

int qv_vcpu_start(struct qv_vcpu *v)
{
    pthread_once(&kick_once, install_kick_handler);
    sigset_t block, old, inrun;
    sigemptyset(&block);
    sigaddset(&block, QV_KICK_SIGNAL);
    /* The thread inherits a mask with the kick blocked ... */
    pthread_sigmask(SIG_BLOCK, &block, &old);
    /* ... and KVM_RUN unblocks it: the mask during KVM_RUN is the old one minus the kick. */
    inrun = old;
    sigdelset(&inrun, QV_KICK_SIGNAL);
    struct {
        struct kvm_signal_mask m;
        uint8_t set[8];
    } sm;
    sm.m.len = 8; /* the kernel's sigset_t on x86-64 */
    memcpy(sm.set, &inrun, 8);
    int rc = QV_SUCCESS;
    if (ioctl(v->fd, KVM_SET_SIGNAL_MASK, &sm) != 0) {
        rc = QV_ERR_KVM;
    } else if (pthread_create(&v->thread, NULL, vcpu_thread, v) != 0) {
        rc = QV_ERR_NOMEM;
    } else {
        v->thread_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

void qv_vcpu_kick(struct qv_vcpu *v)
{
    if (v->thread_started)
        pthread_kill(v->thread, QV_KICK_SIGNAL);
}

void qv_vcpu_join(struct qv_vcpu *v)
{
    if (v->thread_started) {
        pthread_join(v->thread, NULL);
        v->thread_started = false;
    }
}

void qv_vcpu_close(struct qv_vcpu *v)
{
    if (v->run) {
        munmap(v->run, v->vm->run_size);
        v->run = NULL;
    }
    if (v->fd >= 0) {
        close(v->fd);
        v->fd = -1;
    }
}
