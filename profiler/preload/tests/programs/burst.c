/* A burst of threads that all allocate at once: THREADS threads (default 300), each making
 * N (default 20000) malloc+free pairs of 16..271 bytes. Many more threads than cores, all
 * queueing buffers: the recorder's writer, its ordering of many threads' events and its
 * backpressure are what it measures (scripts/bench-wall.sh --more).
 *
 *   burst [N] [THREADS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static int pairs = 20000;

static void *work(void *arg) {
    void *volatile p;
    for (int i = 0; i < pairs; i++) {
        p = malloc(16 + (i & 255));
        free(p);
    }
    return arg;
}

int main(int argc, char **argv) {
    if (argc > 1)
        pairs = atoi(argv[1]);
    int threads = argc > 2 ? atoi(argv[2]) : 300;
    if (threads < 1 || threads > 4096) {
        fprintf(stderr, "burst: THREADS must be 1..4096\n");
        return 2;
    }
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    if (!t)
        return 1;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], 0, work, 0) != 0) {
            fprintf(stderr, "burst: pthread_create failed at thread %d\n", i);
            return 1;
        }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], 0);
    free(t);
    puts("done");
    return 0;
}
