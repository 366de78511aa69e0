/* Stack-walk workloads for code built without frame pointers, whose loops keep their counter in
 * rbp (as gcc does when a loop has many live values): the walk cache must not depend on rbp.
 *
 * usage:
 *   walkload churn DEPTH N      N malloc(32)+free pairs from one call site, DEPTH frames below
 *                               main; prints "ns_per_pair=<x>" (body only, startup excluded)
 *   walkload recurse ROUNDS     ROUNDS passes over depths 1..60 (1,2,..,60,59,..,1, then
 *                               interleaved); at every depth of every descent one malloc(24+d)
 *                               that is freed on the way back up; prints "allocations=<n>"
 *   walkload fpdata N           N malloc+free pairs called with rbp pointing at a frame record
 *                               on the stack whose "return address" is a data address: what a
 *                               frame-pointer walk meets when code keeps a stack pointer in rbp
 *
 * Build: gcc -O2 -fomit-frame-pointer -g. `hot_loop` and `descend` keep a counter in rbp
 * (checked by the tests with objdump). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *volatile sink;
volatile long sink2;
volatile long knob = 1;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

__attribute__((noinline)) void pair(long i) {
    sink = malloc(32 + (i & 1));
    free(sink);
}

/* Many values live across the call: gcc runs out of other callee-saved registers and keeps one
 * of them (the loop counter or an accumulator) in rbp. */
__attribute__((noinline)) long hot_loop(long n) {
    long a = knob, b = knob * 3, c = knob * 5, d = knob * 7, e = knob * 11, f = knob * 13;
    for (long i = 0; i < n; i++) {
        pair(i);
        a += i;
        b ^= a + i;
        c += b >> 3;
        d -= c ^ i;
        e += d + a;
        f ^= e - b;
    }
    return a + b + c + d + e + f;
}

__attribute__((noinline)) long nest(int d, long n) {
    if (d == 0) return hot_loop(n);
    long r = nest(d - 1, n);
    sink2 = r;
    return r + 1;
}

static long allocations;

/* call_with_rbp(f, arg, rbp): calls f(arg) with rbp set to `rbp` (restored after). */
void call_with_rbp(void (*f)(long), long arg, unsigned long *rbp);
__asm__(".text\n"
        ".globl call_with_rbp\n"
        ".type call_with_rbp, @function\n"
        "call_with_rbp:\n"
        "  push %rbp\n"
        "  mov %rdx, %rbp\n"
        "  mov %rdi, %rax\n"
        "  mov %rsi, %rdi\n"
        "  call *%rax\n"
        "  pop %rbp\n"
        "  ret\n"
        ".size call_with_rbp, .-call_with_rbp\n");

/* One allocation per level on the way down, freed on the way back up. The loop body keeps
 * several values live across the recursive call, so rbp holds one of them. */
__attribute__((noinline)) long descend(int d, long salt) {
    void *p = malloc(24 + d);
    allocations++;
    sink = p;
    long a = salt + knob, b = salt * 3, c = salt ^ 5, e = salt * 7, f = d;
    if (d > 1) {
        for (long i = 0; i < knob; i++) {
            a += descend(d - 1, a + i);
            b ^= a + i;
            c += b >> 3;
            e -= c ^ i;
            f += e + a;
        }
    }
    free(p);
    return a + b + c + e + f;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "churn")) {
        int depth = atoi(argv[2]);
        long n = atol(argv[3]);
        nest(depth, n / 10); /* warm-up */
        double t0 = now();
        nest(depth, n);
        double t1 = now();
        printf("ns_per_pair=%.1f\n", (t1 - t0) / n);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "recurse")) {
        int rounds = atoi(argv[2]);
        long s = 0;
        for (int r = 0; r < rounds; r++) {
            for (int d = 1; d <= 60; d++) s += descend(d, d + r);
            for (int d = 59; d >= 1; d--) s += descend(d, d * r);
            for (int d = 1; d <= 30; d++) {
                s += descend(d, r);
                s += descend(61 - d, r + d);
            }
        }
        sink2 = s;
        printf("allocations=%ld\n", allocations);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "fpdata")) {
        long n = atol(argv[2]);
        volatile unsigned long rec[4];
        rec[0] = (unsigned long)&rec[2]; /* saved frame pointer: the next record */
        rec[1] = (unsigned long)&knob;   /* "return address": data */
        rec[2] = 0;
        rec[3] = 0;
        for (long i = 0; i < n; i++) call_with_rbp(pair, i, (unsigned long *)rec);
        printf("pairs=%ld\n", n);
        return 0;
    }
    fprintf(stderr, "usage: walkload churn DEPTH N | walkload recurse ROUNDS | walkload fpdata N\n");
    return 2;
}
