/* The encrypted disk backend under AddressSanitizer and UBSan (built by
 * tests/encdisk/test_asan.py with -DQV_SANITIZE=ON): round trips with unaligned requests, then
 * thousands of hostile images (random bytes written over the header, the epoch block, the
 * records and the data, and truncations). Every call must return 0 or an expected code; any
 * memory error or undefined behaviour aborts the program. Prints "OK" at the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quantavirt/disk_encrypted.h"
#include "quantavirt/errors.h"
#include "quantavirt/mlkem.h"

#define SIZE (48 * 4096)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fail(const char *what, int rc, const char *msg)
{
    fprintf(stderr, "FAIL %s: %d %s %s\n", what, rc, qv_strerror_name(rc), msg ? msg : "");
    exit(1);
}

static int expected_open(int rc)
{
    return rc == 0 || rc == QV_STR_ERR_INTEGRITY || rc == QV_STR_ERR_CORRUPT ||
           rc == QV_STR_ERR_NOTSUP || rc == QV_STR_ERR_FORMAT || rc == PQC_ERR_KEY;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[512], err[256];
    snprintf(path, sizeof(path), "%s/asan.qvenc", dir);
    unlink(path);
    static uint8_t ek[QV_MLKEM768_PUBLIC_KEY_BYTES], dk[QV_MLKEM768_SECRET_KEY_BYTES];
    if (qv_mlkem_keygen(768, ek, sizeof(ek), dk, sizeof(dk)) != 0)
        fail("keygen", -1, NULL);
    int rc = qv_disk_create_encrypted(path, SIZE, 768, QV_ENCDISK_AEAD_AES_256_GCM, ek,
                                      sizeof(ek), 0, err, sizeof(err));
    if (rc != 0)
        fail("create", rc, err);

    static uint8_t model[SIZE], buf[SIZE];
    struct qv_disk *d = NULL;
    rc = qv_encdisk_open(path, 0, 0, dk, sizeof(dk), &d, err, sizeof(err));
    if (rc != 0)
        fail("open", rc, err);
    for (int k = 0; k < 400; k++) {
        uint64_t off = rnd() % SIZE, len = rnd() % 20000;
        if (len > SIZE - off)
            len = SIZE - off;
        for (uint64_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rnd();
        if ((rc = qv_encdisk_write(d, off, buf, len)) != 0)
            fail("write", rc, qv_disk_encrypted_last_error(d));
        memcpy(model + off, buf, len);
        off = rnd() % SIZE;
        len = rnd() % 20000;
        if (len > SIZE - off)
            len = SIZE - off;
        if ((rc = qv_encdisk_read(d, off, buf, len)) != 0)
            fail("read", rc, qv_disk_encrypted_last_error(d));
        if (memcmp(buf, model + off, len) != 0)
            fail("compare", 0, NULL);
    }
    if (qv_encdisk_read(d, SIZE - 1, buf, 2) != QV_STR_ERR_RANGE ||
        qv_encdisk_read(d, UINT64_MAX, buf, 1) != QV_STR_ERR_RANGE)
        fail("range", 0, NULL);
    qv_encdisk_close(d);

    FILE *f = fopen(path, "rb");
    struct stat st;
    stat(path, &st);
    size_t fsize = (size_t)st.st_size;
    uint8_t *pristine = malloc(fsize), *img = malloc(fsize);
    if (f == NULL || pristine == NULL || img == NULL || fread(pristine, 1, fsize, f) != fsize)
        fail("read image", 0, NULL);
    fclose(f);

    int opened = 0, refused = 0, sector_errors = 0;
    for (int trial = 0; trial < 1500; trial++) {
        memcpy(img, pristine, fsize);
        size_t len = fsize;
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            /* Mostly the metadata (header, epoch block, records), sometimes anywhere. */
            size_t region = rnd() % 4 == 0 ? fsize : 8192 + 4096;
            size_t at = rnd() % region, n = 1 + rnd() % 16;
            for (size_t i = 0; i < n && at + i < fsize; i++)
                img[at + i] = (uint8_t)rnd();
        }
        if (rnd() % 10 == 0)
            len = rnd() % fsize;
        f = fopen(path, "wb");
        if (f == NULL || fwrite(img, 1, len, f) != len)
            fail("write image", 0, NULL);
        fclose(f);
        rc = qv_encdisk_open(path, 1, 0, dk, sizeof(dk), &d, err, sizeof(err));
        if (!expected_open(rc))
            fail("hostile open", rc, err);
        if (rc != 0) {
            refused++;
            continue;
        }
        opened++;
        for (uint64_t s = 0; s < SIZE / 4096; s++) {
            rc = qv_encdisk_read(d, s * 4096, buf, 4096);
            if (rc == QV_STR_ERR_INTEGRITY || rc == QV_STR_ERR_IO) {
                sector_errors++;
                continue;
            }
            if (rc != 0)
                fail("hostile read", rc, qv_disk_encrypted_last_error(d));
            if (memcmp(buf, model + s * 4096, 4096) != 0)
                fail("hostile read returned wrong data", 0, NULL);
        }
        qv_encdisk_close(d);
    }
    printf("hostile images: %d refused at open, %d opened, %d sector errors\nOK\n", refused,
           opened, sector_errors);
    free(pristine);
    free(img);
    unlink(path);
    return 0;
}
