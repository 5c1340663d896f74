/* Runs the kernel loader over every file named on the command line, built with ASan/UBSan by
 * test_fuzz.py: any out-of-bounds access or undefined behaviour aborts the run. Prints one
 * return code per file. */
#include <stdio.h>
#include <stdlib.h>

#include "quantavirt/acpi.h"
#include "quantavirt/boot.h"

int main(int argc, char **argv)
{
    struct qv_memory_layout layout;
    char err[512];
    if (qv_layout_init(&layout, 64u << 20, 0, err, sizeof(err)) != 0)
        return 2;
    uint8_t *mem = calloc(1, layout.low_ram_end);
    if (!mem)
        return 2;
    for (int i = 1; i < argc; i++) {
        struct qv_boot_cpu_state st;
        int rc = qv_boot_load_kernel(mem, layout.low_ram_end, argv[i], NULL, "console=ttyS0",
                                     &layout, &st, err, sizeof(err));
        printf("%d %s\n", rc, rc ? err : "ok");
    }
    struct qv_acpi_config cfg;
    qv_acpi_config_init(&cfg, 8);
    int rc = qv_acpi_build(mem, layout.low_ram_end, &layout, &cfg, err, sizeof(err));
    printf("acpi %d\n", rc);
    free(mem);
    return 0;
}
