/* bench/ossget.c - reads one object through oss/ and reports the rate: the yardstick for the
 * client alone (no FUSE, no cache), compared by bench/oss-get.sh with curl on the same object.
 *
 *   efc-ossget --endpoint http://127.0.0.1:PORT --bucket B [--host H] [--passwd FILE]
 *              [--sign 1|4|s3] [--parallel N] [--part-mib M] [--repeat R] [--out FILE] KEY
 *
 * --parallel 1 (default) is one GET streamed to a sink; N > 1 splits the object into parts of
 * M MiB read by N threads into one buffer. Prints one line of JSON.
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

static void usage(void)
{
    fprintf(stderr,
            "usage: efc-ossget --endpoint URL --bucket B [--host H] [--passwd FILE] "
            "[--sign 1|4|s3] [--parallel N] [--part-mib M] [--repeat R] [--out FILE] KEY\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct oss_config c;
    const char *sign = "4", *out = NULL;
    int parallel = 1, repeat = 1;
    uint64_t part_mib = 8;
    static const struct option opts[] = {{"endpoint", required_argument, 0, 'e'},
                                         {"bucket", required_argument, 0, 'b'},
                                         {"host", required_argument, 0, 'H'},
                                         {"passwd", required_argument, 0, 'p'},
                                         {"sign", required_argument, 0, 's'},
                                         {"parallel", required_argument, 0, 'j'},
                                         {"part-mib", required_argument, 0, 'm'},
                                         {"repeat", required_argument, 0, 'r'},
                                         {"out", required_argument, 0, 'o'},
                                         {"verbose", no_argument, 0, 'v'},
                                         {0, 0, 0, 0}};
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
        default:
            usage();
        }
    }
    if (optind != argc - 1 || c.bucket == NULL || parallel < 1 || parallel > 256 || part_mib == 0)
        usage();
    const char *key = argv[optind];
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
