/* Per-event cost of the hooks as the program's own threads pay it: THREADS threads each make
 * N malloc+free pairs DEPTH frames below the thread's entry, and the program prints the mean CPU
 * time of a pair per thread (CLOCK_THREAD_CPUTIME_ID, so time spent descheduled on a busy
 * machine does not count, nor does the recorder's writer thread):
 *
 *   threadcpu THREADS N DEPTH      prints "cpu_ns_per_pair=<x>"
 *
 * Build: gcc -O2 -fomit-frame-pointer -g threadcpu.c -lpthread (used by scripts/bench-hooks.sh). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long n;
static int depth;
static double results[256];

static double thread_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

__attribute__((noinline)) static void pairs(long k) {
    for (long i = 0; i < k; i++) {
        void *volatile block = malloc(32 + (i & 1)); /* this thread's own */
        free(block);
    }
    __asm__ volatile("");
}

__attribute__((noinline)) static void nest(int d, long k) {
    if (d <= 1)
        pairs(k);
    else
        nest(d - 1, k);
    __asm__ volatile("");
}

static void *run(void *arg) {
    long id = (long)arg;
    nest(depth, n / 10); /* warm-up: the walk cache and the allocator */
    double t0 = thread_cpu_ns();
    nest(depth, n);
    results[id] = (thread_cpu_ns() - t0) / n;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: threadcpu THREADS N DEPTH\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    n = atol(argv[2]);
    depth = atoi(argv[3]);
    if (threads < 1 || threads > 256 || n < 1 || depth < 1) {
        fprintf(stderr, "threadcpu: THREADS in 1..256, N and DEPTH at least 1\n");
        return 2;
    }
    pthread_t t[256];
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, run, (void *)i);
    double sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        sum += results[i];
    }
    printf("cpu_ns_per_pair=%.1f\n", sum / threads);
    return 0;
}
