/* Recording overhead: N malloc(32)+free pairs at a chosen stack depth.
 * usage: bench DEPTH N [vary]
 *   prints "ns_per_pair=<x>" measured inside the program (startup excluded).
 *   "vary" spreads the pairs over 8 call sites at depths DEPTH..DEPTH+7, so consecutive stacks
 *   differ in their innermost frames. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *volatile sink;
volatile long sink2;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

__attribute__((noinline)) void pair(void) {
    sink = malloc(32);
    free(sink);
}

__attribute__((noinline)) long down(int d) {
    if (d == 0) {
        pair();
        return 0;
    }
    long r = down(d - 1);
    sink2 = r;
    return r + 1;
}

__attribute__((noinline)) long loop_same(long n) {
    for (long i = 0; i < n; i++) pair();
    return n;
}

__attribute__((noinline)) long loop_vary(long n) {
    for (long i = 0; i < n; i++) down((int)(i & 7));
    return n;
}

__attribute__((noinline)) long recurse(int d, long n, int vary) {
    if (d == 0) return vary ? loop_vary(n) : loop_same(n);
    long r = recurse(d - 1, n, vary);
    sink2 = r;
    return r + 1;
}

int main(int argc, char **argv) {
    int depth = argc > 1 ? atoi(argv[1]) : 20;
    long n = argc > 2 ? atol(argv[2]) : 1000000;
    int vary = argc > 3 && !strcmp(argv[3], "vary");
    recurse(depth, n / 10, vary); /* warm-up */
    double t0 = now();
    recurse(depth, n, vary);
    double t1 = now();
    printf("ns_per_pair=%.1f\n", (t1 - t0) / n);
    return 0;
}
