/* dlopen a library, wait for the recorder to notice the new module, then allocate from inside
 * it: usage: dlopen PATH_TO_PLUGIN */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    void (*f)(int) = (void (*)(int))dlsym(h, "plugin_alloc");
    usleep(100 * 1000);
    f(20);
    return 0;
}
