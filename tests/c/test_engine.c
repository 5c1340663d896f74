/* The engine from C (built with QV_BUILD_C_TESTS, meant to run under QV_SANITIZE): real-mode
 * guests through the device bus, the completion fallback, a triple fault and a host stop.
 * Exits 77 (skip) without a usable /dev/kvm. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "quantavirt/engine.h"
#include "quantavirt/errors.h"

static int failures;
#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                            \
        }                                                                          \
    } while (0)

static int run(const uint8_t *code, size_t len, uint32_t mode, uint32_t vcpus, int stop_after_ms,
               struct qv_vm_exit *ex, struct qv_vm_stats *st, char *console, size_t clen)
{
    int pipefd[2];
    if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) != 0)
        return QV_ERR_IO;
    struct qv_vm_config cfg = {.mem_size = 16 << 20, .vcpus = vcpus, .numa_node = -1,
                               .console_fd = pipefd[1], .emulation_fallback = 1};
    struct qv_vm *vm = NULL;
    char err[512];
    int rc = qv_vm_create(&cfg, &vm, err, sizeof(err));
    if (rc == QV_SUCCESS) {
        /* Flat GDT for protected mode: null, data (0x10), code32 (0x18). */
        static const uint64_t gdt[4] = {0, 0, 0x00cf92000000ffffULL, 0x00cf9a000000ffffULL};
        struct qv_boot_cpu_state st0 = {.mode = mode, .rip = 0x10000, .rsp = 0xfff0,
                                        .gdt_base = 0x800, .gdt_limit = sizeof(gdt) - 1,
                                        .code_selector = 0x18, .data_selector = 0x10};
        CHECK(qv_vm_write_phys(vm, 0x800, gdt, sizeof(gdt)) == QV_SUCCESS);
        CHECK(qv_vm_write_phys(vm, 0x10000, code, len) == QV_SUCCESS);
        CHECK(qv_vm_set_boot_state(vm, &st0) == QV_SUCCESS);
        CHECK(qv_vm_start(vm) == QV_SUCCESS);
        if (stop_after_ms >= 0) {
            CHECK(qv_vm_wait(vm, stop_after_ms, ex) == QV_ERR_TIMEOUT);
            qv_vm_stop(vm);
        }
        rc = qv_vm_wait(vm, 30000, ex);
        qv_vm_get_stats(vm, st);
        qv_vm_destroy(vm);
    } else {
        fprintf(stderr, "create: %s: %s\n", qv_strerror_name(rc), err);
    }
    ssize_t n = read(pipefd[0], console, clen - 1);
    console[n > 0 ? n : 0] = '\0';
    close(pipefd[0]);
    close(pipefd[1]);
    return rc;
}

int main(void)
{
    if (access("/dev/kvm", R_OK | W_OK) != 0) {
        fprintf(stderr, "skip: no usable /dev/kvm\n");
        return 77;
    }
    struct qv_vm_exit ex;
    struct qv_vm_stats st;
    char console[256];

    /* mov al,'A'; mov dx,0x3f8; out dx,al; mov ax,0xf00f; popcnt cx,ax; mov al,cl;
     * out 0xf4,al */
    static const uint8_t hello[] = {0xb0, 'A', 0xba, 0xf8, 0x03, 0xee, 0xb8, 0x0f, 0xf0,
                                    0xf3, 0x0f, 0xb8, 0xc8, 0x88, 0xc8, 0xe6, 0xf4};
    CHECK(run(hello, sizeof(hello), QV_BOOT_REAL16, 2, -1, &ex, &st, console, sizeof(console)) == QV_SUCCESS);
    CHECK(ex.reason == QV_EXIT_DEBUG && ex.status == 8);
    CHECK(strcmp(console, "A") == 0);
    CHECK(st.completed_insns == st.exits_by_reason[17]); /* KVM_EXIT_INTERNAL_ERROR */

    /* ud2 in protected mode over an all-zero IDT: #UD, not-present gates, triple fault. */
    static const uint8_t triple[] = {0x0f, 0x0b};
    CHECK(run(triple, sizeof(triple), QV_BOOT_PROT32, 1, -1, &ex, &st, console,
              sizeof(console)) == QV_SUCCESS);
    CHECK(ex.reason == QV_EXIT_ERROR && ex.error == QV_ERR_GUEST);

    /* jmp $: stopped by the host. */
    static const uint8_t spin[] = {0xeb, 0xfe};
    CHECK(run(spin, sizeof(spin), QV_BOOT_REAL16, 2, 200, &ex, &st, console, sizeof(console)) == QV_SUCCESS);
    CHECK(ex.reason == QV_EXIT_STOPPED);

    /* Memory the host cannot give: refused at create. */
    struct qv_vm_config big = {.mem_size = 1ULL << 42, .vcpus = 1, .numa_node = -1,
                               .console_fd = -1};
    struct qv_vm *vm = NULL;
    char err[512];
    CHECK(qv_vm_create(&big, &vm, err, sizeof(err)) == QV_ERR_NOMEM && vm == NULL);
    CHECK(strstr(err, "memory.size") != NULL);

    /* cpu.pin, a parked start and a max_size reservation through create, start, stop and
     * destroy; then a pin to a CPU that cannot exist, refused at create. */
    int32_t pin[2] = {0, -1};
    struct qv_vm_config pinned = {.mem_size = 16 << 20, .vcpus = 2, .numa_node = -1,
                                  .console_fd = -1, .vcpu_pin = pin,
                                  .max_mem_size = 64ULL << 30};
    vm = NULL;
    CHECK(qv_vm_create(&pinned, &vm, err, sizeof(err)) == QV_SUCCESS);
    if (vm) {
        uint64_t gpa = 0, size = 0;
        CHECK(qv_vm_hotplug_range(vm, &gpa, &size) == QV_SUCCESS);
        CHECK(gpa == 1ULL << 32 && size == (64ULL << 30) - (16 << 20));
        CHECK(qv_vm_write_phys(vm, 0x10000, spin, sizeof(spin)) == QV_SUCCESS);
        struct qv_boot_cpu_state rs = {.mode = QV_BOOT_REAL16, .rip = 0x10000, .rsp = 0xfff0};
        CHECK(qv_vm_set_boot_state(vm, &rs) == QV_SUCCESS);
        CHECK(qv_vm_start_parked(vm, 10000) == QV_SUCCESS);
        CHECK(qv_vm_start_parked(vm, 10000) == QV_ERR_STATE);
        qv_vm_stop(vm);
        CHECK(qv_vm_wait(vm, 30000, &ex) == QV_SUCCESS && ex.reason == QV_EXIT_STOPPED);
        qv_vm_destroy(vm);
    }
    pin[1] = 8191;
    vm = NULL;
    CHECK(qv_vm_create(&pinned, &vm, err, sizeof(err)) == QV_ERR_NODEV && vm == NULL);
    CHECK(strncmp(err, "cpu.pin.1: ", 11) == 0);

    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("test_engine: ok\n");
    return failures ? 1 : 0;
}
