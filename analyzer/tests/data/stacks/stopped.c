/* Stacks that stop unwinding, with exact ground truth.
 *
 * through_no_cfi() is compiled without unwind tables (see the test): a DWARF unwinder that
 * reaches its frame cannot go further, so the STOPPED_BLOCKS blocks alloc_block() allocates under
 * it have stacks whose outermost frame is through_no_cfi, not _start. main allocates
 * WHOLE_BLOCKS blocks through alloc_block() directly: their stacks reach _start. Every block
 * stays live. */
#include <stdlib.h>

#define STOPPED_BLOCKS 24
#define WHOLE_BLOCKS 8

void *volatile sink[STOPPED_BLOCKS + WHOLE_BLOCKS];

__attribute__((noinline)) void alloc_block(int i) { sink[i] = malloc(48); }

void through_no_cfi(void (*f)(int), int i);

int main(void) {
    for (int i = 0; i < STOPPED_BLOCKS; i++) through_no_cfi(alloc_block, i);
    for (int i = 0; i < WHOLE_BLOCKS; i++) alloc_block(STOPPED_BLOCKS + i);
    return 0;
}
