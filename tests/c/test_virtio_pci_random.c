/* Deterministic random hostile drivers against virtio-pci + virtio-blk (always runs, under
 * ASan/UBSan in the test build): the scenario harness of the libFuzzer target fed by a seeded
 * generator that mixes valid bring-ups and requests with random register and RAM writes. */
#include <stdio.h>

#include "../fuzz/pci_exercise.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t next_rand(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint8_t buf[8192];

static size_t make_input(void)
{
    size_t n = 0;
    buf[n++] = (uint8_t)next_rand();
    unsigned ops = 20 + (unsigned)(next_rand() % 200);
    for (unsigned k = 0; k < ops && n + 16 < sizeof buf; k++) {
        unsigned r = (unsigned)(next_rand() % 100);
        uint8_t op;
        if (k == 0 || r < 8)
            op = 5; /* bring-up */
        else if (r < 45)
            op = 7; /* post a request and kick */
        else if (r < 55)
            op = 9; /* process */
        else
            op = (uint8_t)next_rand(); /* anything */
        buf[n++] = op;
        for (unsigned i = 0; i < 12; i++)
            buf[n++] = (uint8_t)next_rand();
    }
    return n;
}

int main(int argc, char **argv)
{
    unsigned runs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 3000;
    const char *seed_dir = argc > 2 ? argv[2] : NULL;
    struct px_ram ram;
    if (px_ram_init(&ram) != 0)
        return 1;
    struct px_stats st = {0};
    for (unsigned i = 0; i < runs; i++) {
        size_t n = make_input();
        if (seed_dir && i < 64) {
            char path[4096];
            snprintf(path, sizeof path, "%s/seed-%02u", seed_dir, i);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(buf, 1, n, f) != n)
                return 1;
            fclose(f);
        }
        px_run(&ram, buf, n, &st);
    }
    printf("runs %u, reached DRIVER_OK %lu, requests posted %lu, completed ok %lu, "
           "completed with an error status %lu, NEEDS_RESET %lu, msi %u\n",
           runs, st.driver_ok, st.requests, st.completed_ok, st.completed_err, st.needs_reset,
           px_msi_count);
    if (st.driver_ok < runs / 2 || st.needs_reset == 0 || st.completed_ok < runs ||
        st.completed_err < runs / 4) {
        printf("FAIL: the generator does not reach the device\n");
        return 1;
    }
    printf("PASS test_virtio_pci_random\n");
    return 0;
}
