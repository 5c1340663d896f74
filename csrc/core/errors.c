#include "quantavirt/errors.h"

#include <stddef.h>

struct qv_error_entry {
    int code;
    const char *name;
    const char *text;
};

static const struct qv_error_entry qv_errors[] = {
#define QV_ERROR_ENTRY(name, value, text) {value, #name, text},
    QV_ERROR_TABLE(QV_ERROR_ENTRY)
#undef QV_ERROR_ENTRY
};

#define QV_ERROR_ENTRIES ((int)(sizeof(qv_errors) / sizeof(qv_errors[0])))

static const struct qv_error_entry *qv_error_find(int code)
{
    for (int i = 0; i < QV_ERROR_ENTRIES; i++)
        if (qv_errors[i].code == code)
            return &qv_errors[i];
    return NULL;
}

const char *qv_strerror(int code)
{
    const struct qv_error_entry *e = qv_error_find(code);
    return e ? e->text : "unknown error";
}

const char *qv_strerror_name(int code)
{
    const struct qv_error_entry *e = qv_error_find(code);
    return e ? e->name : "QV_ERR_UNKNOWN";
}

int qv_error_count(void)
{
    return QV_ERROR_ENTRIES;
}

int qv_error_code_at(int index)
{
    if (index < 0 || index >= QV_ERROR_ENTRIES)
        return 1; /* never a valid code: callers stop at qv_error_count() anyway */
    return qv_errors[index].code;
}
