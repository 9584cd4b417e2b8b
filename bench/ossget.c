/* bench/ossget.c - reads one object through oss/ and reports the rate: the yardstick for the
 * client alone (no FUSE, no cache), compared by bench/oss-get.sh with curl on the same object.
 *
 *   efc-ossget --endpoint http://127.0.0.1:PORT --bucket B [--host H] [--passwd FILE]
 *              [--sign 1|4|s3] [--parallel N] [--part-mib M] [--repeat R] [--out FILE] KEY
 *
 * --parallel 1 (default) is one GET streamed to a sink; N > 1 splits the object into parts of
 * M MiB read by N threads into one buffer. Prints one line of JSON.
 *
 *   efc-ossget --endpoint URL --bucket B [...] --parallel N --many KEYS-FILE
 *
 * The origin's own rate for a small-file epoch (bench/run.sh): N threads share the keys of
 * KEYS-FILE (one a line) and send, for each, what an efc open sends (oss_get of the first 1 MiB:
 * metadata and data in one answer), then a second pass of revalidations (the same GET with
 * If-None-Match: the ETag of the first pass, answered 304). Prints the rate of each pass in
 * requests/s: the most files/s any client could reach on this origin and this machine.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oss/oss.h"
#include "util/crc64.h"
#include "util/log.h"
#include "util/timeutil.h"

struct par {
    struct oss_client *cl;
    const char *key;
    uint8_t *buf;
    uint64_t size, part;
    atomic_uint_fast64_t next;
    atomic_int err;
};

static void *part_reader(void *arg)
{
    struct par *p = arg;
    for (;;) {
        uint64_t off = atomic_fetch_add(&p->next, p->part);
        if (off >= p->size)
            return NULL;
        uint64_t len = p->size - off < p->part ? p->size - off : p->part;
        struct oss_get g = {.key = p->key, .offset = off, .length = len, .buf = p->buf + off};
        int rc = oss_get(p->cl, &g, NULL);
        if (rc)
            atomic_store(&p->err, rc);
    }
}

struct sink {
    int fd;
    uint64_t crc;
};

static int to_sink(void *arg, uint64_t off, const void *data, size_t len)
{
    struct sink *s = arg;
    s->crc = crc64_update(s->crc, data, len);
    if (s->fd >= 0 && pwrite(s->fd, data, len, (off_t)off) != (ssize_t)len)
        return -errno;
    return 0;
}

/* ---- --many: the origin's rate of small GETs and revalidations ------------------------------ */

#define MANY_MAX_KEYS   1000000u
#define MANY_KEY_MAX    1023u
#define MANY_FIRST_SIZE (1u << 20) /* what an open asks for: the first block */

struct many {
    struct oss_client *cl;
    char **keys;
    char (*etags)[OSS_MAX_ETAG_LEN + 1];
    size_t n;
    bool revalidate;
    atomic_size_t next;
    atomic_int err;
    atomic_size_t not_modified;
};

static void *many_reader(void *arg)
{
    struct many *m = arg;
    uint8_t *buf = malloc(MANY_FIRST_SIZE);
    if (buf == NULL) {
        atomic_store(&m->err, -ENOMEM);
        return NULL;
    }
    for (;;) {
        size_t i = atomic_fetch_add(&m->next, 1);
        if (i >= m->n || atomic_load(&m->err))
            break;
        struct oss_get g = {.key = m->keys[i], .length = MANY_FIRST_SIZE, .buf = buf};
        if (m->revalidate)
            g.if_none_match = m->etags[i];
        struct oss_get_result res;
        int rc = oss_get(m->cl, &g, &res);
        if (rc) {
            fprintf(stderr, "efc-ossget: GET '%s': %s\n", m->keys[i], strerror(-rc));
            atomic_store(&m->err, rc);
            break;
        }
        if (m->revalidate && res.not_modified)
            atomic_fetch_add(&m->not_modified, 1);
        else if (!m->revalidate)
            memcpy(m->etags[i], res.meta.etag, sizeof(m->etags[i]));
    }
    free(buf);
    return NULL;
}

/* Reads FILE's keys (one a line, at most MANY_MAX_KEYS of at most MANY_KEY_MAX bytes). */
static int many_load(const char *file, struct many *m)
{
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        fprintf(stderr, "efc-ossget: %s: %s\n", file, strerror(errno));
        return -1;
    }
    char line[MANY_KEY_MAX + 2];
    size_t cap = 0;
    int rc = 0;
    while (fgets(line, sizeof(line), f)) {
        size_t len = strcspn(line, "\n");
        if (line[len] != '\n' && !feof(f)) {
            fprintf(stderr, "efc-ossget: %s: a key longer than %u bytes\n", file, MANY_KEY_MAX);
            rc = -1;
            break;
        }
        line[len] = 0;
        if (len == 0)
            continue;
        if (m->n == MANY_MAX_KEYS) {
            fprintf(stderr, "efc-ossget: %s: more than %u keys\n", file, MANY_MAX_KEYS);
            rc = -1;
            break;
        }
        if (m->n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **k = realloc(m->keys, cap * sizeof(*k));
            if (k == NULL) {
                rc = -1;
                break;
            }
            m->keys = k;
        }
        if ((m->keys[m->n] = strdup(line)) == NULL) {
            rc = -1;
            break;
        }
        m->n++;
    }
    fclose(f);
    if (rc == 0 && m->n == 0) {
        fprintf(stderr, "efc-ossget: %s: no key\n", file);
        rc = -1;
    }
    if (rc == 0 && (m->etags = calloc(m->n, sizeof(*m->etags))) == NULL)
        rc = -1;
    return rc;
}

/* One pass over the keys on PARALLEL threads: requests/s, or -1. */
static double many_pass(struct many *m, int parallel, bool revalidate)
{
    m->revalidate = revalidate;
    atomic_store(&m->next, 0);
    atomic_store(&m->not_modified, 0);
    pthread_t th[256];
    int started = 0;
    uint64_t t0 = time_mono_ns();
    for (; started < parallel; started++)
        if (pthread_create(&th[started], NULL, many_reader, m) != 0)
            break;
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double s = (double)(time_mono_ns() - t0) / 1e9;
    if (started == 0 || atomic_load(&m->err))
        return -1;
    if (revalidate && atomic_load(&m->not_modified) != m->n) {
        fprintf(stderr, "efc-ossget: %zu of %zu revalidations were not answered 304\n",
                m->n - atomic_load(&m->not_modified), m->n);
        return -1;
    }
    return (double)m->n / s;
}

static int many_run(struct oss_client *cl, const char *file, int parallel)
{
    struct many m = {.cl = cl};
    int rc = 1;
    if (many_load(file, &m) == 0) {
        double get = many_pass(&m, parallel, false);
        double reval = get > 0 ? many_pass(&m, parallel, true) : -1;
        if (reval > 0) {
            printf("{\"files\":%zu,\"parallel\":%d,\"get_per_s\":%.0f,\"revalidate_per_s\":%.0f}\n",
                   m.n, parallel, get, reval);
            rc = 0;
        }
    }
    for (size_t i = 0; i < m.n; i++)
        free(m.keys[i]);
    free(m.keys);
    free(m.etags);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: efc-ossget --endpoint URL --bucket B [--host H] [--passwd FILE] "
                    "[--sign 1|4|s3] [--parallel N] [--part-mib M] [--repeat R] [--out FILE] "
                    "KEY | --many KEYS-FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct oss_config c;
    const char *sign = "4", *out = NULL, *many = NULL;
    int parallel = 1, repeat = 1;
    uint64_t part_mib = 8;
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, 'e'}, {"bucket", required_argument, 0, 'b'},
        {"host", required_argument, 0, 'H'},     {"passwd", required_argument, 0, 'p'},
        {"sign", required_argument, 0, 's'},     {"parallel", required_argument, 0, 'j'},
        {"part-mib", required_argument, 0, 'm'}, {"repeat", required_argument, 0, 'r'},
        {"out", required_argument, 0, 'o'},      {"verbose", no_argument, 0, 'v'},
        {"many", required_argument, 0, 'M'},     {0, 0, 0, 0}};
    int ch;

    oss_config_init(&c);
    c.host = "oss-cn-hangzhou.aliyuncs.com";
    log_set_level(LOG_LVL_WARN);
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'e':
            c.endpoints = optarg;
            break;
        case 'b':
            c.bucket = optarg;
            break;
        case 'H':
            c.host = optarg;
            break;
        case 'p':
            c.passwd_file = optarg;
            break;
        case 's':
            sign = optarg;
            break;
        case 'j':
            parallel = atoi(optarg);
            break;
        case 'm':
            part_mib = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            repeat = atoi(optarg);
            break;
        case 'o':
            out = optarg;
            break;
        case 'v':
            log_set_level(LOG_LVL_DEBUG);
            break;
        case 'M':
            many = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - (many ? 0 : 1) || c.bucket == NULL || parallel < 1 || parallel > 256 ||
        part_mib == 0)
        usage();
    const char *key = many ? NULL : argv[optind];
    if (strcmp(sign, "s3") == 0)
        c.protocol = OSS_PROTO_S3;
    else
        c.sign_version = atoi(sign);
    c.max_connections = parallel;

    struct oss_client *cl;
    char err[256];
    int rc = oss_client_new(&c, &cl, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "efc-ossget: %s\n", err);
        return 1;
    }
    if (many) {
        rc = many_run(cl, many, parallel);
        oss_client_free(cl);
        return rc;
    }
    struct oss_object_meta meta;
    rc = oss_head(cl, key, &meta);
    if (rc) {
        fprintf(stderr, "efc-ossget: HEAD '%s': %s\n", key, strerror(-rc));
        return 1;
    }
    double best = 0, total_s = 0;
    uint64_t crc = 0;
    uint8_t *pbuf = NULL;
    if (parallel > 1) {
        /* Fault the destination in before the clock starts: the rate is the client's. */
        pbuf = malloc(meta.size ? meta.size : 1);
        if (pbuf == NULL) {
            fprintf(stderr, "efc-ossget: cannot allocate %" PRIu64 " bytes\n", meta.size);
            return 1;
        }
        memset(pbuf, 0, meta.size);
    }
    for (int r = 0; r < repeat; r++) {
        uint64_t t0 = time_mono_ns();
        if (parallel == 1) {
            struct sink s = {.fd = -1};
            if (out)
                s.fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            struct oss_get g = {.key = key, .length = UINT64_MAX, .sink = to_sink, .sink_arg = &s};
            rc = oss_get(cl, &g, NULL);
            crc = s.crc;
            if (s.fd >= 0)
                close(s.fd);
        } else {
            struct par p = {.cl = cl, .key = key, .size = meta.size, .part = part_mib << 20};
            p.buf = pbuf;
            pthread_t th[256];
            for (int i = 0; i < parallel; i++)
                pthread_create(&th[i], NULL, part_reader, &p);
            for (int i = 0; i < parallel; i++)
                pthread_join(th[i], NULL);
            rc = atomic_load(&p.err);
        }
        double s = (double)(time_mono_ns() - t0) / 1e9;
        if (pbuf)
            crc = crc64_update(0, pbuf, meta.size); /* ranges carry no CRC: check the whole */
        if (rc) {
            fprintf(stderr, "efc-ossget: GET '%s': %s\n", key, strerror(-rc));
            return 1;
        }
        double mbps = (double)meta.size / s / 1e6;
        if (mbps > best)
            best = mbps;
        total_s += s;
    }
    if (meta.has_crc64 && crc != meta.crc64) {
        fprintf(stderr, "efc-ossget: CRC64 mismatch\n");
        return 1;
    }
    free(pbuf);
    struct oss_stats st;
    oss_get_stats(cl, &st);
    printf("{\"key\":\"%s\",\"bytes\":%" PRIu64 ",\"parallel\":%d,\"repeat\":%d,"
           "\"best_MBps\":%.1f,\"mean_MBps\":%.1f,\"crc64_ok\":%s,\"requests\":%" PRIu64
           ",\"retries\":%" PRIu64 "}\n",
           key, meta.size, parallel, repeat, best, (double)meta.size * repeat / total_s / 1e6,
           meta.has_crc64 ? "true" : "false", st.requests, st.retries);
    oss_client_free(cl);
    return 0;
}
