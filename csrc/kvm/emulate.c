/* The completion fallback: instructions an emulating KVM backend cannot execute end KVM_RUN
 * with KVM_EXIT_INTERNAL_ERROR / KVM_INTERNAL_ERROR_EMULATION. The VMM decodes the
 * instruction, performs it on the vCPU state (registers through KVM_GET/SET_REGS, x87/SSE
 * state through KVM_GET/SET_FPU, memory operands through KVM_TRANSLATE and guest RAM), raises
 * the architectural exception where the instruction would fault, and advances RIP.
 *
 * Exit data layout found on kvm_pvm (and the upstream ABI, struct emulation_failure):
 * ndata = 8; data[0] = flags (bit 0: instruction bytes valid); data[1] byte 0 = the number of
 * bytes fetched (15 here: a fetch window, not the instruction length), data[1] bytes 1..7 and
 * data[2] = those bytes (RIP still points at the instruction); data[3..7] are unspecified
 * debug words. Without the flag the bytes are fetched from guest memory at CS:RIP.
 *
 * Handled: int3, clac, stac, popcnt, fwait, ldmxcsr, stmxcsr, fxsave, fxrstor, cmpxchg16b,
 * xgetbv: what kvm_pvm was seen to refuse (fxsave/fxrstor only in some addressing forms, e.g.
 * with a SIB byte). Anything else ends the VM with the bytes in the error text. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm/vm_internal.h"
#include "quantavirt/errors.h"

#define RFLAGS_CF (1ULL << 0)
#define RFLAGS_PF (1ULL << 2)
#define RFLAGS_AF (1ULL << 4)
#define RFLAGS_ZF (1ULL << 6)
#define RFLAGS_SF (1ULL << 7)
#define RFLAGS_OF (1ULL << 11)
#define RFLAGS_AC (1ULL << 18)
#define CR0_MP (1ULL << 1)
#define CR0_EM (1ULL << 2)
#define CR0_TS (1ULL << 3)
#define CR0_NE (1ULL << 5)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXSAVE (1ULL << 18)

enum { VEC_UD = 6, VEC_NM = 7, VEC_GP = 13, VEC_PF = 14, VEC_MF = 16, VEC_BP = 3 };
enum { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_NONE };

struct insn {
    uint8_t bytes[16];
    size_t avail;
    size_t pos;
    int code_bits;   /* 16, 32 or 64 */
    int addr_bits;
    bool p66, pf2, pf3, lock;
    int seg;
    uint8_t rex;
    /* ModRM */
    bool has_modrm;
    uint8_t mod, reg, rm; /* reg and rm include REX.R / REX.B */
    bool is_mem;
    bool rip_rel;
    int seg_default;
    uint64_t ea;          /* effective address without the RIP-relative part */
    uint64_t linear;
};

struct ctx {
    struct qv_vcpu *v;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct insn in;
    char *why;
    size_t whylen;
    bool faulted;         /* an exception was injected: do not advance RIP */
};

static int fetch(struct insn *in, uint8_t *out)
{
    if (in->pos >= in->avail || in->pos >= 15)
        return -1;
    *out = in->bytes[in->pos++];
    return 0;
}

static int fetch_n(struct insn *in, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b;
        if (fetch(in, &b))
            return -1;
        v |= (uint64_t)b << (8 * i);
    }
    *out = v;
    return 0;
}

static __u64 *gpr(struct kvm_regs *r, unsigned idx)
{
    switch (idx & 15) {
    case 0: return &r->rax;
    case 1: return &r->rcx;
    case 2: return &r->rdx;
    case 3: return &r->rbx;
    case 4: return &r->rsp;
    case 5: return &r->rbp;
    case 6: return &r->rsi;
    case 7: return &r->rdi;
    case 8: return &r->r8;
    case 9: return &r->r9;
    case 10: return &r->r10;
    case 11: return &r->r11;
    case 12: return &r->r12;
    case 13: return &r->r13;
    case 14: return &r->r14;
    default: return &r->r15;
    }
}

static uint64_t seg_base(struct ctx *c, int seg)
{
    const struct kvm_sregs *s = &c->sregs;
    if (c->in.code_bits == 64 && seg != SEG_FS && seg != SEG_GS)
        return 0;
    switch (seg) {
    case SEG_ES: return s->es.base;
    case SEG_CS: return s->cs.base;
    case SEG_SS: return s->ss.base;
    case SEG_FS: return s->fs.base;
    case SEG_GS: return s->gs.base;
    default: return s->ds.base;
    }
}

static int cpl(struct ctx *c)
{
    return c->sregs.cs.dpl & 3;
}

static void write_reg(struct ctx *c, unsigned idx, uint64_t val, int bits)
{
    __u64 *r = gpr(&c->regs, idx);
    if (bits == 16)
        *r = (*r & ~0xffffULL) | (val & 0xffff);
    else if (bits == 32)
        *r = val & 0xffffffffULL; /* 32-bit writes zero-extend */
    else
        *r = val;
}

static int fail(struct ctx *c, const char *what)
{
    char hex[64] = "";
    size_t n = c->in.avail < 15 ? c->in.avail : 15;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 3 * i, sizeof(hex) - 3 * i, "%02x ", c->in.bytes[i]);
    snprintf(c->why, c->whylen, "%s at RIP %#" PRIx64 " (%d-bit code), bytes: %s", what,
             (uint64_t)c->regs.rip, c->in.code_bits, hex);
    return QV_ERR_GUEST;
}

/* Queue an exception for the guest; RIP stays at the faulting instruction. */
static int inject(struct ctx *c, uint8_t vector, bool has_code, uint32_t code)
{
    struct kvm_vcpu_events ev;
    if (ioctl(c->v->fd, KVM_GET_VCPU_EVENTS, &ev) != 0)
        return fail(c, "KVM_GET_VCPU_EVENTS failed");
    ev.exception.injected = 1;
    ev.exception.nr = vector;
    ev.exception.has_error_code = has_code;
    ev.exception.error_code = code;
    ev.flags = 0;
    if (ioctl(c->v->fd, KVM_SET_VCPU_EVENTS, &ev) != 0)
        return fail(c, "KVM_SET_VCPU_EVENTS failed");
    c->faulted = true;
    return QV_SUCCESS;
}

static int inject_pf(struct ctx *c, uint64_t addr, bool write, bool present)
{
    c->sregs.cr2 = addr;
    if (ioctl(c->v->fd, KVM_SET_SREGS, &c->sregs) != 0)
        return fail(c, "KVM_SET_SREGS failed");
    uint32_t code = (present ? 1u : 0u) | (write ? 2u : 0u) | (cpl(c) == 3 ? 4u : 0u);
    return inject(c, VEC_PF, true, code);
}

/* Copy between the host buffer and guest linear memory, page by page. A translation miss
 * injects #PF and returns 1; 0 on success; a QV error when the target is not RAM. */
static int guest_access(struct ctx *c, uint64_t linear, void *buf, size_t len, bool write)
{
    uint8_t *p = buf;
    while (len) {
        size_t chunk = 4096 - (linear & 4095);
        if (chunk > len)
            chunk = len;
        struct kvm_translation tr = {.linear_address = linear};
        if (ioctl(c->v->fd, KVM_TRANSLATE, &tr) != 0)
            return fail(c, "KVM_TRANSLATE failed");
        if (!tr.valid || (write && !tr.writeable) || (cpl(c) == 3 && !tr.usermode)) {
            int rc = inject_pf(c, linear, write, tr.valid);
            return rc ? rc : 1;
        }
        uint8_t *h = qv_vm_gpa_ptr(c->v->vm, tr.physical_address, chunk);
        if (!h)
            return fail(c, "memory operand outside guest RAM");
        if (write)
            memcpy(h, p, chunk);
        else
            memcpy(p, h, chunk);
        linear += chunk;
        p += chunk;
        len -= chunk;
    }
    return 0;
}

static int decode_modrm(struct ctx *c)
{
    struct insn *in = &c->in;
    uint8_t m;
    if (fetch(in, &m))
        return -1;
    in->has_modrm = true;
    in->mod = m >> 6;
    in->reg = (uint8_t)(((m >> 3) & 7) | ((in->rex & 4) << 1));
    in->rm = m & 7;
    in->seg_default = SEG_DS;
    if (in->mod == 3) {
        in->rm |= (uint8_t)((in->rex & 1) << 3);
        return 0;
    }
    in->is_mem = true;
    uint64_t disp = 0;
    if (in->addr_bits == 16) {
        static const uint8_t base16[8] = {3, 3, 5, 5, 6, 7, 5, 3};   /* bx bx bp bp si di bp bx */
        static const int8_t index16[8] = {6, 7, 6, 7, -1, -1, -1, -1}; /* si di si di */
        uint64_t ea = 0;
        if (in->mod == 0 && in->rm == 6) {
            if (fetch_n(in, 2, &disp))
                return -1;
        } else {
            ea = *gpr(&c->regs, base16[in->rm]);
            if (index16[in->rm] >= 0)
                ea += *gpr(&c->regs, (unsigned)index16[in->rm]);
            if (in->rm == 2 || in->rm == 3 || in->rm == 6)
                in->seg_default = SEG_SS;
            if (in->mod == 1) {
                if (fetch_n(in, 1, &disp))
                    return -1;
                disp = (uint64_t)(int64_t)(int8_t)disp;
            } else if (in->mod == 2) {
                if (fetch_n(in, 2, &disp))
                    return -1;
            }
        }
        in->ea = (ea + disp) & 0xffff;
        return 0;
    }
    uint64_t ea = 0;
    unsigned rm = in->rm;
    if (rm == 4) {
        uint8_t sib;
        if (fetch(in, &sib))
            return -1;
        unsigned scale = sib >> 6;
        unsigned index = ((sib >> 3) & 7) | ((in->rex & 2) << 2);
        unsigned base = (sib & 7) | ((in->rex & 1) << 3);
        if (index != 4)
            ea += *gpr(&c->regs, index) << scale;
        if ((base & 7) == 5 && in->mod == 0) {
            if (fetch_n(in, 4, &disp))
                return -1;
            disp = (uint64_t)(int64_t)(int32_t)disp;
        } else {
            ea += *gpr(&c->regs, base);
            if ((base & 7) == 4 || (base & 7) == 5)
                in->seg_default = SEG_SS;
        }
    } else if (rm == 5 && in->mod == 0) {
        if (fetch_n(in, 4, &disp))
            return -1;
        disp = (uint64_t)(int64_t)(int32_t)disp;
        if (in->code_bits == 64)
            in->rip_rel = true;
    } else {
        unsigned base = rm | ((in->rex & 1) << 3);
        ea += *gpr(&c->regs, base);
        if (rm == 5)
            in->seg_default = SEG_SS;
    }
    if (in->mod == 1) {
        uint64_t d8;
        if (fetch_n(in, 1, &d8))
            return -1;
        disp = (uint64_t)(int64_t)(int8_t)d8;
    } else if (in->mod == 2) {
        if (fetch_n(in, 4, &disp))
            return -1;
        disp = (uint64_t)(int64_t)(int32_t)disp;
    }
    in->ea = ea + disp;
    return 0;
}

/* After the whole instruction is decoded: RIP-relative base, address-size wrap, segment. */
static void finish_address(struct ctx *c)
{
    struct insn *in = &c->in;
    if (!in->is_mem)
        return;
    uint64_t ea = in->ea;
    if (in->rip_rel)
        ea += c->regs.rip + in->pos;
    if (in->addr_bits == 32)
        ea &= 0xffffffffULL;
    else if (in->addr_bits == 16)
        ea &= 0xffff;
    int seg = in->seg != SEG_NONE ? in->seg : in->seg_default;
    in->linear = seg_base(c, seg) + ea;
    if (in->code_bits != 64)
        in->linear &= 0xffffffffULL;
}

static void count(struct ctx *c, enum qv_insn_kind k)
{
    c->v->completed_by_kind[k]++;
    if (c->v->vm->log) {
        char hex[48] = "";
        for (size_t i = 0; i < c->in.pos && i < 15; i++)
            snprintf(hex + 3 * i, sizeof(hex) - 3 * i, " %02x", c->in.bytes[i]);
        qv_vm_log(c->v->vm, "DEBUG", "vCPU %" PRIu32 " completed %s at RIP %#llx:%s", c->v->id,
                  qv_insn_kind_name(k), (unsigned long long)c->regs.rip, hex);
    }
}

/* x87/SSE availability checks shared by the FPU-state instructions. 1: exception injected. */
static int fpu_checks(struct ctx *c, bool sse)
{
    if (c->sregs.cr0 & CR0_EM)
        return inject(c, VEC_UD, false, 0) ? -1 : 1;
    if (sse && !(c->sregs.cr4 & CR4_OSFXSR))
        return inject(c, VEC_UD, false, 0) ? -1 : 1;
    if (c->sregs.cr0 & CR0_TS)
        return inject(c, VEC_NM, false, 0) ? -1 : 1;
    return 0;
}

static int do_popcnt(struct ctx *c)
{
    struct insn *in = &c->in;
    int bits = (in->rex & 8) ? 64 : in->p66 ? 16 : 32;
    if (in->code_bits == 16 && !(in->rex & 8))
        bits = in->p66 ? 32 : 16;
    finish_address(c);
    uint64_t src;
    if (in->is_mem) {
        src = 0;
        int r = guest_access(c, in->linear, &src, (size_t)bits / 8, false);
        if (r)
            return r > 0 ? 0 : r;
    } else {
        src = *gpr(&c->regs, in->rm);
    }
    if (bits < 64)
        src &= (1ULL << bits) - 1;
    uint64_t n = (uint64_t)__builtin_popcountll(src);
    write_reg(c, in->reg, n, bits);
    c->regs.rflags &= ~(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF);
    if (src == 0)
        c->regs.rflags |= RFLAGS_ZF;
    count(c, QV_INSN_POPCNT);
    return 0;
}

static int do_cmpxchg16b(struct ctx *c)
{
    struct insn *in = &c->in;
    finish_address(c);
    if (in->linear & 15)
        return inject(c, VEC_GP, true, 0);
    struct kvm_translation tr = {.linear_address = in->linear};
    if (ioctl(c->v->fd, KVM_TRANSLATE, &tr) != 0)
        return fail(c, "KVM_TRANSLATE failed");
    if (!tr.valid || !tr.writeable || (cpl(c) == 3 && !tr.usermode))
        return inject_pf(c, in->linear, true, tr.valid);
    /* 16-byte aligned, so inside one page and one host location. */
    uint8_t *h = qv_vm_gpa_ptr(c->v->vm, tr.physical_address, 16);
    if (!h)
        return fail(c, "cmpxchg16b operand outside guest RAM");
    uint64_t lo = c->regs.rax, hi = c->regs.rdx;
    uint8_t zf;
    /* The guest's other vCPUs may race on this location: do it locked on the host. */
    __asm__ volatile("lock cmpxchg16b %1\n\tsetz %0"
                     : "=q"(zf), "+m"(*(volatile uint64_t(*)[2])h), "+a"(lo), "+d"(hi)
                     : "b"((uint64_t)c->regs.rbx), "c"((uint64_t)c->regs.rcx)
                     : "memory", "cc");
    if (zf) {
        c->regs.rflags |= RFLAGS_ZF;
    } else {
        c->regs.rflags &= ~RFLAGS_ZF;
        c->regs.rax = lo;
        c->regs.rdx = hi;
    }
    count(c, QV_INSN_CMPXCHG16B);
    return 0;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* The vCPU's x87/SSE state as a 512-byte FXSAVE image. Through KVM_GET_XSAVE (whose legacy
 * region is that image) when KVM has it: on kvm_pvm, KVM_GET_FPU reports MXCSR as 0 and
 * KVM_SET_FPU ignores it, while the XSAVE interface carries it. KVM_GET/SET_FPU otherwise. */
struct fpstate {
    uint8_t *xsave; /* NULL: the kvm_fpu path */
    struct kvm_fpu fpu;
    uint8_t img[512];
};

static int fp_get(struct ctx *c, struct fpstate *f)
{
    memset(f, 0, sizeof(*f));
    int fd = c->v->fd;
    int kvm_fd = c->v->vm->kvm_fd;
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
        int sz2 = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
        size_t size = sz2 > (int)sizeof(struct kvm_xsave) ? (size_t)sz2 : sizeof(struct kvm_xsave);
        f->xsave = calloc(1, size);
        if (!f->xsave)
            return fail(c, "out of memory for the XSAVE area");
        unsigned long req = sz2 > 0 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
        if (ioctl(fd, req, f->xsave) != 0) {
            free(f->xsave);
            f->xsave = NULL;
            return fail(c, "KVM_GET_XSAVE failed");
        }
        memcpy(f->img, f->xsave, 512);
        return 0;
    }
    if (ioctl(fd, KVM_GET_FPU, &f->fpu) != 0)
        return fail(c, "KVM_GET_FPU failed");
    put16(f->img + 0, f->fpu.fcw);
    put16(f->img + 2, f->fpu.fsw);
    f->img[4] = f->fpu.ftwx;
    put16(f->img + 6, f->fpu.last_opcode);
    put64(f->img + 8, f->fpu.last_ip);
    put64(f->img + 16, f->fpu.last_dp);
    put32(f->img + 24, f->fpu.mxcsr);
    for (int i = 0; i < 8; i++)
        memcpy(f->img + 32 + 16 * i, f->fpu.fpr[i], 16);
    for (int i = 0; i < 16; i++)
        memcpy(f->img + 160 + 16 * i, f->fpu.xmm[i], 16);
    return 0;
}

static int fp_set(struct ctx *c, struct fpstate *f)
{
    if (f->xsave) {
        memcpy(f->xsave, f->img, 464);
        /* XSTATE_BV (header at byte 512): x87 and SSE now hold the written values. */
        put64(f->xsave + 512, get64(f->xsave + 512) | 3);
        return ioctl(c->v->fd, KVM_SET_XSAVE, f->xsave) == 0 ? 0 : fail(c, "KVM_SET_XSAVE failed");
    }
    f->fpu.fcw = get16(f->img + 0);
    f->fpu.fsw = get16(f->img + 2);
    f->fpu.ftwx = f->img[4];
    f->fpu.last_opcode = get16(f->img + 6);
    f->fpu.last_ip = get64(f->img + 8);
    f->fpu.last_dp = get64(f->img + 16);
    f->fpu.mxcsr = get32(f->img + 24);
    for (int i = 0; i < 8; i++)
        memcpy(f->fpu.fpr[i], f->img + 32 + 16 * i, 16);
    for (int i = 0; i < 16; i++)
        memcpy(f->fpu.xmm[i], f->img + 160 + 16 * i, 16);
    return ioctl(c->v->fd, KVM_SET_FPU, &f->fpu) == 0 ? 0 : fail(c, "KVM_SET_FPU failed");
}

/* The 0F AE group: fxsave, fxrstor, ldmxcsr, stmxcsr (memory forms only). */
static int do_group15_state(struct ctx *c, struct fpstate *f)
{
    struct insn *in = &c->in;
    unsigned op = in->reg & 7;
    uint32_t mask = c->v->vm->mxcsr_mask;
    bool x64 = in->code_bits == 64;
    bool wide = x64 && (in->rex & 8); /* fxsave64: 64-bit FIP/FDP */
    size_t len = x64 ? 416 : 288;     /* XMM8-15 exist only in 64-bit mode */
    uint8_t img[512];
    int r;
    switch (op) {
    case 0: /* fxsave */
        if (in->linear & 15)
            return inject(c, VEC_GP, true, 0);
        memcpy(img, f->img, sizeof(img));
        put32(img + 28, mask);
        if (!wide) {
            /* 32-bit format: FIP, FCS, FDP, FDS; KVM keeps no selectors, so 0. */
            put32(img + 12, 0);
            put32(img + 20, 0);
        }
        r = guest_access(c, in->linear, img, len, true);
        if (r)
            return r > 0 ? 0 : r;
        count(c, QV_INSN_FXSAVE);
        return 0;
    case 1: /* fxrstor */
        if (in->linear & 15)
            return inject(c, VEC_GP, true, 0);
        r = guest_access(c, in->linear, img, len, false);
        if (r)
            return r > 0 ? 0 : r;
        if (get32(img + 24) & ~mask)
            return inject(c, VEC_GP, true, 0);
        if (!wide) {
            put32(img + 12, 0);
            put32(img + 20, 0);
        }
        memcpy(f->img, img, 28);                 /* control/status words, pointers, MXCSR */
        memcpy(f->img + 32, img + 32, len - 32); /* ST0-7 and the XMM registers */
        if ((r = fp_set(c, f)))
            return r;
        count(c, QV_INSN_FXRSTOR);
        return 0;
    case 2: { /* ldmxcsr */
        uint32_t mx;
        r = guest_access(c, in->linear, &mx, 4, false);
        if (r)
            return r > 0 ? 0 : r;
        if (mx & ~mask)
            return inject(c, VEC_GP, true, 0);
        put32(f->img + 24, mx);
        if ((r = fp_set(c, f)))
            return r;
        count(c, QV_INSN_LDMXCSR);
        return 0;
    }
    case 3: { /* stmxcsr */
        uint32_t mx = get32(f->img + 24);
        r = guest_access(c, in->linear, &mx, 4, true);
        if (r)
            return r > 0 ? 0 : r;
        count(c, QV_INSN_STMXCSR);
        return 0;
    }
    default:
        return fail(c, "unsupported 0f ae form");
    }
}

static int do_group15(struct ctx *c)
{
    unsigned op = c->in.reg & 7;
    finish_address(c);
    int chk = fpu_checks(c, op == 2 || op == 3);
    if (chk)
        return chk < 0 ? QV_ERR_GUEST : 0;
    struct fpstate f;
    int rc = fp_get(c, &f);
    if (rc == 0)
        rc = do_group15_state(c, &f);
    free(f.xsave);
    return rc;
}

static int do_fwait(struct ctx *c)
{
    if ((c->sregs.cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS))
        return inject(c, VEC_NM, false, 0);
    struct fpstate f;
    int rc = fp_get(c, &f);
    if (rc)
        return rc;
    uint16_t fsw = get16(f.img + 2);
    free(f.xsave);
    /* A pending unmasked x87 exception (FSW.ES) is delivered here as #MF. */
    if ((fsw & 0x80) && (c->sregs.cr0 & CR0_NE))
        return inject(c, VEC_MF, false, 0);
    count(c, QV_INSN_FWAIT);
    return 0;
}

static int do_xgetbv(struct ctx *c)
{
    if (!(c->sregs.cr4 & CR4_OSXSAVE))
        return inject(c, VEC_UD, false, 0);
    uint32_t index = (uint32_t)c->regs.rcx;
    struct kvm_xcrs xcrs;
    if (ioctl(c->v->fd, KVM_GET_XCRS, &xcrs) != 0)
        return fail(c, "KVM_GET_XCRS failed");
    for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++) {
        if (xcrs.xcrs[i].xcr == index) {
            write_reg(c, 0, xcrs.xcrs[i].value & 0xffffffffULL, 32);
            write_reg(c, 2, xcrs.xcrs[i].value >> 32, 32);
            count(c, QV_INSN_XGETBV);
            return 0;
        }
    }
    return inject(c, VEC_GP, true, 0);
}

static int code_bits_of(const struct kvm_sregs *s)
{
    if (!(s->cr0 & 1))
        return 16;
    if ((s->efer & 0x400) && s->cs.l)
        return 64;
    return s->cs.db ? 32 : 16;
}

static int execute(struct ctx *c)
{
    struct insn *in = &c->in;
    in->seg = SEG_NONE;
    in->code_bits = code_bits_of(&c->sregs);
    bool a67 = false;
    uint8_t b;
    for (;;) {
        if (fetch(in, &b))
            return fail(c, "truncated instruction");
        switch (b) {
        case 0x66: in->p66 = true; in->rex = 0; continue;
        case 0x67: a67 = true; in->rex = 0; continue;
        case 0xf0: in->lock = true; in->rex = 0; continue;
        case 0xf2: in->pf2 = true; in->pf3 = false; in->rex = 0; continue;
        case 0xf3: in->pf3 = true; in->pf2 = false; in->rex = 0; continue;
        case 0x26: in->seg = SEG_ES; in->rex = 0; continue;
        case 0x2e: in->seg = SEG_CS; in->rex = 0; continue;
        case 0x36: in->seg = SEG_SS; in->rex = 0; continue;
        case 0x3e: in->seg = SEG_DS; in->rex = 0; continue;
        case 0x64: in->seg = SEG_FS; in->rex = 0; continue;
        case 0x65: in->seg = SEG_GS; in->rex = 0; continue;
        default: break;
        }
        if (in->code_bits == 64 && (b & 0xf0) == 0x40) {
            in->rex = b; /* only effective when the opcode follows directly */
            continue;
        }
        break;
    }
    if (in->code_bits == 64)
        in->addr_bits = a67 ? 32 : 64;
    else if (in->code_bits == 32)
        in->addr_bits = a67 ? 16 : 32;
    else
        in->addr_bits = a67 ? 32 : 16;

    if (b == 0xcc) { /* int3: the trap's return address is the next instruction */
        c->regs.rip += in->pos;
        if (in->code_bits != 64)
            c->regs.rip &= in->code_bits == 16 ? 0xffffULL : 0xffffffffULL;
        if (ioctl(c->v->fd, KVM_SET_REGS, &c->regs) != 0)
            return fail(c, "KVM_SET_REGS failed");
        int rc = inject(c, VEC_BP, false, 0);
        if (rc == QV_SUCCESS)
            count(c, QV_INSN_INT3);
        return rc;
    }
    if (b == 0x9b) {
        if (in->lock)
            return inject(c, VEC_UD, false, 0);
        return do_fwait(c);
    }
    if (b != 0x0f)
        return fail(c, "instruction not handled by the completion fallback");
    uint8_t op2;
    if (fetch(in, &op2))
        return fail(c, "truncated instruction");
    switch (op2) {
    case 0x01: {
        uint8_t m;
        if (fetch(in, &m))
            return fail(c, "truncated instruction");
        if (m == 0xca || m == 0xcb) { /* clac / stac */
            if (cpl(c) != 0 || in->lock)
                return inject(c, VEC_UD, false, 0);
            if (m == 0xca)
                c->regs.rflags &= ~RFLAGS_AC;
            else
                c->regs.rflags |= RFLAGS_AC;
            count(c, m == 0xca ? QV_INSN_CLAC : QV_INSN_STAC);
            return 0;
        }
        if (m == 0xd0) {
            if (in->lock)
                return inject(c, VEC_UD, false, 0);
            return do_xgetbv(c);
        }
        return fail(c, "0f 01 form not handled by the completion fallback");
    }
    case 0xb8: /* popcnt needs the F3 prefix; without it 0f b8 is jmpe (IA-64) */
        if (!in->pf3)
            return fail(c, "0f b8 without f3 (jmpe) not handled");
        if (decode_modrm(c))
            return fail(c, "truncated instruction");
        if (in->lock)
            return inject(c, VEC_UD, false, 0);
        return do_popcnt(c);
    case 0xae:
        if (decode_modrm(c))
            return fail(c, "truncated instruction");
        if (in->mod == 3 || in->pf2 || in->pf3 || in->p66 || (in->reg & 7) > 3)
            return fail(c, "0f ae form not handled by the completion fallback");
        if (in->lock)
            return inject(c, VEC_UD, false, 0);
        return do_group15(c);
    case 0xc7:
        if (decode_modrm(c))
            return fail(c, "truncated instruction");
        /* cmpxchg16b only: this backend executes cmpxchg8b and raises #UD for rdpid itself. */
        if ((in->reg & 7) == 1 && in->mod != 3 && (in->rex & 8))
            return do_cmpxchg16b(c);
        return fail(c, "0f c7 form not handled by the completion fallback");
    default:
        return fail(c, "instruction not handled by the completion fallback");
    }
}

int qv_emulate_complete(struct qv_vcpu *v, char *why, size_t whylen)
{
    struct ctx c;
    memset(&c, 0, sizeof(c));
    c.v = v;
    c.why = why;
    c.whylen = whylen;
    why[0] = '\0';
    if (ioctl(v->fd, KVM_GET_REGS, &c.regs) != 0 || ioctl(v->fd, KVM_GET_SREGS, &c.sregs) != 0) {
        snprintf(why, whylen, "cannot read the vCPU registers: %s", strerror(errno));
        return QV_ERR_KVM;
    }
    struct kvm_run *run = v->run;
    /* ndata counts the u64 words that are valid; bytes need flags, size and 2 words. */
    if (run->emulation_failure.ndata >= 3 &&
        (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
        size_t n = run->emulation_failure.insn_size;
        if (n > 15)
            n = 15;
        memcpy(c.in.bytes, run->emulation_failure.insn_bytes, n);
        c.in.avail = n;
    } else {
        /* No bytes in the exit: read them at CS:RIP (stop at the first unmapped page). */
        c.in.code_bits = code_bits_of(&c.sregs);
        uint64_t lin = seg_base(&c, SEG_CS) + c.regs.rip;
        if (c.in.code_bits != 64)
            lin &= 0xffffffffULL;
        for (size_t i = 0; i < 15; i++) {
            struct kvm_translation tr = {.linear_address = lin + i};
            if (ioctl(v->fd, KVM_TRANSLATE, &tr) != 0 || !tr.valid)
                break;
            uint8_t *h = qv_vm_gpa_ptr(v->vm, tr.physical_address, 1);
            if (!h)
                break;
            c.in.bytes[i] = *h;
            c.in.avail = i + 1;
        }
    }
    int rc = execute(&c);
    if (rc != QV_SUCCESS)
        return rc;
    if (!c.faulted) {
        c.regs.rip += c.in.pos;
        if (c.in.code_bits != 64)
            c.regs.rip &= c.in.code_bits == 16 ? 0xffffULL : 0xffffffffULL;
        if (ioctl(v->fd, KVM_SET_REGS, &c.regs) != 0) {
            snprintf(why, whylen, "KVM_SET_REGS failed: %s", strerror(errno));
            return QV_ERR_KVM;
        }
    }
    return QV_SUCCESS;
}

uint32_t qv_emulate_host_mxcsr_mask(void)
{
    /* The MXCSR_MASK the host's FXSAVE reports (0 means the architectural default 0xffbf). */
    static _Alignas(16) uint8_t area[512];
    __asm__ volatile("fxsave %0" : "=m"(area));
    uint32_t mask = get32(area + 28);
    return mask ? mask : 0xffbf;
}
