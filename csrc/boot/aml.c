/* The AML writer (see aml.h). Encodings from the ACPI specification, chapter 20. */
#include "quantavirt/aml.h"

#include <string.h>

#include "boot/bytes.h"
#include "quantavirt/errors.h"

#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE 0x0a
#define AML_WORD 0x0b
#define AML_DWORD 0x0c
#define AML_STRING 0x0d
#define AML_QWORD 0x0e
#define AML_SCOPE 0x10
#define AML_BUFFER 0x11
#define AML_PACKAGE 0x12
#define AML_METHOD 0x14
#define AML_DUAL_NAME 0x2e
#define AML_MULTI_NAME 0x2f
#define AML_EXT 0x5b
#define AML_DEVICE 0x82
#define AML_RETURN 0xa4

void qv_aml_init(struct qv_aml *a, uint8_t *buf, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->buf = buf;
    a->cap = cap;
}

int qv_aml_finish(struct qv_aml *a)
{
    if (!a->err && a->depth)
        a->err = QV_ERR_INTERNAL; /* a block was never closed */
    return a->err ? a->err : (int)a->len;
}

void qv_aml_bytes(struct qv_aml *a, const uint8_t *p, size_t n)
{
    if (a->err)
        return;
    if (!qv_range_ok(a->len, n, a->cap)) {
        a->err = QV_ERR_NOMEM;
        return;
    }
    memcpy(a->buf + a->len, p, n);
    a->len += n;
}

void qv_aml_byte(struct qv_aml *a, uint8_t v) { qv_aml_bytes(a, &v, 1); }

static int name_char_ok(char ch, int first)
{
    return (ch >= 'A' && ch <= 'Z') || ch == '_' || (!first && ch >= '0' && ch <= '9');
}

void qv_aml_name_string(struct qv_aml *a, const char *path)
{
    const char *p = path;
    if (*p == '\\')
        qv_aml_byte(a, *p++);
    else
        while (*p == '^')
            qv_aml_byte(a, *p++);
    char segs[255][4];
    size_t nseg = 0;
    while (*p) {
        if (nseg == 255) {
            a->err = QV_ERR_INVAL;
            return;
        }
        size_t k = 0;
        while (*p && *p != '.') {
            if (k == 4 || !name_char_ok(*p, k == 0)) {
                a->err = QV_ERR_INVAL;
                return;
            }
            segs[nseg][k++] = *p++;
        }
        if (k == 0) {
            a->err = QV_ERR_INVAL;
            return;
        }
        while (k < 4)
            segs[nseg][k++] = '_';
        nseg++;
        if (*p == '.' && !*++p) { /* a trailing dot names nothing */
            a->err = QV_ERR_INVAL;
            return;
        }
    }
    if (nseg == 0) {
        qv_aml_byte(a, 0x00); /* NullName */
        return;
    }
    if (nseg == 2)
        qv_aml_byte(a, AML_DUAL_NAME);
    else if (nseg > 2) {
        qv_aml_byte(a, AML_MULTI_NAME);
        qv_aml_byte(a, (uint8_t)nseg);
    }
    qv_aml_bytes(a, (const uint8_t *)segs, 4 * nseg);
}

void qv_aml_integer(struct qv_aml *a, uint64_t v)
{
    uint8_t b[9];
    if (v == 0 || v == 1) {
        qv_aml_byte(a, v ? AML_ONE : AML_ZERO);
        return;
    }
    size_t n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffULL ? 4 : 8;
    b[0] = n == 1 ? AML_BYTE : n == 2 ? AML_WORD : n == 4 ? AML_DWORD : AML_QWORD;
    for (size_t i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(v >> (8 * i));
    qv_aml_bytes(a, b, 1 + n);
}

void qv_aml_string(struct qv_aml *a, const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x01 || (unsigned char)*p > 0x7f)
            a->err = QV_ERR_INVAL;
    qv_aml_byte(a, AML_STRING);
    qv_aml_bytes(a, (const uint8_t *)s, strlen(s) + 1);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

void qv_aml_eisaid(struct qv_aml *a, const char *id)
{
    /* Three letters of 5 bits each, then four hex digits; stored big-endian. */
    if (strlen(id) != 7) {
        a->err = QV_ERR_INVAL;
        return;
    }
    uint32_t v = 0;
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z') {
            a->err = QV_ERR_INVAL;
            return;
        }
        v = (v << 5) | (uint32_t)(id[i] - '@');
    }
    for (int i = 3; i < 7; i++) {
        int h = hexval(id[i]);
        if (h < 0) {
            a->err = QV_ERR_INVAL;
            return;
        }
        v = (v << 4) | (uint32_t)h;
    }
    uint8_t b[5] = {AML_DWORD, (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};
    qv_aml_bytes(a, b, 5);
}

void qv_aml_name(struct qv_aml *a, const char *path)
{
    qv_aml_byte(a, AML_NAME);
    qv_aml_name_string(a, path);
}

/* Open a block: the PkgLength is inserted at the current position when it closes. */
static void open_block(struct qv_aml *a)
{
    if (a->err)
        return;
    if (a->depth == QV_AML_MAX_DEPTH) {
        a->err = QV_ERR_INVAL;
        return;
    }
    a->open[a->depth++] = a->len;
}

void qv_aml_end(struct qv_aml *a)
{
    if (a->err)
        return;
    if (a->depth == 0) {
        a->err = QV_ERR_INTERNAL;
        return;
    }
    size_t start = a->open[--a->depth];
    size_t content = a->len - start;
    /* PkgLength counts its own bytes: 1 byte up to 63, else 2..4 bytes of 4+8+8+8 bits. */
    size_t n, total = 0;
    for (n = 1; n <= 4; n++) {
        total = content + n;
        if ((n == 1 && total <= 0x3f) || (n == 2 && total < (1u << 12)) ||
            (n == 3 && total < (1u << 20)) || (n == 4 && total < (1u << 28)))
            break;
    }
    if (n > 4 || !qv_range_ok(a->len, n, a->cap)) {
        a->err = QV_ERR_NOMEM;
        return;
    }
    memmove(a->buf + start + n, a->buf + start, content);
    if (n == 1) {
        a->buf[start] = (uint8_t)total;
    } else {
        a->buf[start] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
        for (size_t i = 1; i < n; i++)
            a->buf[start + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
    }
    a->len += n;
}

void qv_aml_scope_begin(struct qv_aml *a, const char *path)
{
    qv_aml_byte(a, AML_SCOPE);
    open_block(a);
    qv_aml_name_string(a, path);
}

void qv_aml_device_begin(struct qv_aml *a, const char *path)
{
    qv_aml_byte(a, AML_EXT);
    qv_aml_byte(a, AML_DEVICE);
    open_block(a);
    qv_aml_name_string(a, path);
}

void qv_aml_method_begin(struct qv_aml *a, const char *path, uint8_t nargs, int serialized)
{
    if (nargs > 7)
        a->err = QV_ERR_INVAL;
    qv_aml_byte(a, AML_METHOD);
    open_block(a);
    qv_aml_name_string(a, path);
    qv_aml_byte(a, (uint8_t)((nargs & 7) | (serialized ? 0x08 : 0)));
}

void qv_aml_package_begin(struct qv_aml *a, uint8_t nelements)
{
    qv_aml_byte(a, AML_PACKAGE);
    open_block(a);
    qv_aml_byte(a, nelements);
}

void qv_aml_buffer(struct qv_aml *a, const uint8_t *data, size_t n)
{
    qv_aml_byte(a, AML_BUFFER);
    open_block(a);
    qv_aml_integer(a, n);
    qv_aml_bytes(a, data, n);
    qv_aml_end(a);
}

void qv_aml_return(struct qv_aml *a) { qv_aml_byte(a, AML_RETURN); }

/* ---- resource templates (ACPI 6.x, 6.4 "Resource Data Types") ---- */

static void res_put(struct qv_res *r, const uint8_t *p, size_t n)
{
    if (r->err || !qv_range_ok(r->len, n, sizeof(r->buf))) {
        r->err = QV_ERR_NOMEM;
        return;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
}

void qv_res_io(struct qv_res *r, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    uint8_t d[8] = {0x47, 0x01, (uint8_t)min, (uint8_t)(min >> 8), (uint8_t)max,
                    (uint8_t)(max >> 8), align, len}; /* 0x01: 16-bit decode */
    res_put(r, d, sizeof(d));
}

void qv_res_irq(struct qv_res *r, uint16_t mask)
{
    uint8_t d[3] = {0x22, (uint8_t)mask, (uint8_t)(mask >> 8)}; /* IRQNoFlags */
    res_put(r, d, sizeof(d));
}

/* Word Address Space descriptor: producer, fixed min and max, positive decode. */
static void res_word(struct qv_res *r, uint8_t type, uint8_t type_flags, uint16_t min,
                     uint16_t max)
{
    uint16_t length = (uint16_t)(max - min + 1);
    uint8_t d[16] = {0x88, 13, 0, type, 0x0c, type_flags};
    qv_wr16(d + 6, 0);   /* granularity */
    qv_wr16(d + 8, min);
    qv_wr16(d + 10, max);
    qv_wr16(d + 12, 0);  /* translation */
    qv_wr16(d + 14, length);
    res_put(r, d, sizeof(d));
}

void qv_res_word_bus(struct qv_res *r, uint16_t min, uint16_t max) { res_word(r, 2, 0, min, max); }

void qv_res_word_io(struct qv_res *r, uint16_t min, uint16_t max)
{
    res_word(r, 1, 0x03, min, max); /* ISA and non-ISA ranges */
}

void qv_res_dword_mem(struct qv_res *r, uint32_t min, uint32_t max)
{
    uint8_t d[26] = {0x87, 23, 0, 0, 0x0c, 0x01}; /* memory; read-write, non-cacheable */
    qv_wr32(d + 6, 0);
    qv_wr32(d + 10, min);
    qv_wr32(d + 14, max);
    qv_wr32(d + 18, 0);
    qv_wr32(d + 22, max - min + 1);
    res_put(r, d, sizeof(d));
}

void qv_res_mem32_fixed(struct qv_res *r, uint32_t base, uint32_t len)
{
    uint8_t d[12] = {0x86, 9, 0, 0x01}; /* Memory32Fixed, read-write */
    qv_wr32(d + 4, base);
    qv_wr32(d + 8, len);
    res_put(r, d, sizeof(d));
}

void qv_res_end(struct qv_res *r)
{
    uint8_t d[2] = {0x79, 0}; /* checksum 0: "treat as correct" */
    res_put(r, d, sizeof(d));
}
