/* The split virtqueue on its own: geometry checks at setup, chain parsing, indirect tables,
 * every kind of hostile ring (each must break the queue, never touch memory outside RAM),
 * used ring publication and the notification-suppression logic. */
#include "quantavirt/errors.h"
#include "quantavirt/virtqueue.h"
#include "vdriver.h"

#define RAM_GPA 0x10000ull
#define RAM_SIZE (1u << 20)
#define QSIZE 16
#define DESC (RAM_GPA + 0x0)
#define AVAIL (RAM_GPA + 0x1000)
#define USED (RAM_GPA + 0x2000)
#define BUFS (RAM_GPA + 0x10000)
#define F(bit) (1ull << (bit))

static struct fake_ram ram;

static uint8_t *desc_table(void) { return ram_ptr(&ram, DESC); }

static void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    put_desc(desc_table(), i, addr, len, flags, next);
}

static void set_avail(uint16_t idx, uint16_t slot, uint16_t head)
{
    uint8_t *a = ram_ptr(&ram, AVAIL);
    memcpy(a + 4 + 2u * slot, &head, 2);
    memcpy(a + 2, &idx, 2);
}

static uint16_t used_idx(void)
{
    uint16_t v;
    memcpy(&v, (uint8_t *)ram_ptr(&ram, USED) + 2, 2);
    return v;
}

static void fresh(struct qv_virtqueue *vq, uint64_t features)
{
    memset(ram.host, 0, 0x10000);
    CHECK_EQ(qv_vq_setup(vq, &ram.mem, QSIZE, 256, DESC, AVAIL, USED, features), 0);
}

/* pop must fail and leave the queue broken with err */
static void expect_broken(struct qv_virtqueue *vq, enum qv_vq_error err)
{
    struct iovec iov[8];
    struct qv_vq_elem e = {.iov = iov, .iov_cap = 8};
    CHECK(qv_vq_pop(vq, &e) < 0);
    CHECK(vq->broken);
    CHECK_EQ(vq->error, err);
    /* and stays broken */
    CHECK(qv_vq_pop(vq, &e) < 0);
    CHECK(qv_vq_push(vq, 0, 0) < 0);
    CHECK(!qv_vq_should_notify(vq));
}

static void test_setup_checks(void)
{
    struct qv_virtqueue vq;
    CHECK(qv_vq_setup(&vq, &ram.mem, 0, 256, DESC, AVAIL, USED, 0) < 0);
    CHECK_EQ(vq.error, QV_VQ_ERR_SIZE);
    CHECK(qv_vq_setup(&vq, &ram.mem, 24, 256, DESC, AVAIL, USED, 0) < 0);
    CHECK(qv_vq_setup(&vq, &ram.mem, 512, 256, DESC, AVAIL, USED, 0) < 0);
    CHECK(qv_vq_setup(&vq, &ram.mem, 32768, 32768, DESC, AVAIL, USED, 0) == 0);
    /* misaligned rings */
    CHECK(qv_vq_setup(&vq, &ram.mem, 16, 256, DESC + 8, AVAIL, USED, 0) < 0);
    CHECK_EQ(vq.error, QV_VQ_ERR_RING_ADDR);
    CHECK(qv_vq_setup(&vq, &ram.mem, 16, 256, DESC, AVAIL + 1, USED, 0) < 0);
    CHECK(qv_vq_setup(&vq, &ram.mem, 16, 256, DESC, AVAIL, USED + 2, 0) < 0);
    /* outside RAM, straddling its end, before it, wrapping around 2^64 */
    uint64_t end = RAM_GPA + RAM_SIZE;
    CHECK(qv_vq_setup(&vq, &ram.mem, 16, 256, end - 128, AVAIL, USED, 0) < 0);
    CHECK(qv_vq_setup(&vq, &ram.mem, 16, 256, DESC, end - 32, USED, 0) < 0);
    CHECK(qv_vq_setup(&vq, &ram.mem, 16, 256, DESC, AVAIL, end - 128, 0) < 0);
    CHECK(qv_vq_setup(&vq, &ram.mem, 16, 256, 0, AVAIL, USED, 0) < 0);
    CHECK(qv_vq_setup(&vq, &ram.mem, 16, 256, UINT64_MAX - 15, AVAIL, USED, 0) < 0);
    CHECK(qv_vq_setup(&vq, &ram.mem, 16, 256, DESC, AVAIL, UINT64_MAX - 3, 0) < 0);
    /* exactly at the end is fine */
    CHECK_EQ(qv_vq_setup(&vq, &ram.mem, 16, 256, end - 256, end - 512, end - 1024, 0), 0);
    pass("setup_checks");
}

static void test_chain_and_push(void)
{
    struct qv_virtqueue vq;
    fresh(&vq, 0);
    struct iovec iov[8];
    struct qv_vq_elem e = {.iov = iov, .iov_cap = 8};
    CHECK_EQ(qv_vq_pop(&vq, &e), 0); /* empty */
    /* 2 readable + 1 zero-length + 2 writable, out of order in the table */
    set_desc(5, BUFS, 100, QV_VRING_DESC_F_NEXT, 9);
    set_desc(9, BUFS + 100, 28, QV_VRING_DESC_F_NEXT, 2);
    set_desc(2, BUFS + 200, 0, QV_VRING_DESC_F_NEXT | QV_VRING_DESC_F_WRITE, 3);
    set_desc(3, BUFS + 300, 7, QV_VRING_DESC_F_NEXT | QV_VRING_DESC_F_WRITE, 0);
    set_desc(0, BUFS + 400, 1, QV_VRING_DESC_F_WRITE, 0);
    set_avail(1, 0, 5);
    CHECK_EQ(qv_vq_pop(&vq, &e), 1);
    CHECK_EQ(e.head, 5);
    CHECK_EQ(e.out_num, 2);
    CHECK_EQ(e.in_num, 2);
    CHECK_EQ(e.out_len, 128);
    CHECK_EQ(e.in_len, 8);
    CHECK(iov[0].iov_base == ram_ptr(&ram, BUFS));
    CHECK(iov[1].iov_base == ram_ptr(&ram, BUFS + 100));
    CHECK(iov[2].iov_base == ram_ptr(&ram, BUFS + 300));
    CHECK(iov[3].iov_base == ram_ptr(&ram, BUFS + 400));
    CHECK_EQ(qv_vq_pop(&vq, &e), 0);
    CHECK_EQ(qv_vq_push(&vq, 5, 8), 0);
    CHECK_EQ(used_idx(), 1);
    uint32_t id, len;
    memcpy(&id, (uint8_t *)ram_ptr(&ram, USED) + 4, 4);
    memcpy(&len, (uint8_t *)ram_ptr(&ram, USED) + 8, 4);
    CHECK_EQ(id, 5);
    CHECK_EQ(len, 8);
    CHECK(qv_vq_should_notify(&vq));
    CHECK(!qv_vq_should_notify(&vq)); /* nothing new pushed */
    /* a push of a head never popped (device bug) breaks the queue */
    CHECK(qv_vq_push(&vq, 5, 0) < 0);
    CHECK_EQ(vq.error, QV_VQ_ERR_USED);
    /* index wrap-around: 70000 requests through a 16-entry ring */
    fresh(&vq, 0);
    set_desc(1, BUFS, 16, 0, 0);
    for (unsigned i = 1; i <= 70000; i++) {
        set_avail((uint16_t)i, (uint16_t)((i - 1) % QSIZE), 1);
        CHECK_EQ(qv_vq_pop(&vq, &e), 1);
        CHECK_EQ(qv_vq_push(&vq, e.head, 0), 0);
    }
    CHECK_EQ(used_idx(), (uint16_t)70000);
    CHECK(!vq.broken);
    pass("chain_and_push");
}

static void test_hostile(void)
{
    struct qv_virtqueue vq;
    uint64_t end = RAM_GPA + RAM_SIZE;

    fresh(&vq, 0); /* avail idx jumps by more than the queue size */
    set_avail(QSIZE + 1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_AVAIL_IDX);

    fresh(&vq, 0); /* head >= size */
    set_avail(1, 0, QSIZE);
    expect_broken(&vq, QV_VQ_ERR_HEAD);

    fresh(&vq, 0); /* next >= size */
    set_desc(0, BUFS, 8, QV_VRING_DESC_F_NEXT, 200);
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_NEXT);

    fresh(&vq, 0); /* self loop (zero-length buffers, so only the loop bound stops it) */
    set_desc(0, BUFS, 0, QV_VRING_DESC_F_NEXT, 0);
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_LOOP);

    fresh(&vq, 0); /* longer loop through the whole table */
    for (uint16_t i = 0; i < QSIZE; i++)
        set_desc(i, BUFS, 0, QV_VRING_DESC_F_NEXT, (uint16_t)((i + 1) % QSIZE));
    set_avail(1, 0, 3);
    expect_broken(&vq, QV_VQ_ERR_LOOP);

    fresh(&vq, 0); /* readable after writable */
    set_desc(0, BUFS, 8, QV_VRING_DESC_F_NEXT | QV_VRING_DESC_F_WRITE, 1);
    set_desc(1, BUFS, 8, 0, 0);
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_ORDER);

    /* buffers outside RAM: past the end, straddling it, below it, wrapping 2^64 */
    uint64_t bad[][2] = {{end, 1}, {end - 4, 8}, {RAM_GPA - 1, 2}, {0, 1},
                         {UINT64_MAX - 2, 8}, {BUFS, 0xffffffffu}};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fresh(&vq, 0);
        set_desc(0, bad[i][0], (uint32_t)bad[i][1], 0, 0);
        set_avail(1, 0, 0);
        expect_broken(&vq, QV_VQ_ERR_DESC_ADDR);
    }

    fresh(&vq, 0); /* more buffers than the device accepts (iov_cap 8) */
    for (uint16_t i = 0; i < 9; i++)
        set_desc(i, BUFS, 8, i < 8 ? QV_VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_IOV);

    fresh(&vq, 0); /* indirect without the feature */
    set_desc(0, BUFS, 32, QV_VRING_DESC_F_INDIRECT, 0);
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_INDIRECT);

    uint64_t ind = F(QV_VIRTIO_F_INDIRECT_DESC);
    struct {
        uint32_t len;
        uint16_t flags;
        enum qv_vq_error err;
    } ic[] = {
        {24, QV_VRING_DESC_F_INDIRECT, QV_VQ_ERR_INDIRECT},   /* not a multiple of 16 */
        {0, QV_VRING_DESC_F_INDIRECT, QV_VQ_ERR_INDIRECT},    /* empty */
        {32, QV_VRING_DESC_F_INDIRECT | QV_VRING_DESC_F_NEXT, QV_VQ_ERR_INDIRECT},
        {16 * (QV_VQ_MAX_INDIRECT + 1), QV_VRING_DESC_F_INDIRECT, QV_VQ_ERR_INDIRECT},
    };
    for (unsigned i = 0; i < sizeof ic / sizeof ic[0]; i++) {
        fresh(&vq, ind);
        set_desc(0, BUFS, ic[i].len, ic[i].flags, 1);
        set_avail(1, 0, 0);
        expect_broken(&vq, ic[i].err);
    }

    uint8_t *t = ram_ptr(&ram, BUFS + 0x1000);
    fresh(&vq, ind); /* nested indirect */
    put_desc(t, 0, BUFS + 0x2000, 16, QV_VRING_DESC_F_INDIRECT, 0);
    set_desc(0, BUFS + 0x1000, 16, QV_VRING_DESC_F_INDIRECT, 0);
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_INDIRECT);

    fresh(&vq, ind); /* loop inside the table */
    put_desc(t, 0, BUFS, 0, QV_VRING_DESC_F_NEXT, 1);
    put_desc(t, 1, BUFS, 0, QV_VRING_DESC_F_NEXT, 0);
    set_desc(0, BUFS + 0x1000, 32, QV_VRING_DESC_F_INDIRECT, 0);
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_LOOP);

    fresh(&vq, ind); /* next beyond the table */
    put_desc(t, 0, BUFS, 8, QV_VRING_DESC_F_NEXT, 2);
    set_desc(0, BUFS + 0x1000, 32, QV_VRING_DESC_F_INDIRECT, 0);
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_NEXT);

    fresh(&vq, ind); /* table outside RAM */
    set_desc(0, end - 16, 32, QV_VRING_DESC_F_INDIRECT, 0);
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_DESC_ADDR);

    fresh(&vq, ind); /* indirect after a direct descriptor */
    set_desc(0, BUFS, 8, QV_VRING_DESC_F_NEXT, 1);
    set_desc(1, BUFS + 0x1000, 16, QV_VRING_DESC_F_INDIRECT, 0);
    set_avail(1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_INDIRECT);

    fresh(&vq, ind); /* a valid indirect table works */
    put_desc(t, 0, BUFS, 16, QV_VRING_DESC_F_NEXT, 1);
    put_desc(t, 1, BUFS + 64, 1, QV_VRING_DESC_F_WRITE, 0);
    set_desc(0, BUFS + 0x1000, 32, QV_VRING_DESC_F_INDIRECT | QV_VRING_DESC_F_WRITE, 0);
    set_avail(1, 0, 0);
    struct iovec iov[4];
    struct qv_vq_elem e = {.iov = iov, .iov_cap = 4};
    CHECK_EQ(qv_vq_pop(&vq, &e), 1);
    CHECK_EQ(e.out_num, 1);
    CHECK_EQ(e.in_num, 1);
    CHECK(!vq.broken);

    fresh(&vq, 0); /* more in flight than the queue size: the driver re-posts unfinished work */
    set_desc(0, BUFS, 8, 0, 0);
    for (unsigned i = 1; i <= QSIZE; i++) {
        set_avail((uint16_t)i, (uint16_t)((i - 1) % QSIZE), 0);
        CHECK_EQ(qv_vq_pop(&vq, &e), 1);
    }
    set_avail(QSIZE + 1, 0, 0);
    expect_broken(&vq, QV_VQ_ERR_INFLIGHT);
    pass("hostile");
}

static void test_notify_logic(void)
{
    struct qv_virtqueue vq;
    struct iovec iov[4];
    struct qv_vq_elem e = {.iov = iov, .iov_cap = 4};
    CHECK(qv_vring_need_event(0, 1, 0));
    CHECK(!qv_vring_need_event(1, 1, 0));
    CHECK(qv_vring_need_event(5, 10, 0));
    CHECK(!qv_vring_need_event(10, 10, 0));
    CHECK(qv_vring_need_event(65535, 0, 65535)); /* wrap */

    /* without EVENT_IDX: NO_NOTIFY in used flags while disabled */
    fresh(&vq, 0);
    qv_vq_disable_notify(&vq);
    uint16_t flags;
    memcpy(&flags, ram_ptr(&ram, USED), 2);
    CHECK_EQ(flags, QV_VRING_USED_F_NO_NOTIFY);
    CHECK(!qv_vq_enable_notify(&vq));
    memcpy(&flags, ram_ptr(&ram, USED), 2);
    CHECK_EQ(flags, 0);
    /* buffers that arrived while disabled are reported by enable */
    set_desc(0, BUFS, 8, 0, 0);
    qv_vq_disable_notify(&vq);
    set_avail(1, 0, 0);
    CHECK(qv_vq_enable_notify(&vq));

    /* EVENT_IDX: avail_event follows consumption; used_event gates interrupts */
    fresh(&vq, F(QV_VIRTIO_F_EVENT_IDX));
    set_desc(0, BUFS, 8, 0, 0);
    uint8_t *avail = ram_ptr(&ram, AVAIL), *used = ram_ptr(&ram, USED);
    uint16_t used_event = 2;
    memcpy(avail + 4 + 2 * QSIZE, &used_event, 2);
    for (unsigned i = 1; i <= 4; i++) {
        set_avail((uint16_t)i, (uint16_t)(i - 1), 0);
        CHECK_EQ(qv_vq_pop(&vq, &e), 1);
        uint16_t avail_event;
        memcpy(&avail_event, used + 4 + 8 * QSIZE, 2);
        CHECK_EQ(avail_event, i);
        CHECK_EQ(qv_vq_push(&vq, 0, 0), 0);
        bool n = qv_vq_should_notify(&vq);
        /* first one always (nothing signalled yet), then when used idx passes 2 (i == 3) */
        CHECK_EQ(n, i == 1 || i == 3);
    }
    pass("notify_logic");
}

/* Guest RAM in two regions adjacent in guest-physical space but separate on the host: a
 * buffer crossing the boundary becomes two iovecs; one reaching past the end is refused. */
static void test_adjacent_regions(void)
{
    struct fake_ram a, b;
    ram_init(&a, 0x100000, 0x10000);
    ram_init(&b, 0x110000, 0x10000);
    struct qv_guest_memory mem = {.nregions = 2};
    mem.regions[0] = a.mem.regions[0];
    mem.regions[1] = b.mem.regions[0];
    uint8_t *desc = a.host, *avail = a.host + 0x1000, *used = a.host + 0x2000;
    struct qv_virtqueue vq;
    CHECK_EQ(qv_vq_setup(&vq, &mem, 4, 4, 0x100000, 0x101000, 0x102000, 0), 0);
    (void)used;
    put_desc(desc, 0, 0x10f000, 0x2000, QV_VRING_DESC_F_WRITE, 0);
    uint16_t head = 0, idx = 1;
    memcpy(avail + 4, &head, 2);
    memcpy(avail + 2, &idx, 2);
    struct iovec iov[4];
    struct qv_vq_elem e = {.iov = iov, .iov_cap = 4};
    CHECK_EQ(qv_vq_pop(&vq, &e), 1);
    CHECK_EQ(e.in_num, 2);
    CHECK_EQ(e.in_len, 0x2000);
    CHECK(iov[0].iov_base == a.host + 0xf000 && iov[0].iov_len == 0x1000);
    CHECK(iov[1].iov_base == b.host && iov[1].iov_len == 0x1000);
    memset(iov[0].iov_base, 1, iov[0].iov_len); /* both halves are writable host memory */
    memset(iov[1].iov_base, 1, iov[1].iov_len);
    CHECK_EQ(qv_vq_push(&vq, 0, 0x2000), 0);
    /* past the end of the second region */
    put_desc(desc, 1, 0x11f000, 0x2000, 0, 0);
    head = 1;
    idx = 2;
    memcpy(avail + 6, &head, 2);
    memcpy(avail + 2, &idx, 2);
    CHECK(qv_vq_pop(&vq, &e) < 0);
    CHECK_EQ(vq.error, QV_VQ_ERR_DESC_ADDR);
    /* a split that needs more iovecs than the device accepts */
    CHECK_EQ(qv_vq_setup(&vq, &mem, 4, 4, 0x100000, 0x101000, 0x102000, 0), 0);
    memset(avail, 0, 16);
    put_desc(desc, 0, 0x10f000, 0x2000, 0, 0);
    idx = 1;
    head = 0;
    memcpy(avail + 4, &head, 2);
    memcpy(avail + 2, &idx, 2);
    struct qv_vq_elem small = {.iov = iov, .iov_cap = 1};
    CHECK(qv_vq_pop(&vq, &small) < 0);
    CHECK_EQ(vq.error, QV_VQ_ERR_IOV);
    ram_free(&a);
    ram_free(&b);
    pass("adjacent_regions");
}

static void test_iov_helpers(void)
{
    uint8_t a[5] = {1, 2, 3, 4, 5}, b[3] = {6, 7, 8};
    struct iovec v[2] = {{a, 5}, {b, 3}};
    uint8_t out[8];
    CHECK_EQ(qv_iov_to_buf(v, 2, 3, out, 4), 4);
    CHECK(out[0] == 4 && out[1] == 5 && out[2] == 6 && out[3] == 7);
    CHECK_EQ(qv_iov_to_buf(v, 2, 7, out, 4), 1);
    CHECK_EQ(qv_iov_to_buf(v, 2, 100, out, 4), 0);
    uint8_t in[2] = {9, 9};
    CHECK_EQ(qv_iov_from_buf(v, 2, 4, in, 2), 2);
    CHECK(a[4] == 9 && b[0] == 9);
    struct iovec s[2];
    CHECK_EQ(qv_iov_slice(v, 2, 2, 5, s, 2), 2);
    CHECK(s[0].iov_base == a + 2 && s[0].iov_len == 3 && s[1].iov_base == b && s[1].iov_len == 2);
    CHECK_EQ(qv_iov_slice(v, 2, 2, 7, s, 2), -1); /* past the end */
    CHECK_EQ(qv_iov_slice(v, 2, 0, 8, s, 1), -1);  /* dst too small */
    CHECK_EQ(qv_iov_slice(v, 2, 0, 0, s, 2), 0);
    pass("iov_helpers");
}

int main(void)
{
    ram_init(&ram, RAM_GPA, RAM_SIZE);
    test_setup_checks();
    test_chain_and_push();
    test_hostile();
    test_notify_logic();
    test_iov_helpers();
    test_adjacent_regions();
    ram_free(&ram);
    printf("PASS test_virtqueue\n");
    return 0;
}
