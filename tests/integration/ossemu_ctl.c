/* tests/integration/ossemu_ctl.c - see ossemu_ctl.h. */
#define _GNU_SOURCE
#include "ossemu_ctl.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/le.h"

#define READY_TIMEOUT_MS 20000

int ossemu_start(const char *root, const char *const *args, struct ossemu *out)
{
    int pfd[2];
    const char *argv[64];
    int n = 0;
    static int seq;

    memset(out, 0, sizeof(*out));
    snprintf(out->log_path, sizeof(out->log_path), "/tmp/ossemu-test-%d-%d.log", (int)getpid(),
             seq++);
    argv[n++] = "node";
    argv[n++] = EFC_OSSEMU_DIR "/server.js";
    argv[n++] = "--root";
    argv[n++] = root;
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        dup2(pfd[1], 1);
        int lfd = open(out->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (lfd >= 0)
            dup2(lfd, 2);
        execvp("node", (char *const *)argv);
        fprintf(stderr, "cannot run node: %s\n", strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    out->pid = pid;

    char line[512];
    size_t len = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long left = READY_TIMEOUT_MS -
                    ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t r = read(pfd[0], line + len, sizeof(line) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        line[len] = '\0';
        if (strchr(line, '\n'))
            break;
    }
    /* Keep the pipe's read end open in no one: ossemu writes nothing more to stdout. */
    close(pfd[0]);
    json_error_t je;
    json_t *j = json_loads(line, JSON_DISABLE_EOF_CHECK, &je);
    if (j == NULL || !json_is_true(json_object_get(j, "ready"))) {
        fprintf(stderr, "ossemu did not start (log: %s); it said: %.*s\n", out->log_path, (int)len,
                line);
        json_decref(j);
        ossemu_stop(out);
        return -1;
    }
    out->port = (int)json_integer_value(json_object_get(j, "port"));
    out->admin_port = (int)json_integer_value(json_object_get(j, "admin_port"));
    json_decref(j);
    return 0;
}

void ossemu_stop(struct ossemu *e)
{
    if (e->pid <= 0)
        return;
    kill(e->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
            e->pid = 0;
            return;
        }
        usleep(20000);
    }
    kill(e->pid, SIGKILL);
    waitpid(e->pid, NULL, 0);
    e->pid = 0;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *arg)
{
    FILE *f = arg;
    return fwrite(data, size, nmemb, f);
}

json_t *ossemu_admin(const struct ossemu *e, const char *method, const char *path, const char *body)
{
    char url[512], *resp = NULL;
    size_t resp_len = 0;
    FILE *f = open_memstream(&resp, &resp_len);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", e->admin_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    fclose(f);
    json_t *j = NULL;
    if (cc == CURLE_OK && status == 200)
        j = json_loads(resp, 0, NULL);
    if (j == NULL)
        fprintf(stderr, "ossemu admin %s %s failed: %s status %ld: %s\n", method, path,
                curl_easy_strerror(cc), status, resp ? resp : "");
    free(resp);
    return j;
}

int ossemu_faults(const struct ossemu *e, const char *body)
{
    json_t *j = ossemu_admin(e, "POST", "/faults", body);
    json_decref(j);
    return j ? 0 : -1;
}

int ossemu_reset_stats(const struct ossemu *e)
{
    json_t *j = ossemu_admin(e, "POST", "/stats/reset", "{}");
    json_decref(j);
    return j ? 0 : -1;
}

uint64_t ossemu_requests(const struct ossemu *e, const char *key)
{
    json_t *j = ossemu_admin(e, "GET", "/stats", NULL);
    uint64_t n = 0;
    if (j == NULL)
        return UINT64_MAX;
    json_t *v =
        key ? json_object_get(json_object_get(json_object_get(j, "by_key"), key), "requests")
            : json_object_get(json_object_get(j, "total"), "requests");
    n = v ? (uint64_t)json_integer_value(v) : 0;
    json_decref(j);
    return n;
}

uint64_t ossemu_max_inflight(const struct ossemu *e)
{
    json_t *j = ossemu_admin(e, "GET", "/stats", NULL);
    if (j == NULL)
        return UINT64_MAX;
    uint64_t n = (uint64_t)json_integer_value(json_object_get(j, "max_inflight"));
    json_decref(j);
    return n;
}

char *tmpdir_new(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p;
    if (asprintf(&p, "%s/efc-%s-XXXXXX", base && *base ? base : "/tmp", tag) < 0)
        return NULL;
    if (mkdtemp(p) == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

void tmpdir_remove(char *dir)
{
    if (dir == NULL)
        return;
    nftw(dir, rm_one, 32, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static int mkparents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

static FILE *open_rel(const char *dir, const char *rel)
{
    char *path;
    if (asprintf(&path, "%s/%s", dir, rel) < 0)
        return NULL;
    FILE *f = NULL;
    if (mkparents(path) == 0)
        f = fopen(path, "wb");
    free(path);
    return f;
}

int write_file(const char *dir, const char *rel, const void *data, size_t len)
{
    FILE *f = open_rel(dir, rel);
    if (f == NULL)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* The pattern's 8-byte word W, little-endian: byte I is byte I % 8 of word I / 8. */
static uint64_t pattern_word(uint64_t w, uint32_t seed)
{
    uint64_t x = w * 0x9E3779B97F4A7C15ULL ^ seed;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 29;
    return x;
}

uint8_t pattern_byte(uint64_t i, uint32_t seed)
{
    return (uint8_t)(pattern_word(i / 8, seed) >> ((i % 8) * 8));
}

/* A word at a time: the sanitizer builds fill the integration tests' 200 MB of files and
 * expected bytes many times faster than byte by byte. */
void pattern_fill(uint8_t *dst, uint64_t off, size_t n, uint32_t seed)
{
    size_t i = 0;
    for (; i < n && (off + i) % 8; i++)
        dst[i] = pattern_byte(off + i, seed);
    for (; i + 8 <= n; i += 8) {
        uint64_t x = pattern_word((off + i) / 8, seed);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(dst + i, &x, 8); /* one store: a sanitizer checks it once, not 8 times */
#else
        le_put64(dst + i, x);
#endif
    }
    for (; i < n; i++)
        dst[i] = pattern_byte(off + i, seed);
}

int write_pattern_file(const char *dir, const char *rel, uint64_t size, uint32_t seed)
{
    FILE *f = open_rel(dir, rel);
    static uint8_t chunk[1 << 16];
    if (f == NULL)
        return -1;
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < sizeof(chunk) ? (size_t)(size - off) : sizeof(chunk);
        pattern_fill(chunk, off, n, seed);
        if (fwrite(chunk, 1, n, f) != n) {
            fclose(f);
            return -1;
        }
        off += n;
    }
    return fclose(f) == 0 ? 0 : -1;
}

uint64_t it_scaled_ms(uint64_t ms)
{
    const char *v = getenv("EFC_TIME_SCALE");
    char *end;
    double f = v ? strtod(v, &end) : 1;
    if (!v || end == v || *end || !(f >= 1 && f <= 1000))
        f = 1;
    return (uint64_t)((double)ms * f);
}
