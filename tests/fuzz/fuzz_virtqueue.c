/* libFuzzer target: hostile rings against the split virtqueue (see vq_exercise.h).
 * Built by tests/devices/test_fuzz.py with
 *   clang -fsanitize=fuzzer,address,undefined csrc/devices/virtqueue.c csrc/core/guest_memory.c */
#include <stddef.h>
#include <stdint.h>

#include "vq_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct vqx_ram ram;
    static int ready;
    if (!ready) {
        if (vqx_ram_init(&ram) != 0)
            abort();
        ready = 1;
    }
    vqx_run(&ram, data, size);
    return 0;
}
