/* KVM_GET_SUPPORTED_CPUID: the one place the CPUID code touches /dev/kvm (a read-only query on
 * the system fd; no VM is created). */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "boot/bytes.h"
#include "quantavirt/cpuid.h"
#include "quantavirt/errors.h"

int qv_cpuid_query_supported(struct qv_cpuid_entry *out, size_t cap, char *errbuf,
                             size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (!out || cap == 0 || cap > QV_CPUID_MAX_ENTRIES)
        return qv_fail(QV_ERR_INVAL, errbuf, errlen, "cpuid: capacity must be 1..%d",
                       QV_CPUID_MAX_ENTRIES);
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return qv_fail(QV_ERR_NOVMX, errbuf, errlen,
                       "cannot open /dev/kvm: %s (load kvm_intel/kvm_amd, or add the user to "
                       "the kvm group)",
                       strerror(errno));
    size_t bytes = sizeof(struct kvm_cpuid2) + cap * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = calloc(1, bytes);
    if (!c) {
        close(fd);
        return qv_fail(QV_ERR_NOMEM, errbuf, errlen, "cpuid: out of memory");
    }
    c->nent = (uint32_t)cap;
    int rc = ioctl(fd, KVM_GET_SUPPORTED_CPUID, c);
    int e = errno;
    close(fd);
    if (rc < 0) {
        free(c);
        return qv_fail(QV_ERR_KVM, errbuf, errlen, "KVM_GET_SUPPORTED_CPUID failed: %s%s",
                       strerror(e), e == E2BIG ? " (more entries than the capacity)" : "");
    }
    /* Never trust the kernel's count beyond what we allocated. */
    size_t n = c->nent <= cap ? c->nent : cap;
    memcpy(out, c->entries, n * sizeof(*out));
    free(c);
    return (int)n;
}
