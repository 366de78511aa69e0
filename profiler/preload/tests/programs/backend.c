/* The allocator behind the preload library (TIDEMARK_ALLOCATOR), built by tests/preload.rs and
 * linked with libearly.so (early.c), whose constructor allocates before the library starts.
 *
 * mode "early" (default), printing one "key=value" per line:
 *   early_a=<addr>       malloc_usable_size(early_a) >= 100, then realloc(early_a, 5000): a
 *                        realloc record; the 100 'a' bytes survive the move
 *   free(early_b)        a free record
 *   realloc(early_c, 0)  a free record, returns NULL
 *   reallocarray(early_d, 10, 3): a realloc record of 30 bytes, the 'd' bytes survive
 *   free(early_a), free(early_d)
 *   dirty_decay_ms=<n>   jemalloc's opt.dirty_decay_ms through the exported mallctl, or
 *                        mallctl=ENOENT when glibc serves
 *   jemalloc_serves=<0|1> whether a malloc(1 MiB) shows up in jemalloc's stats.allocated
 *   ok
 * mode "churn MS": for MS milliseconds, allocate and free blocks of 1-64 KiB, keeping one in
 *   1024 (the heap grows steadily, by about 30 MiB a second).
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char *early_a, *early_b, *early_c, *early_d;
void *volatile sink;

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);

static int check(const char *p, char c, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != c) return 0;
    return 1;
}

static int early(void) {
    printf("early_a=%p\n", (void *)early_a);
    if (malloc_usable_size(early_a) < 100) abort();
    early_a = realloc(early_a, 5000);
    if (early_a == NULL || !check(early_a, 'a', 100)) abort();
    free(early_b);
    if (realloc(early_c, 0) != NULL) abort();
    early_d = reallocarray(early_d, 10, 3);
    if (early_d == NULL || !check(early_d, 'd', 30)) abort();
    free(early_a);
    free(early_d);

    mallctl_fn ctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
    if (ctl == NULL) abort();
    ssize_t decay = -1;
    size_t len = sizeof decay;
    int rc = ctl("opt.dirty_decay_ms", &decay, &len, NULL, 0);
    if (rc == ENOENT) {
        printf("mallctl=ENOENT\n");
    } else if (rc == 0) {
        printf("dirty_decay_ms=%zd\n", decay);
        uint64_t epoch = 1;
        size_t a0 = 0, a1 = 0, sz = sizeof a0;
        ctl("epoch", &epoch, &sz, &epoch, sizeof epoch);
        sz = sizeof a0;
        ctl("stats.allocated", &a0, &sz, NULL, 0);
        sink = malloc(1 << 20);
        ctl("epoch", &epoch, &sz, &epoch, sizeof epoch);
        sz = sizeof a1;
        ctl("stats.allocated", &a1, &sz, NULL, 0);
        printf("jemalloc_serves=%d\n", a1 >= a0 + (1 << 20));
        free(sink);
    } else {
        abort();
    }
    printf("ok\n");
    return 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int churn(long ms) {
    double end = now_ms() + ms;
    unsigned long i = 0;
    while (now_ms() < end) {
        for (int k = 0; k < 1000; k++, i++) {
            char *p = malloc(1024 + (i * 7919) % (63 * 1024));
            p[0] = 1;
            if (i % 1024) free(p);
            else sink = p;
        }
        usleep(500);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "early";
    if (!strcmp(mode, "churn")) return churn(argc > 2 ? atol(argv[2]) : 1500);
    return early();
}
