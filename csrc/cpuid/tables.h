/* Internal: the feature-flag and CPU-model tables (features.c) used by cpuid.c. */
#ifndef QV_CPUID_TABLES_H
#define QV_CPUID_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "quantavirt/cpuid.h"

struct qv_cpuid_feature {
    const char *name;
    uint32_t function, index;
    uint8_t reg; /* enum qv_cpuid_reg */
    uint8_t bit;
};

struct qv_cpu_model {
    const char *name;
    const char *features; /* space-separated flag names */
};

extern const struct qv_cpuid_feature qv_cpuid_features[];
extern const int qv_cpuid_feature_total;
extern const struct qv_cpu_model qv_cpu_models[];
extern const int qv_cpu_model_total;

const struct qv_cpuid_feature *qv_cpuid_feature_find(const char *name, size_t len);
const struct qv_cpu_model *qv_cpu_model_find(const char *name);
int qv_cpu_model_has_feature(const struct qv_cpu_model *m, const struct qv_cpuid_feature *f);

#endif
