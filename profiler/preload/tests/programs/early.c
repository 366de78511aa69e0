/* Linked into backend.c as a shared library. Its constructor runs before the preload library's
 * (a program's libraries are initialised before the preloaded one), so these blocks come from
 * glibc even under TIDEMARK_ALLOCATOR=jemalloc, and must go back to glibc later.
 * With EARLY_BLOCKS=n in the environment it also allocates n blocks of 16 bytes, kept. */
#include <stdlib.h>
#include <string.h>

char *early_a, *early_b, *early_c, *early_d;

__attribute__((constructor)) static void early_init(void) {
    early_a = malloc(100);
    memset(early_a, 'a', 100);
    early_b = malloc(200);
    early_c = calloc(1, 300);
    early_d = malloc(400);
    memset(early_d, 'd', 400);
    const char *n = getenv("EARLY_BLOCKS");
    for (long i = 0, k = n ? atol(n) : 0; i < k; i++) {
        void *volatile p = malloc(16);
        (void)p;
    }
}
