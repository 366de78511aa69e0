/* Leaks next to blocks the C runtime owns, with exact ground truth.
 *
 * real_leak() leaks REAL_BLOCKS blocks of REAL_SIZE bytes; my_cache_init() keeps CACHE_BLOCKS
 * blocks of CACHE_SIZE bytes for the life of the process (what a user's suppression file names);
 * setlocale() (run with LC_ALL=C.UTF-8) loads locale data and a joined thread leaves its DTV
 * with glibc's cached stack: both runtime-owned. Nothing else stays live (no stdio). */
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>

#define REAL_BLOCKS 5
#define REAL_SIZE 100
#define CACHE_BLOCKS 3
#define CACHE_SIZE 1000

void *volatile sink[REAL_BLOCKS + CACHE_BLOCKS];

__attribute__((noinline)) void real_leak(void) {
    for (int i = 0; i < REAL_BLOCKS; i++) sink[i] = malloc(REAL_SIZE);
}

__attribute__((noinline)) void my_cache_init(void) {
    for (int i = 0; i < CACHE_BLOCKS; i++) sink[REAL_BLOCKS + i] = malloc(CACHE_SIZE);
}

static void *worker(void *arg) { return arg; }

int main(void) {
    if (!setlocale(LC_ALL, "")) return 3;
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) return 4;
    pthread_join(t, NULL);
    real_leak();
    my_cache_init();
    return 0;
}
