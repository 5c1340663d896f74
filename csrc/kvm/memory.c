/* Guest RAM: anonymous or hugetlb mmap, optional NUMA binding and preallocation, registered
 * with KVM as two slots around the 32-bit MMIO hole. Every refusal happens here, before any
 * vCPU exists, with a message that says what the host lacks. */
#include <errno.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <linux/mempolicy.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm/vm_internal.h"
#include "quantavirt/errors.h"
#include "quantavirt/layout.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static int read_u64_file(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    unsigned long long v = 0;
    int ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    if (!ok)
        return -1;
    *out = v;
    return 0;
}

/* A /proc/meminfo field in bytes, or 0 when absent. */
static uint64_t meminfo_bytes(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    char line[256];
    uint64_t val = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            unsigned long long kb = 0;
            if (sscanf(line + klen + 1, "%llu", &kb) == 1)
                val = (uint64_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return val;
}

static const char *page_name(uint32_t kb)
{
    return kb == 2048 ? "2M" : kb == 1048576 ? "1G" : "4K";
}

static int check_hugepage_pool(struct qv_vm *vm, char *err, size_t errlen)
{
    uint32_t kb = vm->cfg.hugepage_kb;
    char path[128];
    uint64_t free_pages = 0, resv = 0, total = 0;
    snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%" PRIu32 "kB/free_hugepages",
             kb);
    if (read_u64_file(path, &free_pages) != 0) {
        snprintf(err, errlen, "memory.hugepages %s: the host kernel has no %s hugepage pool (%s)",
                 page_name(kb), page_name(kb), path);
        return QV_ERR_NODEV;
    }
    snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%" PRIu32 "kB/resv_hugepages",
             kb);
    read_u64_file(path, &resv);
    snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%" PRIu32 "kB/nr_hugepages",
             kb);
    read_u64_file(path, &total);
    uint64_t avail = free_pages > resv ? free_pages - resv : 0;
    uint64_t need = vm->ram_size / ((uint64_t)kb * 1024);
    if (avail < need) {
        snprintf(err, errlen,
                 "memory.hugepages %s: need %" PRIu64 " pages of %s for memory.size, the pool has "
                 "%" PRIu64 " available (%" PRIu64 " total); %" PRIu64 " pages missing: raise "
                 "/sys/kernel/mm/hugepages/hugepages-%" PRIu32 "kB/nr_hugepages to at least %"
                 PRIu64,
                 page_name(kb), need, page_name(kb), avail, total, need - avail, kb,
                 total + (need - avail));
        return QV_ERR_NOMEM;
    }
    return QV_SUCCESS;
}

/* memory.max_size: the guest-physical range comes from the same layout the loaders use; the
 * host side is address space only (PROT_NONE, MAP_NORESERVE), so it costs no memory and no
 * overcommit charge until a hot-add maps part of it. */
static int reserve_hotplug(struct qv_vm *vm, char *err, size_t errlen)
{
    const struct qv_vm_config *c = &vm->cfg;
    if (c->max_mem_size == 0 || c->max_mem_size == c->mem_size)
        return QV_SUCCESS;
    struct qv_memory_layout l;
    int rc = qv_layout_init(&l, c->mem_size, 0, err, errlen);
    if (rc == QV_SUCCESS)
        rc = qv_layout_set_hotplug(&l, c->max_mem_size, err, errlen);
    if (rc)
        return rc;
    void *r = mmap(NULL, l.hotplug_size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) {
        snprintf(err, errlen, "memory.max_size: cannot reserve %" PRIu64 " MiB of address "
                 "space for hot-add: %s", l.hotplug_size >> 20, strerror(errno));
        return QV_ERR_NOMEM;
    }
    madvise(r, l.hotplug_size, MADV_DONTDUMP);
    vm->hotplug_res = r;
    vm->hotplug_gpa = l.hotplug_base;
    vm->hotplug_size = l.hotplug_size;
    return QV_SUCCESS;
}

int qv_memory_check_phys_bits(struct qv_vm *vm, char *err, size_t errlen)
{
    if (!vm->hotplug_size)
        return QV_SUCCESS;
    /* Leaf 0x80000008 EAX[7:0]: the physical address width the guest is told about. */
    const struct qv_cpuid_entry *e =
        qv_cpuid_find(vm->cpuid_supported, vm->n_cpuid_supported, 0x80000008, 0);
    uint32_t bits = e ? (e->eax & 0xff) : 0;
    if (bits >= 32 && bits < 64 && vm->hotplug_gpa + vm->hotplug_size > (1ULL << bits)) {
        snprintf(err, errlen, "memory.max_size: the hot-add range ends at %#" PRIx64 ", beyond "
                 "the %" PRIu32 "-bit guest physical address space KVM offers on this host",
                 vm->hotplug_gpa + vm->hotplug_size, bits);
        return QV_ERR_NODEV;
    }
    return QV_SUCCESS;
}

int qv_memory_alloc(struct qv_vm *vm, char *err, size_t errlen)
{
    const struct qv_vm_config *c = &vm->cfg;
    uint64_t page = c->hugepage_kb ? (uint64_t)c->hugepage_kb * 1024 : 4096;
    if (c->hugepage_kb != 0 && c->hugepage_kb != 2048 && c->hugepage_kb != 1048576) {
        snprintf(err, errlen, "memory.hugepages: unsupported page size %" PRIu32 " KiB",
                 c->hugepage_kb);
        return QV_ERR_INVAL;
    }
    if (c->mem_size == 0 || c->mem_size % page != 0) {
        snprintf(err, errlen, "memory.size: %" PRIu64 " bytes is not a positive multiple of the "
                 "%s page size", c->mem_size, page_name(c->hugepage_kb));
        return QV_ERR_INVAL;
    }
    /* 4 TiB is the schema's ceiling; it also keeps every GPA computation far from overflow. */
    if (c->mem_size > (4ULL << 40)) {
        snprintf(err, errlen, "memory.size: %" PRIu64 " bytes is above the 4T maximum",
                 c->mem_size);
        return QV_ERR_INVAL;
    }
    vm->ram_size = c->mem_size;
    vm->low_size = c->mem_size < QV_LOWMEM_END ? c->mem_size : QV_LOWMEM_END;

    uint64_t host_total = meminfo_bytes("MemTotal");
    uint64_t host_swap = meminfo_bytes("SwapTotal");
    if (c->hugepage_kb) {
        int rc = check_hugepage_pool(vm, err, errlen);
        if (rc)
            return rc;
    } else if (host_total && c->mem_size > host_total + host_swap) {
        snprintf(err, errlen, "memory.size: %" PRIu64 " MiB is more than the host has (%" PRIu64
                 " MiB RAM + %" PRIu64 " MiB swap)", c->mem_size >> 20, host_total >> 20,
                 host_swap >> 20);
        return QV_ERR_NOMEM;
    } else if (c->prealloc) {
        uint64_t avail = meminfo_bytes("MemAvailable");
        if (avail && c->mem_size > avail) {
            snprintf(err, errlen, "memory.prealloc: %" PRIu64 " MiB cannot be preallocated, the "
                     "host has %" PRIu64 " MiB available", c->mem_size >> 20, avail >> 20);
            return QV_ERR_NOMEM;
        }
    }
    if (c->numa_node >= 0) {
        char path[96];
        snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", c->numa_node);
        if (access(path, F_OK) != 0 || c->numa_node >= 1024) {
            snprintf(err, errlen, "cpu.numa_node: host NUMA node %d does not exist", c->numa_node);
            return QV_ERR_NODEV;
        }
    }

    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
    if (c->hugepage_kb == 2048)
        flags |= MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
    else if (c->hugepage_kb == 1048576)
        flags |= MAP_HUGETLB | (30 << MAP_HUGE_SHIFT);
    void *p = mmap(NULL, c->mem_size, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        snprintf(err, errlen, "memory.size: cannot map %" PRIu64 " MiB of guest RAM (%s pages): %s",
                 c->mem_size >> 20, page_name(c->hugepage_kb), strerror(e));
        return QV_ERR_NOMEM;
    }
    vm->ram = p;
    vm->map_size = c->mem_size;
    madvise(p, c->mem_size, MADV_DONTDUMP);
    /* Transparent huge pages for ordinary RAM (where THP is "madvise", as on Debian): fewer
     * TLB misses, and a 1 MiB guest buffer is then one or two physically contiguous pieces,
     * so O_DIRECT disk I/O into it is not split by the host disk's segment limit. */
    if (!(flags & MAP_HUGETLB))
        madvise(p, c->mem_size, MADV_HUGEPAGE);
    int hrc = reserve_hotplug(vm, err, errlen);
    if (hrc) {
        qv_memory_free(vm);
        return hrc;
    }

    if (c->numa_node >= 0) {
        unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
        mask[c->numa_node / (8 * sizeof(unsigned long))] |=
            1UL << (c->numa_node % (8 * sizeof(unsigned long)));
        /* Bind before any page is touched, so every fault lands on the node. */
        if (syscall(SYS_mbind, p, c->mem_size, MPOL_BIND, mask, 1024UL, 0UL) != 0) {
            int e = errno;
            snprintf(err, errlen, "cpu.numa_node: binding guest RAM to node %d failed: %s",
                     c->numa_node, strerror(e));
            qv_memory_free(vm);
            return QV_ERR_NODEV;
        }
    }
    if (c->prealloc) {
        /* MADV_POPULATE_WRITE reports a shortage as an error instead of the OOM killer. */
        if (madvise(p, c->mem_size, MADV_POPULATE_WRITE) != 0) {
            int e = errno;
            if (e == EINVAL) {
                /* Older kernels: touch each page. */
                for (uint64_t off = 0; off < c->mem_size; off += page)
                    ((volatile uint8_t *)p)[off] = 0;
            } else {
                snprintf(err, errlen, "memory.prealloc: populating %" PRIu64 " MiB failed: %s",
                         c->mem_size >> 20, strerror(e));
                qv_memory_free(vm);
                return QV_ERR_NOMEM;
            }
        }
    }
    return QV_SUCCESS;
}

int qv_memory_register(struct qv_vm *vm, char *err, size_t errlen)
{
    struct kvm_userspace_memory_region r = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = vm->low_size,
        .userspace_addr = (uint64_t)(uintptr_t)vm->ram};
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) != 0) {
        snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION (low RAM): %s", strerror(errno));
        return QV_ERR_KVM;
    }
    if (vm->ram_size > vm->low_size) {
        r.slot = 1;
        r.guest_phys_addr = QV_HIGHMEM_START;
        r.memory_size = vm->ram_size - vm->low_size;
        r.userspace_addr = (uint64_t)(uintptr_t)(vm->ram + vm->low_size);
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) != 0) {
            snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION (high RAM): %s", strerror(errno));
            return QV_ERR_KVM;
        }
    }
    return QV_SUCCESS;
}

void qv_memory_free(struct qv_vm *vm)
{
    if (vm->ram) {
        munmap(vm->ram, vm->map_size);
        vm->ram = NULL;
    }
    if (vm->hotplug_res) {
        munmap(vm->hotplug_res, vm->hotplug_size);
        vm->hotplug_res = NULL;
    }
}

uint8_t *qv_vm_gpa_ptr(struct qv_vm *vm, uint64_t gpa, uint64_t len)
{
    if (!vm || !vm->ram)
        return NULL;
    if (gpa < vm->low_size) {
        if (len > vm->low_size - gpa)
            return NULL;
        return vm->ram + gpa;
    }
    if (gpa >= QV_HIGHMEM_START) {
        uint64_t off = gpa - QV_HIGHMEM_START;
        uint64_t high = vm->ram_size - vm->low_size;
        if (off >= high || len > high - off)
            return NULL;
        return vm->ram + vm->low_size + off;
    }
    return NULL;
}
