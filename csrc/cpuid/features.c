/* CPUID feature flags (Linux /proc/cpuinfo names) with their location, and the named CPU
 * models' baselines as lists of those flags. */
#include "cpuid/tables.h"

#include <string.h>

#include "quantavirt/errors.h"

#define L1 0x1, 0
#define L7 0x7, 0
#define L7_1 0x7, 1
#define LD_1 0xd, 1
#define LX1 0x80000001, 0
#define LX8 0x80000008, 0

const struct qv_cpuid_feature qv_cpuid_features[] = {
    /* leaf 1 EDX */
    {"fpu", L1, QV_CPUID_EDX, 0}, {"vme", L1, QV_CPUID_EDX, 1}, {"de", L1, QV_CPUID_EDX, 2},
    {"pse", L1, QV_CPUID_EDX, 3}, {"tsc", L1, QV_CPUID_EDX, 4}, {"msr", L1, QV_CPUID_EDX, 5},
    {"pae", L1, QV_CPUID_EDX, 6}, {"mce", L1, QV_CPUID_EDX, 7}, {"cx8", L1, QV_CPUID_EDX, 8},
    {"apic", L1, QV_CPUID_EDX, 9}, {"sep", L1, QV_CPUID_EDX, 11},
    {"mtrr", L1, QV_CPUID_EDX, 12}, {"pge", L1, QV_CPUID_EDX, 13},
    {"mca", L1, QV_CPUID_EDX, 14}, {"cmov", L1, QV_CPUID_EDX, 15},
    {"pat", L1, QV_CPUID_EDX, 16}, {"pse36", L1, QV_CPUID_EDX, 17},
    {"clflush", L1, QV_CPUID_EDX, 19}, {"mmx", L1, QV_CPUID_EDX, 23},
    {"fxsr", L1, QV_CPUID_EDX, 24}, {"sse", L1, QV_CPUID_EDX, 25},
    {"sse2", L1, QV_CPUID_EDX, 26}, {"ss", L1, QV_CPUID_EDX, 27}, {"ht", L1, QV_CPUID_EDX, 28},
    /* leaf 1 ECX */
    {"pni", L1, QV_CPUID_ECX, 0}, {"pclmulqdq", L1, QV_CPUID_ECX, 1},
    {"monitor", L1, QV_CPUID_ECX, 3}, {"vmx", L1, QV_CPUID_ECX, 5},
    {"ssse3", L1, QV_CPUID_ECX, 9}, {"fma", L1, QV_CPUID_ECX, 12},
    {"cx16", L1, QV_CPUID_ECX, 13}, {"pdcm", L1, QV_CPUID_ECX, 15},
    {"pcid", L1, QV_CPUID_ECX, 17}, {"sse4_1", L1, QV_CPUID_ECX, 19},
    {"sse4_2", L1, QV_CPUID_ECX, 20}, {"x2apic", L1, QV_CPUID_ECX, 21},
    {"movbe", L1, QV_CPUID_ECX, 22}, {"popcnt", L1, QV_CPUID_ECX, 23},
    {"tsc_deadline_timer", L1, QV_CPUID_ECX, 24}, {"aes", L1, QV_CPUID_ECX, 25},
    {"xsave", L1, QV_CPUID_ECX, 26}, {"avx", L1, QV_CPUID_ECX, 28},
    {"f16c", L1, QV_CPUID_ECX, 29}, {"rdrand", L1, QV_CPUID_ECX, 30},
    {"hypervisor", L1, QV_CPUID_ECX, 31},
    /* leaf 7.0 EBX */
    {"fsgsbase", L7, QV_CPUID_EBX, 0}, {"tsc_adjust", L7, QV_CPUID_EBX, 1},
    {"sgx", L7, QV_CPUID_EBX, 2}, {"bmi1", L7, QV_CPUID_EBX, 3}, {"hle", L7, QV_CPUID_EBX, 4},
    {"avx2", L7, QV_CPUID_EBX, 5}, {"smep", L7, QV_CPUID_EBX, 7}, {"bmi2", L7, QV_CPUID_EBX, 8},
    {"erms", L7, QV_CPUID_EBX, 9}, {"invpcid", L7, QV_CPUID_EBX, 10},
    {"rtm", L7, QV_CPUID_EBX, 11}, {"mpx", L7, QV_CPUID_EBX, 14},
    {"avx512f", L7, QV_CPUID_EBX, 16}, {"avx512dq", L7, QV_CPUID_EBX, 17},
    {"rdseed", L7, QV_CPUID_EBX, 18}, {"adx", L7, QV_CPUID_EBX, 19},
    {"smap", L7, QV_CPUID_EBX, 20}, {"avx512ifma", L7, QV_CPUID_EBX, 21},
    {"clflushopt", L7, QV_CPUID_EBX, 23}, {"clwb", L7, QV_CPUID_EBX, 24},
    {"avx512cd", L7, QV_CPUID_EBX, 28}, {"sha_ni", L7, QV_CPUID_EBX, 29},
    {"avx512bw", L7, QV_CPUID_EBX, 30}, {"avx512vl", L7, QV_CPUID_EBX, 31},
    /* leaf 7.0 ECX */
    {"avx512vbmi", L7, QV_CPUID_ECX, 1}, {"umip", L7, QV_CPUID_ECX, 2},
    {"pku", L7, QV_CPUID_ECX, 3}, {"waitpkg", L7, QV_CPUID_ECX, 5},
    {"avx512_vbmi2", L7, QV_CPUID_ECX, 6}, {"gfni", L7, QV_CPUID_ECX, 8},
    {"vaes", L7, QV_CPUID_ECX, 9}, {"vpclmulqdq", L7, QV_CPUID_ECX, 10},
    {"avx512_vnni", L7, QV_CPUID_ECX, 11}, {"avx512_bitalg", L7, QV_CPUID_ECX, 12},
    {"avx512_vpopcntdq", L7, QV_CPUID_ECX, 14}, {"la57", L7, QV_CPUID_ECX, 16},
    {"rdpid", L7, QV_CPUID_ECX, 22}, {"bus_lock_detect", L7, QV_CPUID_ECX, 24},
    {"cldemote", L7, QV_CPUID_ECX, 25}, {"movdiri", L7, QV_CPUID_ECX, 27},
    {"movdir64b", L7, QV_CPUID_ECX, 28},
    /* leaf 7.0 EDX */
    {"fsrm", L7, QV_CPUID_EDX, 4}, {"avx512_vp2intersect", L7, QV_CPUID_EDX, 8},
    {"md_clear", L7, QV_CPUID_EDX, 10}, {"serialize", L7, QV_CPUID_EDX, 14},
    {"tsxldtrk", L7, QV_CPUID_EDX, 16}, {"amx_bf16", L7, QV_CPUID_EDX, 22},
    {"avx512_fp16", L7, QV_CPUID_EDX, 23}, {"amx_tile", L7, QV_CPUID_EDX, 24},
    {"amx_int8", L7, QV_CPUID_EDX, 25}, {"spec_ctrl", L7, QV_CPUID_EDX, 26},
    {"intel_stibp", L7, QV_CPUID_EDX, 27}, {"flush_l1d", L7, QV_CPUID_EDX, 28},
    {"arch_capabilities", L7, QV_CPUID_EDX, 29}, {"ssbd", L7, QV_CPUID_EDX, 31},
    /* leaf 7.1 EAX */
    {"avx_vnni", L7_1, QV_CPUID_EAX, 4}, {"avx512_bf16", L7_1, QV_CPUID_EAX, 5},
    /* leaf 0xd.1 EAX */
    {"xsaveopt", LD_1, QV_CPUID_EAX, 0}, {"xsavec", LD_1, QV_CPUID_EAX, 1},
    {"xgetbv1", LD_1, QV_CPUID_EAX, 2}, {"xsaves", LD_1, QV_CPUID_EAX, 3},
    /* leaf 0x80000001 ECX */
    {"lahf_lm", LX1, QV_CPUID_ECX, 0}, {"cmp_legacy", LX1, QV_CPUID_ECX, 1},
    {"svm", LX1, QV_CPUID_ECX, 2}, {"extapic", LX1, QV_CPUID_ECX, 3},
    {"cr8_legacy", LX1, QV_CPUID_ECX, 4}, {"abm", LX1, QV_CPUID_ECX, 5},
    {"sse4a", LX1, QV_CPUID_ECX, 6}, {"misalignsse", LX1, QV_CPUID_ECX, 7},
    {"3dnowprefetch", LX1, QV_CPUID_ECX, 8}, {"osvw", LX1, QV_CPUID_ECX, 9},
    {"xop", LX1, QV_CPUID_ECX, 11}, {"fma4", LX1, QV_CPUID_ECX, 16},
    {"tbm", LX1, QV_CPUID_ECX, 21}, {"topoext", LX1, QV_CPUID_ECX, 22},
    {"perfctr_core", LX1, QV_CPUID_ECX, 23},
    /* leaf 0x80000001 EDX */
    {"syscall", LX1, QV_CPUID_EDX, 11}, {"nx", LX1, QV_CPUID_EDX, 20},
    {"mmxext", LX1, QV_CPUID_EDX, 22}, {"fxsr_opt", LX1, QV_CPUID_EDX, 25},
    {"pdpe1gb", LX1, QV_CPUID_EDX, 26}, {"rdtscp", LX1, QV_CPUID_EDX, 27},
    {"lm", LX1, QV_CPUID_EDX, 29},
    /* leaf 0x80000008 EBX */
    {"clzero", LX8, QV_CPUID_EBX, 0}, {"xsaveerptr", LX8, QV_CPUID_EBX, 2},
    {"wbnoinvd", LX8, QV_CPUID_EBX, 9}, {"ibpb", LX8, QV_CPUID_EBX, 12},
    {"ibrs", LX8, QV_CPUID_EBX, 14}, {"stibp", LX8, QV_CPUID_EBX, 15},
    {"amd_ssbd", LX8, QV_CPUID_EBX, 24}, {"virt_ssbd", LX8, QV_CPUID_EBX, 25},
};
const int qv_cpuid_feature_total = sizeof(qv_cpuid_features) / sizeof(qv_cpuid_features[0]);

/* Baselines, cumulative along each family as in the product's model table. */
#define X86_64_BASE                                                                         \
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx "   \
    "fxsr sse sse2 syscall nx lm lahf_lm pni ssse3 cx16 sse4_1 sse4_2 popcnt x2apic "        \
    "hypervisor pclmulqdq fma movbe aes xsave avx f16c rdrand abm 3dnowprefetch pdpe1gb "    \
    "rdtscp fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt xsaveopt xsavec xgetbv1 "
#define SKYLAKE_SERVER                                                                      \
    X86_64_BASE "ss pcid tsc_deadline_timer tsc_adjust erms invpcid hle rtm mpx avx512f "    \
                "avx512dq avx512cd avx512bw avx512vl clwb pku spec_ctrl ssbd md_clear "      \
                "arch_capabilities "
#define CASCADELAKE_SERVER SKYLAKE_SERVER "avx512_vnni "
#define ICELAKE_SERVER                                                                      \
    CASCADELAKE_SERVER "sha_ni vpclmulqdq vaes gfni avx512vbmi avx512_vbmi2 avx512_bitalg "  \
                       "avx512_vpopcntdq avx512ifma rdpid umip la57 fsrm wbnoinvd xsaves "
#define SAPPHIRE_RAPIDS                                                                     \
    ICELAKE_SERVER "amx_bf16 amx_tile amx_int8 avx512_bf16 avx512_fp16 avx_vnni serialize "  \
                   "tsxldtrk movdiri movdir64b cldemote bus_lock_detect "
#define EPYC_7001                                                                           \
    X86_64_BASE "sha_ni sse4a misalignsse osvw topoext cmp_legacy mmxext fxsr_opt "          \
                "perfctr_core clzero xsaves ibpb "
#define EPYC_ROME EPYC_7001 "rdpid wbnoinvd clwb umip xsaveerptr stibp amd_ssbd "
#define EPYC_MILAN EPYC_ROME "vaes vpclmulqdq pku invpcid erms fsrm pcid "
#define EPYC_GENOA                                                                          \
    EPYC_MILAN "avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512vbmi "          \
               "avx512_vbmi2 gfni avx512_vnni avx512_bitalg avx512_vpopcntdq avx512_bf16 la57 "

const struct qv_cpu_model qv_cpu_models[] = {
    {"Skylake-Server", SKYLAKE_SERVER},
    {"Cascadelake-Server", CASCADELAKE_SERVER},
    {"Icelake-Server", ICELAKE_SERVER},
    {"SapphireRapids", SAPPHIRE_RAPIDS},
    {"EPYC", EPYC_7001},
    {"EPYC-Rome", EPYC_ROME},
    {"EPYC-Milan", EPYC_MILAN},
    {"EPYC-Genoa", EPYC_GENOA},
};
const int qv_cpu_model_total = sizeof(qv_cpu_models) / sizeof(qv_cpu_models[0]);

const struct qv_cpuid_feature *qv_cpuid_feature_find(const char *name, size_t len)
{
    for (int i = 0; i < qv_cpuid_feature_total; i++)
        if (strlen(qv_cpuid_features[i].name) == len &&
            memcmp(qv_cpuid_features[i].name, name, len) == 0)
            return &qv_cpuid_features[i];
    return NULL;
}

const struct qv_cpu_model *qv_cpu_model_find(const char *name)
{
    for (int i = 0; i < qv_cpu_model_total; i++)
        if (strcmp(qv_cpu_models[i].name, name) == 0)
            return &qv_cpu_models[i];
    return NULL;
}

int qv_cpu_model_has_feature(const struct qv_cpu_model *m, const struct qv_cpuid_feature *f)
{
    size_t len = strlen(f->name);
    for (const char *p = m->features; *p;) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && memcmp(p, f->name, n) == 0)
            return 1;
        p += n;
        while (*p == ' ')
            p++;
    }
    return 0;
}

int qv_cpuid_model_count(void) { return qv_cpu_model_total; }

const char *qv_cpuid_model_name(int i)
{
    return (i >= 0 && i < qv_cpu_model_total) ? qv_cpu_models[i].name : NULL;
}

int qv_cpuid_feature_count(void) { return qv_cpuid_feature_total; }

int qv_cpuid_feature_at(int i, const char **name, uint32_t *function, uint32_t *index,
                        uint32_t *reg, uint32_t *bit)
{
    if (i < 0 || i >= qv_cpuid_feature_total)
        return QV_ERR_INVAL;
    const struct qv_cpuid_feature *f = &qv_cpuid_features[i];
    *name = f->name;
    *function = f->function;
    *index = f->index;
    *reg = f->reg;
    *bit = f->bit;
    return 0;
}

int qv_cpuid_model_has(const char *model, const char *feature)
{
    const struct qv_cpu_model *m = model ? qv_cpu_model_find(model) : NULL;
    const struct qv_cpuid_feature *f =
        feature ? qv_cpuid_feature_find(feature, strlen(feature)) : NULL;
    if (!m || !f)
        return QV_ERR_INVAL;
    return qv_cpu_model_has_feature(m, f);
}
