/* Test program for the preload library: a documented sequence of allocations.
 * Built with -O2 -fomit-frame-pointer by tests/preload.rs.
 *
 * mode "basic":
 *   alloc77:     1000 x malloc(77), the first 300 freed by free300
 *   calloc_site: calloc(10, 12) = 120 bytes, kept
 *   realloc_site: realloc(NULL, 40) (kind realloc), realloc(p, 4000) (realloc record),
 *                 realloc(p, 0) (a free); malloc(8), a failing realloc of it, free;
 *                 reallocarray(NULL, 7, 9) = 63 bytes (kind reallocarray), reallocarray(p, 11,
 *                 13) = 143 (realloc record), an overflowing reallocarray (ENOMEM, p kept),
 *                 free
 *   aligned_site: posix_memalign(64, 100), aligned_alloc(32, 64), memalign(128, 10),
 *                 valloc(5), pvalloc(5): all kept; posix_memalign(24, ...) -> EINVAL
 *   strdup_site: strdup of a 14-char string (15 bytes, allocated inside libc)
 *   qsort_site:  qsort with a comparator that mallocs 91 bytes once (through libc frames)
 *   2 threads x 50 x malloc(33), kept
 *   calloc overflow -> NULL/ENOMEM, free(NULL)
 * mode "spin": allocate and free forever; prints "ready" once recording is under way.
 * mode "fork": the child does 10 x malloc(55) and exits; the parent 10 x malloc(66).
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile sink;
static void *keep[1000];

__attribute__((noinline)) void alloc77(void) {
    for (int i = 0; i < 1000; i++) keep[i] = malloc(77);
}

__attribute__((noinline)) void free300(void) {
    for (int i = 0; i < 300; i++) free(keep[i]);
}

__attribute__((noinline)) void calloc_site(void) { sink = calloc(10, 12); }

__attribute__((noinline)) void realloc_site(void) {
    void *volatile null = NULL;
    void *p = realloc(null, 40);
    p = realloc(p, 4000);
    p = realloc(p, 0);
    if (p != NULL) abort();
    void *q = malloc(8);
    void *r = realloc(q, SIZE_MAX / 2);
    if (r != NULL) abort();
    free(q);
    void *volatile none = NULL;
    void *a = reallocarray(none, 7, 9);
    if (a == NULL) abort();
    a = reallocarray(a, 11, 13);
    if (a == NULL || malloc_usable_size(a) < 143) abort();
    errno = 0;
    volatile size_t big = SIZE_MAX / 4;
    if (reallocarray(a, big, 8) != NULL || errno != ENOMEM) abort();
    free(a);
}

__attribute__((noinline)) void aligned_site(void) {
    void *p = NULL;
    errno = 1234;
    if (posix_memalign(&p, 64, 100) != 0 || ((uintptr_t)p & 63)) abort();
    if (errno != 1234) abort();
    sink = p;
    if (posix_memalign(&p, 24, 100) != EINVAL) abort();
    sink = aligned_alloc(32, 64);
    sink = memalign(128, 10);
    sink = valloc(5);
    sink = pvalloc(5);
}

__attribute__((noinline)) void strdup_site(void) { sink = strdup("hello tidemark"); }

static int compared;
static int cmp(const void *a, const void *b) {
    if (!compared) {
        compared = 1;
        sink = malloc(91);
    }
    return *(const int *)a - *(const int *)b;
}

__attribute__((noinline)) void qsort_site(void) {
    int v[64];
    for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
    qsort(v, 64, sizeof v[0], cmp);
}

__attribute__((noinline)) void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 50; i++) sink = malloc(33);
    return NULL;
}

static int basic(void) {
    printf("main=%p alloc77=%p\n", (void *)basic, (void *)alloc77);
    fflush(stdout);
    alloc77();
    free300();
    calloc_site();
    realloc_site();
    aligned_site();
    strdup_site();
    qsort_site();
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    errno = 0;
    volatile size_t huge = SIZE_MAX / 2;
    if (calloc(huge, 4) != NULL || errno != ENOMEM) abort();
    free(NULL);
    if (malloc_usable_size(keep[999]) < 77) abort();
    return 0;
}

static int spin(void) {
    for (unsigned long i = 0;; i++) {
        void *p = malloc(16 + (i % 64));
        sink = p;
        if (i % 3) free(sink);
        if (i == 20000) {
            printf("ready\n");
            fflush(stdout);
        }
        if (i % 1000 == 0) usleep(1000);
    }
}

static int forking(void) {
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 10; i++) sink = malloc(55);
        exit(0);
    }
    for (int i = 0; i < 10; i++) sink = malloc(66);
    int status;
    waitpid(pid, &status, 0);
    printf("child=%d\n", (int)pid);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "basic";
    if (!strcmp(mode, "spin")) return spin();
    if (!strcmp(mode, "fork")) return forking();
    return basic();
}
