/* Stacks deeper than the recorder's 128-frame limit, with exact ground truth.
 *
 * deep_alloc() allocates DEEP_BLOCKS blocks from a recursion RECURSION_DEPTH frames deep (well
 * beyond the limit); shallow_alloc() allocates SHALLOW_BLOCKS blocks a few frames below main.
 * Every block stays live. Built with -O2 -g, with or without frame pointers. */
#include <stdio.h>
#include <stdlib.h>

#define RECURSION_DEPTH 300
#define DEEP_BLOCKS 40
#define SHALLOW_BLOCKS 160

void *volatile sink[DEEP_BLOCKS + SHALLOW_BLOCKS];

__attribute__((noinline)) void deep_alloc(void) {
    for (int i = 0; i < DEEP_BLOCKS; i++) sink[i] = malloc(64);
}

__attribute__((noinline, noipa)) int recurse(int depth) {
    /* A volatile local read after the call keeps every frame on the stack (no tail call, no
     * loop). */
    volatile int here = 1;
    if (depth == 0) {
        deep_alloc();
        return 0;
    }
    return recurse(depth - 1) + here;
}

__attribute__((noinline)) void shallow_alloc(void) {
    for (int i = 0; i < SHALLOW_BLOCKS; i++) sink[DEEP_BLOCKS + i] = malloc(32);
}

int main(void) {
    shallow_alloc();
    int d = recurse(RECURSION_DEPTH);
    printf("deep %d shallow %d depth %d\n", DEEP_BLOCKS, SHALLOW_BLOCKS, d);
    return 0;
}
