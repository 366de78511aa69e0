/* Cross-thread churn: 4 producers malloc blocks and hand them through a small ring to 4
 * consumers, which free them (and realloc some first). Addresses are reused across threads
 * all the time, so replaying the profile by sequence number checks the recorder's ordering. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define RING 256
#define PER_THREAD 50000

static void *ring[RING];
static unsigned head, tail;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER, not_empty = PTHREAD_COND_INITIALIZER;

static void put(void *p) {
    pthread_mutex_lock(&mu);
    while (head - tail == RING) pthread_cond_wait(&not_full, &mu);
    ring[head++ % RING] = p;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&mu);
}

static void *get(void) {
    pthread_mutex_lock(&mu);
    while (head == tail) pthread_cond_wait(&not_empty, &mu);
    void *p = ring[tail++ % RING];
    pthread_cond_signal(&not_full);
    pthread_mutex_unlock(&mu);
    return p;
}

static void *producer(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        void *p = malloc(16 + (i + id) % 200);
        *(volatile char *)p = 1;
        put(p);
        void *q = malloc(24); /* freed by the same thread right away */
        *(volatile char *)q = 1;
        free(q);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        void *p = get();
        if (i % 7 == 0) p = realloc(p, 300);
        free(p);
    }
    return NULL;
}

int main(void) {
    pthread_t t[8];
    for (uintptr_t i = 0; i < 4; i++) pthread_create(&t[i], NULL, producer, (void *)i);
    for (uintptr_t i = 4; i < 8; i++) pthread_create(&t[i], NULL, consumer, NULL);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    return 0;
}
