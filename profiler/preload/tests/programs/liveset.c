/* A large live set: N (default 3,000,000) blocks of 16..79 bytes allocated and kept, then freed,
 * the even ones first. Every free is of a block allocated long before: the recorder's table of
 * live blocks (its size, its cache misses) is what it measures (scripts/bench-wall.sh --more).
 *
 *   liveset [N]
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 3000000;
    if (n < 1) {
        fprintf(stderr, "liveset: N must be at least 1\n");
        return 2;
    }
    void **v = malloc((size_t)n * sizeof *v);
    if (!v)
        return 1;
    for (long i = 0; i < n; i++)
        v[i] = malloc(16 + (size_t)(i % 64));
    for (long i = 0; i < n; i += 2)
        free(v[i]);
    for (long i = 1; i < n; i += 2)
        free(v[i]);
    free(v);
    puts("done");
    return 0;
}
