/* Sanitizer harness for the block layer (built by test_sanitized.py with ASan and UBSan).
 * For every image named on the command line: open it read-write and read-only, read all of it
 * (bounded), write, write zeroes, discard, flush, close. Any out-of-bounds access, leak or
 * undefined behaviour aborts the run; errors returned by the layer are expected and fine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantavirt/disk.h"
#include "quantavirt/errors.h"

static void exercise(const char *path, int readonly, int *opened)
{
    struct qv_disk_options o = {.format = QV_DISK_FORMAT_AUTO, .readonly = readonly, .discard = 1};
    struct qv_disk *d = NULL;
    char err[256];
    static unsigned char buf[1 << 20];
    if (qv_disk_open(path, &o, &d, err, sizeof(err)) != 0) {
        if (!err[0] || !qv_strerror_name(-400))
            abort(); /* every failure must carry a message */
        return;
    }
    (*opened)++;
    uint64_t limit = d->size < (4u << 20) ? d->size : (4u << 20);
    for (uint64_t off = 0; off < limit; off += sizeof(buf)) {
        size_t n = limit - off < sizeof(buf) ? (size_t)(limit - off) : sizeof(buf);
        if (qv_disk_read(d, off, buf, n))
            break;
    }
    if (d->size > 200000 && !readonly) {
        memset(buf, 0x5a, 70000);
        (void)qv_disk_write(d, 1000, buf, 70000);
        (void)qv_disk_write(d, d->size - 3000, buf, 3000);
        (void)qv_disk_write_zeroes(d, 65536, 65536 * 2);
        (void)qv_disk_discard(d, 0, 131072);
        (void)qv_disk_read(d, 0, buf, 200000);
        (void)qv_disk_flush(d);
    }
    qv_disk_close(d);
}

/* Random writes, zeroes, discards and reads against an in-memory model of the disk. */
static int model_run(const char *path, unsigned seed, int ops)
{
    struct qv_disk_options o = {.format = QV_DISK_FORMAT_AUTO, .discard = 0};
    struct qv_disk *d = NULL;
    char err[256];
    if (qv_disk_open(path, &o, &d, err, sizeof(err)) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    size_t size = (size_t)d->size;
    unsigned char *model = calloc(1, size), *buf = malloc(size);
    if (!model || !buf || qv_disk_read(d, 0, model, size))
        return 1;
    srand(seed);
    for (int i = 0; i < ops; i++) {
        size_t off = (size_t)rand() % size;
        size_t len = 1 + (size_t)rand() % 150000;
        if (len > size - off)
            len = size - off;
        int kind = rand() % 6;
        if (kind < 3) {
            for (size_t j = 0; j < len; j++)
                buf[j] = (unsigned char)(rand() >> 4);
            if (qv_disk_write(d, off, buf, len))
                return fprintf(stderr, "write: %s\n", qv_disk_last_error(d)), 1;
            memcpy(model + off, buf, len);
        } else if (kind == 3) {
            if (qv_disk_write_zeroes(d, off, len))
                return fprintf(stderr, "zeroes: %s\n", qv_disk_last_error(d)), 1;
            memset(model + off, 0, len);
        } else {
            if (qv_disk_read(d, off, buf, len))
                return fprintf(stderr, "read: %s\n", qv_disk_last_error(d)), 1;
            if (memcmp(buf, model + off, len))
                return fprintf(stderr, "mismatch at %zu+%zu (op %d)\n", off, len, i), 1;
        }
    }
    if (qv_disk_read(d, 0, buf, size) || memcmp(buf, model, size))
        return fprintf(stderr, "final mismatch\n"), 1;
    qv_disk_close(d);
    free(model);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int opened = 0;
    if (argc == 5 && !strcmp(argv[1], "--model"))
        return model_run(argv[2], (unsigned)atoi(argv[3]), atoi(argv[4]));
    for (int i = 1; i < argc; i++) {
        exercise(argv[i], 1, &opened);
        exercise(argv[i], 0, &opened);
    }
    printf("%d opened\n", opened);
    return 0;
}
