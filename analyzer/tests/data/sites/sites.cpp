// Allocation sites behind C++'s allocator machinery, with exact ground truth.
//
// Each noinline function allocates through a different piece of machinery: std::vector growth of
// std::string elements, std::string growth, std::map nodes, std::unordered_map buckets and
// nodes, std::make_shared, and strdup from C. A replaced global operator new (itself machinery)
// counts the calls each makes; strdup's calls are known (one per string). The program prints
// `site <function> <calls>` for each, and the test checks that the profile attributes exactly
// those calls to that function as the site. Built with g++ -O2 -g, without frame pointers.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

static unsigned long calls;

void *operator new(std::size_t n) {
    ++calls;
    void *p = std::malloc(n ? n : 1);
    if (!p) throw std::bad_alloc();
    return p;
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, std::size_t) noexcept { std::free(p); }

template <class T> static void keep(T &&v) { asm volatile("" : : "g"(&v) : "memory"); }

__attribute__((noinline)) std::vector<std::string> *string_vector(int n) {
    auto *v = new std::vector<std::string>();
    for (int i = 0; i < n; i++) v->push_back(std::string(40, char('a' + i % 26)));
    return v;
}

__attribute__((noinline)) std::string *string_append(int n) {
    auto *s = new std::string();
    for (int i = 0; i < n; i++) s->push_back(char('a' + i % 26));
    return s;
}

__attribute__((noinline)) std::map<int, std::string> *tree_map(int n) {
    auto *m = new std::map<int, std::string>();
    for (int i = 0; i < n; i++) (*m)[i] = std::string(32, 'x');
    return m;
}

__attribute__((noinline)) std::unordered_map<int, int> *hash_map(int n) {
    auto *m = new std::unordered_map<int, int>();
    for (int i = 0; i < n; i++) (*m)[i] = i;
    return m;
}

__attribute__((noinline)) std::vector<std::shared_ptr<int>> *shared(int n) {
    auto *v = new std::vector<std::shared_ptr<int>>();
    v->reserve(n);
    for (int i = 0; i < n; i++) v->push_back(std::make_shared<int>(i));
    return v;
}

__attribute__((noinline)) char **duplicate(const char *s, int n) {
    char **out = static_cast<char **>(std::malloc(sizeof(char *) * n));
    for (int i = 0; i < n; i++) out[i] = strdup(s);
    return out;
}

template <class F> static void measure(const char *name, F f) {
    unsigned long before = calls;
    auto v = f();
    unsigned long after = calls;
    keep(v);
    std::printf("site %s %lu\n", name, after - before);
}

int main() {
    measure("string_vector", [] { return string_vector(300); });
    measure("string_append", [] { return string_append(5000); });
    measure("tree_map", [] { return tree_map(200); });
    measure("hash_map", [] { return hash_map(1000); });
    measure("shared", [] { return shared(100); });
    // strdup: one malloc per copy, plus the array.
    char **d = duplicate("a string that strdup copies", 64);
    keep(d);
    std::printf("site duplicate %d\n", 64 + 1);
    return 0;
}
