/* Pause / resume under ThreadSanitizer: a 2-vCPU VM runs a real-mode guest that increments a
 * counter at 0x8000 forever (vCPU 1 waits for INIT-SIPI in the kernel) while another thread
 * presses the power button. Each round: pause (the counter must stand still), pause again
 * (QV_ERR_STATE), resume, resume again (QV_ERR_STATE). Then the counter must run, and a stop
 * and destroy of a paused VM must finish. Prints PASS or FAIL with the number of bad checks. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "quantavirt/engine.h"
#include "quantavirt/errors.h"
#include "quantavirt/vm_control.h"

/* 1: incl %ds:0x8000 (operand-size prefix, disp16); jmp 1b */
static const unsigned char guest[] = {0x66, 0xFF, 0x06, 0x00, 0x80, 0xEB, 0xF9};

static uint32_t counter(struct qv_vm *vm)
{
    uint32_t c = 0;
    qv_vm_read_phys(vm, 0x8000, &c, sizeof(c));
    return c;
}

static void *press_power_button(void *arg)
{
    for (int i = 0; i < 50; i++) {
        qv_vm_power_button(arg);
        usleep(1000);
    }
    return NULL;
}

int main(void)
{
    struct qv_vm_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.mem_size = 64 << 20;
    cfg.vcpus = 2;
    cfg.console_fd = -1;
    cfg.numa_node = -1;
    cfg.emulation_fallback = 1;
    struct qv_vm *vm;
    char err[512];
    if (qv_vm_create(&cfg, &vm, err, sizeof(err))) {
        printf("SKIP create: %s\n", err);
        return 77;
    }
    struct qv_boot_cpu_state st;
    memset(&st, 0, sizeof(st));
    st.mode = QV_BOOT_REAL16;
    st.rip = 0x7000;
    st.rsp = 0xfff0;
    if (qv_vm_write_phys(vm, 0x7000, guest, sizeof(guest)) || qv_vm_set_boot_state(vm, &st) ||
        qv_vm_start(vm)) {
        printf("FAIL start\n");
        return 1;
    }
    pthread_t presser;
    pthread_create(&presser, NULL, press_power_button, vm);
    int bad = 0;
    for (int i = 0; i < 30; i++) {
        usleep(20000);
        if (qv_vm_pause(vm, 5000) != QV_SUCCESS) {
            printf("FAIL pause\n");
            return 1;
        }
        uint32_t a = counter(vm);
        usleep(20000);
        bad += counter(vm) != a;
        bad += qv_vm_pause(vm, 5000) != QV_ERR_STATE;
        bad += qv_vm_is_paused(vm) != 1;
        bad += qv_vm_resume(vm) != QV_SUCCESS;
        bad += qv_vm_resume(vm) != QV_ERR_STATE;
    }
    pthread_join(presser, NULL);
    uint32_t before = counter(vm);
    usleep(100000);
    bad += counter(vm) == before;
    bad += qv_vm_pause(vm, 5000) != QV_SUCCESS;
    qv_vm_stop(vm);
    struct qv_vm_exit ex;
    bad += qv_vm_wait(vm, 10000, &ex) != QV_SUCCESS;
    bad += ex.reason != QV_EXIT_STOPPED;
    qv_vm_destroy(vm);
    printf("%s bad=%d counted=%u\n", bad ? "FAIL" : "PASS", bad, (unsigned)before);
    return bad != 0;
}
