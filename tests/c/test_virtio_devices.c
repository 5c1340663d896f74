/* virtio-rng and virtio-console through the PCI transport with the test driver. */
#include "quantavirt/virtio_balloon.h"
#include "quantavirt/virtio_console.h"
#include "quantavirt/virtio_rng.h"
#include "vdriver.h"

#define F(bit) (1ull << (bit))

/* a deterministic entropy source standing in for a QUAC 100 card, serving 7 bytes per call */
static unsigned source_calls;
static ssize_t counting_source(void *opaque, void *buf, size_t len)
{
    uint8_t *ctr = opaque;
    source_calls++;
    size_t n = len < 7 ? len : 7;
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)buf)[i] = (*ctr)++;
    return (ssize_t)n;
}

static ssize_t failing_source(void *opaque, void *buf, size_t len)
{
    (void)opaque;
    (void)buf;
    (void)len;
    return -8;
}

static void test_rng(void)
{
    struct fake_ram ram;
    ram_init(&ram, 0x200000, 1u << 20);
    uint8_t ctr = 0;
    struct qv_virtio_rng *rng = qv_virtio_rng_new(counting_source, &ctr);
    CHECK(rng != NULL);
    struct vdrv d;
    vdrv_init(&d, qv_virtio_rng_device(rng), &ram, 2, 1);
    CHECK_EQ(cfg_rd(&d, 0x02, 2), 0x1044);
    CHECK_EQ(d.device_len, 0); /* no device config capability */
    vdrv_enable_msix(&d);
    CHECK(vdrv_negotiate(&d, F(QV_VIRTIO_F_VERSION_1)));
    vdrv_setup_queue(&d, 0, 16, 1);
    vdrv_driver_ok(&d);
    /* two writable buffers: 10 + 30 bytes */
    uint64_t a = ram_alloc(&ram, 10, 1), b = ram_alloc(&ram, 30, 1);
    struct buf bufs[2] = {{a, 10, 1}, {b, 30, 1}};
    uint16_t head = vdrv_post(&d, 0, bufs, 2, 0);
    vdrv_kick(&d, 0);
    uint16_t id;
    uint32_t len;
    CHECK(vdrv_get_used(&d, 0, &id, &len, 2));
    CHECK_EQ(id, head);
    CHECK_EQ(len, 40);
    uint8_t *pa = ram_ptr(&ram, a), *pb = ram_ptr(&ram, b);
    for (unsigned i = 0; i < 10; i++)
        CHECK_EQ(pa[i], i);
    for (unsigned i = 0; i < 30; i++)
        CHECK_EQ(pb[i], 10 + i);
    CHECK(source_calls >= 6);
    CHECK_EQ(qv_virtio_rng_bytes(rng), 40);
    CHECK_EQ(d.irq.msi[1], 1);
    vdrv_fini(&d);
    qv_virtio_rng_free(rng);

    /* a failing source gives a short (empty) reply, never garbage */
    rng = qv_virtio_rng_new(failing_source, NULL);
    vdrv_init(&d, qv_virtio_rng_device(rng), &ram, 2, 1);
    CHECK(vdrv_negotiate(&d, F(QV_VIRTIO_F_VERSION_1)));
    vdrv_setup_queue(&d, 0, 16, 0xffff);
    vdrv_driver_ok(&d);
    vdrv_post(&d, 0, bufs, 1, 0);
    vdrv_kick(&d, 0);
    CHECK(vdrv_get_used(&d, 0, &id, &len, 1));
    CHECK_EQ(len, 0);
    vdrv_fini(&d);
    qv_virtio_rng_free(rng);

    /* getrandom(2): 4 KiB that is not all zero and differs between two requests */
    rng = qv_virtio_rng_new(NULL, NULL);
    vdrv_init(&d, qv_virtio_rng_device(rng), &ram, 2, 1);
    CHECK(vdrv_negotiate(&d, F(QV_VIRTIO_F_VERSION_1) | F(QV_VIRTIO_F_INDIRECT_DESC)));
    vdrv_setup_queue(&d, 0, 16, 0xffff);
    vdrv_driver_ok(&d);
    uint64_t r1 = ram_alloc(&ram, 4096, 8), r2 = ram_alloc(&ram, 4096, 8);
    struct buf one = {r1, 4096, 1}, two = {r2, 4096, 1};
    vdrv_post(&d, 0, &one, 1, 1);
    vdrv_post(&d, 0, &two, 1, 0);
    vdrv_kick(&d, 0);
    CHECK(vdrv_get_used(&d, 0, &id, &len, 1));
    CHECK_EQ(len, 4096);
    CHECK(vdrv_get_used(&d, 0, &id, &len, 1));
    CHECK_EQ(len, 4096);
    CHECK(memcmp(ram_ptr(&ram, r1), ram_ptr(&ram, r2), 4096) != 0);
    unsigned nonzero = 0;
    for (unsigned i = 0; i < 4096; i++)
        nonzero += ((uint8_t *)ram_ptr(&ram, r1))[i] != 0;
    CHECK(nonzero > 3500);
    vdrv_fini(&d);
    qv_virtio_rng_free(rng);
    ram_free(&ram);
    pass("rng");
}

struct con_io {
    char out[256];
    size_t out_len;
    const char *in;
    size_t in_len, in_pos;
};

static void con_output(void *opaque, const void *buf, size_t len)
{
    struct con_io *io = opaque;
    CHECK(io->out_len + len <= sizeof io->out);
    memcpy(io->out + io->out_len, buf, len);
    io->out_len += len;
}

static ssize_t con_input(void *opaque, void *buf, size_t len)
{
    struct con_io *io = opaque;
    size_t n = io->in_len - io->in_pos;
    if (n > len)
        n = len;
    memcpy(buf, io->in + io->in_pos, n);
    io->in_pos += n;
    return (ssize_t)n;
}

static void test_console(void)
{
    struct fake_ram ram;
    ram_init(&ram, 0x200000, 1u << 20);
    struct con_io io = {0};
    char logpath[] = "/tmp/qv-console-log-XXXXXX";
    int logfd = mkstemp(logpath);
    CHECK(logfd >= 0);
    struct qv_virtio_console_options o = {.output = con_output, .out_fd = -1, .log_fd = logfd,
                                          .input = con_input, .opaque = &io, .cols = 80,
                                          .rows = 25};
    struct qv_virtio_console *con = qv_virtio_console_new(&o);
    CHECK(con != NULL);
    struct vdrv d;
    vdrv_init(&d, qv_virtio_console_device(con), &ram, 3, 1);
    CHECK_EQ(cfg_rd(&d, 0x02, 2), 0x1043);
    vdrv_enable_msix(&d);
    CHECK(vdrv_device_features(&d) & F(QV_VIRTIO_CONSOLE_F_EMERG_WRITE));
    CHECK(vdrv_negotiate(&d, F(QV_VIRTIO_F_VERSION_1) | F(QV_VIRTIO_CONSOLE_F_EMERG_WRITE)));
    CHECK_EQ(bar_rd(&d, d.device + 0, 2), 80);
    CHECK_EQ(bar_rd(&d, d.device + 2, 2), 25);
    CHECK_EQ(bar_rd(&d, d.device + 4, 4), 1);
    vdrv_setup_queue(&d, 0, 8, 1);
    vdrv_setup_queue(&d, 1, 8, 2);
    /* receive buffers posted before DRIVER_OK are served once the driver is ready */
    uint64_t rx = ram_alloc(&ram, 16, 1);
    struct buf rb = {rx, 16, 1};
    vdrv_post(&d, 0, &rb, 1, 0);
    vdrv_kick(&d, 0); /* ignored before DRIVER_OK */
    io.in = "hello";
    io.in_len = 5;
    vdrv_driver_ok(&d);
    uint16_t id;
    uint32_t len;
    CHECK(vdrv_get_used(&d, 0, &id, &len, 1));
    CHECK_EQ(len, 5);
    CHECK(memcmp(ram_ptr(&ram, rx), "hello", 5) == 0);
    /* no input: the next buffer is held, not returned empty */
    vdrv_post(&d, 0, &rb, 1, 0);
    vdrv_kick(&d, 0);
    CHECK(!vdrv_get_used(&d, 0, &id, &len, 1));
    io.in = "0123456789abcdefXYZ";
    io.in_len = 19;
    io.in_pos = 0;
    CHECK_EQ(qv_virtio_pci_process_queue(d.pci, 0), 0); /* the engine saw input */
    CHECK(vdrv_get_used(&d, 0, &id, &len, 1));
    CHECK_EQ(len, 16);
    CHECK(memcmp(ram_ptr(&ram, rx), "0123456789abcdef", 16) == 0);
    CHECK_EQ(io.in_pos, 16); /* the rest waits for the next buffer */
    /* output: two readable buffers in one chain */
    uint64_t t1 = ram_alloc(&ram, 6, 1), t2 = ram_alloc(&ram, 7, 1);
    memcpy(ram_ptr(&ram, t1), "guest ", 6);
    memcpy(ram_ptr(&ram, t2), "output\n", 7);
    struct buf tb[2] = {{t1, 6, 0}, {t2, 7, 0}};
    vdrv_post(&d, 1, tb, 2, 0);
    vdrv_kick(&d, 1);
    CHECK(vdrv_get_used(&d, 1, &id, &len, 2));
    CHECK_EQ(len, 0);
    CHECK_EQ(io.out_len, 13);
    CHECK(memcmp(io.out, "guest output\n", 13) == 0);
    CHECK(d.irq.msi[2] >= 1);
    /* emergency write */
    bar_wr(&d, d.device + 8, 4, '!');
    CHECK_EQ(io.out_len, 14);
    CHECK_EQ(io.out[13], '!');
    /* the log has everything the guest wrote */
    char logbuf[64] = {0};
    CHECK_EQ(pread(logfd, logbuf, sizeof logbuf, 0), 14);
    CHECK(memcmp(logbuf, "guest output\n!", 14) == 0);
    close(logfd);
    unlink(logpath);
    vdrv_fini(&d);
    qv_virtio_console_free(con);
    ram_free(&ram);
    pass("console");
}

static void put_stat(uint8_t *p, uint16_t tag, uint64_t val)
{
    memcpy(p, &tag, 2);
    memcpy(p + 2, &val, 8);
}

static void test_balloon(void)
{
    struct fake_ram ram;
    ram_init(&ram, 0x100000, 1u << 20);
    struct qv_virtio_balloon *b = qv_virtio_balloon_new(NULL);
    CHECK(b != NULL);
    struct vdrv d;
    vdrv_init(&d, qv_virtio_balloon_device(b), &ram, 4, 1);
    CHECK_EQ(cfg_rd(&d, 0x02, 2), 0x1045);
    vdrv_enable_msix(&d);
    uint64_t f = vdrv_device_features(&d);
    CHECK(f & F(QV_VIRTIO_BALLOON_F_STATS_VQ));
    CHECK(!(f & F(QV_VIRTIO_BALLOON_F_DEFLATE_ON_OOM)));
    CHECK(vdrv_negotiate(&d, F(QV_VIRTIO_F_VERSION_1) | F(QV_VIRTIO_BALLOON_F_STATS_VQ)));
    bar_wr(&d, d.common + 0x10, 2, 0);
    for (uint16_t q = 0; q < 3; q++)
        vdrv_setup_queue(&d, q, 16, (uint16_t)(q + 1));
    vdrv_driver_ok(&d);

    /* the host sets a target: the driver sees it with a config interrupt */
    uint8_t gen = (uint8_t)bar_rd(&d, d.common + 0x15, 1);
    qv_virtio_balloon_set_target(b, 3);
    qv_virtio_pci_config_changed(d.pci);
    CHECK_EQ(d.irq.msi[0], 1);
    CHECK_EQ(bar_rd(&d, d.common + 0x15, 1), (uint8_t)(gen + 1));
    CHECK_EQ(bar_rd(&d, d.device + 0, 4), 3);

    /* inflate: two contiguous pages, one more, and one PFN outside RAM */
    uint64_t pages = ram_alloc(&ram, 4 * 4096, 4096);
    memset(ram_ptr(&ram, pages), 0x77, 4 * 4096);
    uint64_t pfns_gpa = ram_alloc(&ram, 16, 4);
    uint32_t pfns[4] = {(uint32_t)(pages >> 12), (uint32_t)(pages >> 12) + 1,
                        (uint32_t)(pages >> 12) + 3, 0xfffff};
    memcpy(ram_ptr(&ram, pfns_gpa), pfns, sizeof pfns);
    struct buf pb = {pfns_gpa, sizeof pfns, 0};
    vdrv_post(&d, 0, &pb, 1, 0);
    vdrv_kick(&d, 0);
    uint16_t id;
    uint32_t len;
    CHECK(vdrv_get_used(&d, 0, &id, &len, 1));
    uint8_t *pg = ram_ptr(&ram, pages);
    CHECK_EQ(pg[0], 0);            /* discarded: reads back as zero */
    CHECK_EQ(pg[2 * 4096 - 1], 0);
    CHECK_EQ(pg[2 * 4096], 0x77);  /* the page not given is intact */
    CHECK_EQ(pg[3 * 4096], 0);
    bar_wr(&d, d.device + 4, 4, 3); /* actual */
    CHECK_EQ(qv_virtio_balloon_actual(b), 3);
    bar_wr(&d, d.device + 0, 4, 99); /* num_pages is the host's: ignored */
    CHECK_EQ(bar_rd(&d, d.device + 0, 4), 3);
    struct qv_virtio_balloon_stats st;
    qv_virtio_balloon_get_stats(b, &st);
    CHECK_EQ(st.inflated_pages, 4);
    CHECK_EQ(st.bad_pfns, 1);

    /* deflate one page back */
    vdrv_post(&d, 1, &(struct buf){pfns_gpa, 4, 0}, 1, 0);
    vdrv_kick(&d, 1);
    CHECK(vdrv_get_used(&d, 1, &id, &len, 1));
    qv_virtio_balloon_get_stats(b, &st);
    CHECK_EQ(st.deflated_pages, 1);

    /* statistics: the driver's buffer is held; a request hands it back for a refresh */
    uint64_t sgpa = ram_alloc(&ram, 30, 8);
    uint8_t *sb = ram_ptr(&ram, sgpa);
    put_stat(sb, QV_VIRTIO_BALLOON_S_MEMFREE, 1234);
    put_stat(sb + 10, QV_VIRTIO_BALLOON_S_MEMTOT, 5678);
    put_stat(sb + 20, 300, 1); /* unknown tag: ignored */
    struct buf sbuf = {sgpa, 30, 0};
    vdrv_post(&d, 2, &sbuf, 1, 0);
    vdrv_kick(&d, 2);
    CHECK(!vdrv_get_used(&d, 2, &id, &len, 1));
    qv_virtio_balloon_get_stats(b, &st);
    CHECK_EQ(st.updates, 1);
    CHECK_EQ(st.value[QV_VIRTIO_BALLOON_S_MEMFREE], 1234);
    CHECK_EQ(st.value[QV_VIRTIO_BALLOON_S_MEMTOT], 5678);
    CHECK_EQ(st.value[QV_VIRTIO_BALLOON_S_SWAP_IN], UINT64_MAX);
    unsigned irq_before = d.irq.msi[3];
    qv_virtio_balloon_request_stats(b);
    qv_virtio_pci_process_queue(d.pci, QV_VIRTIO_BALLOON_STATSQ);
    CHECK(vdrv_get_used(&d, 2, &id, &len, 1));
    CHECK_EQ(d.irq.msi[3], irq_before + 1);
    put_stat(sb, QV_VIRTIO_BALLOON_S_MEMFREE, 999);
    vdrv_post(&d, 2, &sbuf, 1, 0);
    vdrv_kick(&d, 2);
    qv_virtio_balloon_get_stats(b, &st);
    CHECK_EQ(st.updates, 2);
    CHECK_EQ(st.value[QV_VIRTIO_BALLOON_S_MEMFREE], 999);
    vdrv_fini(&d);
    qv_virtio_balloon_free(b);
    ram_free(&ram);
    pass("balloon");
}

int main(void)
{
    test_rng();
    test_console();
    test_balloon();
    printf("PASS test_virtio_devices\n");
    return 0;
}
