/* A tiny AML (ACPI Machine Language) writer: enough to describe devices, names, packages,
 * integers, strings, buffers and simple methods in a DSDT (ACPI 6.x, chapter 20 encoding).
 * Blocks with a PkgLength (Scope, Device, Method, Package, Buffer) are opened with a *_begin
 * call and closed with qv_aml_end; the length is patched in when the block closes. Errors
 * (buffer full, too deep, bad name) are sticky: check qv_aml_finish once at the end. */
#ifndef QUANTAVIRT_AML_H
#define QUANTAVIRT_AML_H

#include <stddef.h>
#include <stdint.h>

#define QV_AML_MAX_DEPTH 16

struct qv_aml {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int err; /* 0 or a negative QV code */
    int depth;
    size_t open[QV_AML_MAX_DEPTH]; /* where each open block's PkgLength goes */
};

void qv_aml_init(struct qv_aml *a, uint8_t *buf, size_t cap);
/* Bytes written so far, or the sticky error. */
int qv_aml_finish(struct qv_aml *a);

void qv_aml_byte(struct qv_aml *a, uint8_t v);
void qv_aml_bytes(struct qv_aml *a, const uint8_t *p, size_t n);
/* "\\_SB.PCI0", "_HID", "^COM1": segments of up to 4 characters, padded with '_'. */
void qv_aml_name_string(struct qv_aml *a, const char *path);
/* Smallest encoding: Zero, One, ByteConst, WordConst, DWordConst or QWordConst. */
void qv_aml_integer(struct qv_aml *a, uint64_t v);
void qv_aml_string(struct qv_aml *a, const char *s);
/* A compressed EISA id ("PNP0501") as a DWordConst. */
void qv_aml_eisaid(struct qv_aml *a, const char *id);
/* Name (path, <the data object the caller writes next>). */
void qv_aml_name(struct qv_aml *a, const char *path);
void qv_aml_buffer(struct qv_aml *a, const uint8_t *data, size_t n);

void qv_aml_scope_begin(struct qv_aml *a, const char *path);
void qv_aml_device_begin(struct qv_aml *a, const char *path);
/* flags: argument count (0..7) | 0x08 if serialized. */
void qv_aml_method_begin(struct qv_aml *a, const char *path, uint8_t nargs, int serialized);
void qv_aml_package_begin(struct qv_aml *a, uint8_t nelements);
void qv_aml_end(struct qv_aml *a);
/* Return (<the term the caller writes next>). */
void qv_aml_return(struct qv_aml *a);

/* Resource template descriptors, appended to a plain byte array (for qv_aml_buffer). */
struct qv_res {
    uint8_t buf[512];
    size_t len;
    int err;
};
void qv_res_io(struct qv_res *r, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
void qv_res_irq(struct qv_res *r, uint16_t mask);
void qv_res_word_bus(struct qv_res *r, uint16_t min, uint16_t max);
void qv_res_word_io(struct qv_res *r, uint16_t min, uint16_t max);
void qv_res_dword_mem(struct qv_res *r, uint32_t min, uint32_t max);
void qv_res_mem32_fixed(struct qv_res *r, uint32_t base, uint32_t len);
/* Closes the template (End Tag); then write it with qv_aml_buffer. */
void qv_res_end(struct qv_res *r);

#endif
