/* libFuzzer target: a hostile driver programming the virtio-pci transport of a virtio-blk,
 * -rng, -console or -balloon device (see pci_exercise.h). Built by tests/devices/test_fuzz.py. */
#include <stddef.h>
#include <stdint.h>

#include "pci_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct px_ram ram;
    static int ready;
    if (!ready) {
        if (px_ram_init(&ram) != 0)
            abort();
        ready = 1;
    }
    px_run(&ram, data, size, NULL);
    return 0;
}
