/* The notification protocol under real concurrency: a "guest" thread posts requests, kicks
 * only when the device asks for it, and sleeps until an interrupt when it has nothing to do;
 * a "device" thread pops, answers and pushes, interrupts only when the driver asks for it and
 * sleeps until a kick. A lost kick or a lost interrupt (a missing barrier or a wrong
 * suppression test) shows as a timeout; a torn or reordered ring as a data mismatch.
 * Run with and without VIRTIO_F_EVENT_IDX. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

#include "quantavirt/virtqueue.h"
#include "vdriver.h"

#define QSIZE 64
#define BUF_BYTES 8

struct shared {
    struct fake_ram ram;
    struct dq q;
    struct qv_virtqueue vq;
    int event_idx;
    unsigned long total;
    sem_t kick, irq;
    uint64_t bufs; /* QSIZE pairs of (readable, writable) 8-byte buffers */
    unsigned long kicks, irqs;
};

static int wait_sem(sem_t *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    while (sem_timedwait(s, &ts) != 0) {
        if (errno == ETIMEDOUT)
            return -1;
    }
    return 0;
}

static uint16_t ld16(const uint8_t *p)
{
    return __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE);
}

static void st16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELAXED);
}

static void *device_thread(void *arg)
{
    struct shared *s = arg;
    struct iovec iov[4];
    struct qv_vq_elem e = {.iov = iov, .iov_cap = 4};
    unsigned long done = 0;
    while (done < s->total) {
        qv_vq_disable_notify(&s->vq);
        for (;;) {
            int r = qv_vq_pop(&s->vq, &e);
            CHECK(r >= 0);
            if (r == 0)
                break;
            CHECK_EQ(e.out_num, 1);
            CHECK_EQ(e.in_num, 1);
            uint64_t seq;
            memcpy(&seq, iov[0].iov_base, 8);
            seq = ~seq;
            memcpy(iov[1].iov_base, &seq, 8);
            CHECK_EQ(qv_vq_push(&s->vq, e.head, BUF_BYTES), 0);
            done++;
        }
        if (qv_vq_should_notify(&s->vq)) {
            s->irqs++;
            sem_post(&s->irq);
        }
        if (done < s->total && !qv_vq_enable_notify(&s->vq)) {
            if (wait_sem(&s->kick) != 0) {
                fprintf(stderr, "device: lost kick after %lu requests\n", done);
                exit(1);
            }
        }
    }
    return NULL;
}

static void guest_run(struct shared *s)
{
    struct dq *q = &s->q;
    uint8_t *avail = q->avail, *used = q->used;
    uint16_t free_stack[QSIZE];
    unsigned nfree = QSIZE / 2;
    for (unsigned i = 0; i < QSIZE / 2; i++)
        free_stack[i] = (uint16_t)(2 * i);
    uint64_t seq_of[QSIZE] = {0};
    unsigned long posted = 0, completed = 0;
    uint16_t kicked_at = 0;
    while (completed < s->total) {
        /* post as many as fit */
        unsigned added = 0;
        while (nfree > 0 && posted < s->total) {
            uint16_t head = free_stack[--nfree];
            uint64_t rd = s->bufs + 16u * head, wr = rd + 8;
            uint64_t seq = posted + 1;
            memcpy(ram_ptr(&s->ram, rd), &seq, 8);
            memset(ram_ptr(&s->ram, wr), 0, 8);
            seq_of[head] = seq;
            put_desc(q->desc, head, rd, 8, QV_VRING_DESC_F_NEXT, (uint16_t)(head + 1));
            put_desc(q->desc, (uint16_t)(head + 1), wr, 8, QV_VRING_DESC_F_WRITE, 0);
            uint16_t *ring = (uint16_t *)(void *)(avail + 4);
            __atomic_store_n(&ring[q->avail_idx & (QSIZE - 1)], head, __ATOMIC_RELAXED);
            q->avail_idx++;
            __atomic_store_n((uint16_t *)(void *)(avail + 2), q->avail_idx, __ATOMIC_RELEASE);
            posted++;
            added++;
        }
        if (added) {
            /* kick_prepare: our avail idx store before reading the device's wish */
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            int need;
            if (s->event_idx)
                need = qv_vring_need_event(ld16(used + 4 + 8 * QSIZE), q->avail_idx, kicked_at);
            else
                need = !(ld16(used) & QV_VRING_USED_F_NO_NOTIFY);
            kicked_at = q->avail_idx;
            if (need) {
                s->kicks++;
                sem_post(&s->kick);
            }
        }
        /* reap */
        unsigned reaped = 0;
        for (;;) {
            uint16_t uidx = ld16(used + 2);
            if (uidx == q->last_used)
                break;
            uint8_t *el = used + 4 + 8u * (q->last_used & (QSIZE - 1));
            uint32_t id, len;
            memcpy(&id, el, 4);
            memcpy(&len, el + 4, 4);
            CHECK(id < QSIZE && id % 2 == 0);
            CHECK_EQ(len, BUF_BYTES);
            uint64_t got;
            memcpy(&got, ram_ptr(&s->ram, s->bufs + 16u * id + 8), 8);
            CHECK_EQ(got, ~seq_of[id]);
            free_stack[nfree++] = (uint16_t)id;
            q->last_used++;
            completed++;
            reaped++;
        }
        if (reaped || (nfree > 0 && posted < s->total))
            continue;
        /* nothing to do: ask for an interrupt, re-check, sleep */
        if (s->event_idx)
            st16(avail + 4 + 2 * QSIZE, q->last_used);
        else
            st16(avail, 0);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (ld16(used + 2) != q->last_used)
            continue;
        if (wait_sem(&s->irq) != 0) {
            fprintf(stderr, "guest: lost interrupt after %lu completions\n", completed);
            exit(1);
        }
    }
}

static void run(int event_idx, unsigned long total)
{
    struct shared s;
    memset(&s, 0, sizeof s);
    s.event_idx = event_idx;
    s.total = total;
    ram_init(&s.ram, 0x40000, 1u << 20);
    s.q.size = QSIZE;
    s.q.desc_gpa = ram_alloc(&s.ram, 16u * QSIZE, 16);
    s.q.avail_gpa = ram_alloc(&s.ram, 6u + 2u * QSIZE, 2);
    s.q.used_gpa = ram_alloc(&s.ram, 6u + 8u * QSIZE, 4);
    s.q.desc = ram_ptr(&s.ram, s.q.desc_gpa);
    s.q.avail = ram_ptr(&s.ram, s.q.avail_gpa);
    s.q.used = ram_ptr(&s.ram, s.q.used_gpa);
    s.bufs = ram_alloc(&s.ram, 16u * QSIZE, 16);
    uint64_t f = event_idx ? 1ull << QV_VIRTIO_F_EVENT_IDX : 0;
    CHECK_EQ(qv_vq_setup(&s.vq, &s.ram.mem, QSIZE, QSIZE, s.q.desc_gpa, s.q.avail_gpa,
                         s.q.used_gpa, f), 0);
    sem_init(&s.kick, 0, 0);
    sem_init(&s.irq, 0, 0);
    pthread_t dev;
    CHECK(pthread_create(&dev, NULL, device_thread, &s) == 0);
    guest_run(&s);
    pthread_join(dev, NULL);
    CHECK(!s.vq.broken);
    /* suppression must have worked: far fewer kicks and interrupts than requests */
    printf("event_idx=%d: %lu requests, %lu kicks, %lu interrupts\n", event_idx, total, s.kicks,
           s.irqs);
    CHECK(s.kicks < total);
    CHECK(s.irqs < total);
    sem_destroy(&s.kick);
    sem_destroy(&s.irq);
    ram_free(&s.ram);
    pass(event_idx ? "threads_event_idx" : "threads_flags");
}

int main(int argc, char **argv)
{
    unsigned long total = argc > 1 ? strtoul(argv[1], NULL, 0) : 300000;
    run(0, total);
    run(1, total);
    printf("PASS test_virtqueue_threads\n");
    return 0;
}
