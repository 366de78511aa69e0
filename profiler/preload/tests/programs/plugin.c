/* A shared library loaded with dlopen by dlopen.c; built with -O2 -fomit-frame-pointer. */
#include <stdlib.h>

void *volatile plugin_sink;

__attribute__((noinline)) void plugin_alloc(int n) {
    for (int i = 0; i < n; i++) plugin_sink = malloc(123);
}
