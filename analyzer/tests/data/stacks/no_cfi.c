/* Part of stopped.c, compiled without unwind tables and without debug information
 * (-fno-asynchronous-unwind-tables -fno-unwind-tables, no -g): no CFI describes this function's
 * frame, so a DWARF unwinder that reaches it stops there. */
__attribute__((noinline)) void through_no_cfi(void (*f)(int), int i) {
    f(i);
    __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays on the stack */
}
