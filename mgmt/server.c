/* mgmt/server.c - the management HTTP server: libmicrohttpd around mgmt_dispatch (api.c).
 *
 * libmicrohttpd runs its own threads (internal polling, a pool of cfg->threads), so nothing here
 * touches the daemon's FUSE threads. We create and bind the listening socket ourselves and hand
 * it over (MHD_OPTION_LISTEN_SOCKET) rather than giving MHD an address: bind's errno then makes
 * a precise start-up error ("Address already in use" names the port), and port 0 works for
 * tests. The socket is bound to the configured address only; an IPv6 one is IPV6_V6ONLY, so
 * "::1" never answers on IPv4.
 *
 * The raw request-target comes from MHD_OPTION_URI_LOG_CALLBACK, called with the URI as the
 * client sent it before MHD decodes anything; it becomes the request's context and is what
 * mgmt_dispatch parses, so our own bounded, fuzzed query parser serves every request and MHD's
 * decoding (which turns "%2C" into ',' before we could tell them apart) plays no part.
 *
 * Limits: connections (MHD_OPTION_CONNECTION_LIMIT), idle time (MHD_OPTION_CONNECTION_TIMEOUT),
 * the request line and headers (MHD_OPTION_CONNECTION_MEMORY_LIMIT: beyond it MHD answers 414 or
 * 431 itself), the target we copy (MAX_TARGET), and bodies: none are accepted (413 as soon as the
 * headers announce one, and the connection is closed rather than read further).
 */
#define _GNU_SOURCE /* asprintf */
#include "mgmt/mgmt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mgmt/mgmt_i.h"
#include "util/log.h"

#define MAX_TARGET (MGMT_MAX_QUERY + 2048) /* the path and a query a little over its limit */
#define BACKLOG    64

struct mgmt {
    struct MHD_Daemon *d;
    struct mgmt_ops ops;
    struct warmup *w;
    uint16_t port;
    char location[INET6_ADDRSTRLEN + 16];
};

/* The per-request context, made by the URI log callback. */
struct mreq {
    bool seen;     /* the access handler has run once */
    bool too_long; /* the target was over MAX_TARGET; TARGET holds its start */
    size_t len;
    char target[];
};

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *con)
{
    size_t n = strnlen(uri, MAX_TARGET + 1);
    struct mreq *q = malloc(sizeof(*q) + MAX_TARGET + 2);
    if (q == NULL)
        return NULL;
    q->seen = false;
    q->too_long = n > MAX_TARGET;
    q->len = q->too_long ? MAX_TARGET : n;
    memcpy(q->target, uri, q->len);
    q->target[q->len] = '\0';
    return q;
}

static void completed_cb(void *cls, struct MHD_Connection *con, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    free(*req_cls);
    *req_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_warn("mgmt: libmicrohttpd: %s", line);
}

static enum MHD_Result send_reply(struct MHD_Connection *con, struct mgmt_reply *rep, bool close)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        mgmt_reply_release(rep);
        return MHD_NO;
    }
    rep->body = NULL; /* MHD frees it */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (rep->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result r = MHD_queue_response(con, rep->status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* A fixed JSON error for what mgmt_dispatch never sees. */
static enum MHD_Result send_fixed(struct MHD_Connection *con, unsigned status, int code,
                                  const char *msg)
{
    struct mgmt_reply rep = {.status = status, .content_type = "application/json"};
    /* built by jansson as every other answer is: the message is escaped whatever it holds */
    json_t *o = json_pack("{s:i, s:s, s:[]}", "ErrorCode", code, "ErrorMessage", msg, "Results");
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    char *body = text ? realloc(text, strlen(text) + 2) : NULL;
    if (body == NULL) {
        free(text);
        return MHD_NO;
    }
    strcat(body, "\n");
    rep.body = body;
    rep.len = strlen(body);
    return send_reply(con, &rep, true);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *con, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    struct mgmt *m = cls;
    struct mreq *q = *req_cls;

    if (q == NULL)
        return send_fixed(con, 500, ENOMEM, "out of memory");
    if (q->seen) {
        /* A body arrived although we answered at the headers: drop it. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    q->seen = true;

    const char *cl =
        MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te != NULL || (cl != NULL && strspn(cl, "0") != strlen(cl)))
        return send_fixed(con, 413, E2BIG,
                          "requests carry no body: give the parameters in the query string");
    if (q->too_long)
        return send_fixed(con, 414, E2BIG, "the request target is too long");

    struct mgmt_reply rep;
    int rc = mgmt_dispatch(&m->ops, m->w, m->location, method, q->target, q->len, &rep);
    if (rc < 0)
        return send_fixed(con, 500, -rc, "cannot build the answer");
    if (log_verbosity >= LOG_LVL_DEBUG) {
        char shown[256];
        mgmt_shown(q->target, q->len, shown, sizeof(shown));
        log_debug("mgmt: %s %s -> %u (%zu bytes)", method, shown, rep.status, rep.len);
    }
    return send_reply(con, &rep, false);
}

/* Parses ADDR into SS; *LEN its size. */
static int parse_addr(const char *addr, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof(*v6);
        return 0;
    }
    return -EINVAL;
}

static int listen_on(const struct sockaddr_storage *ss, socklen_t len, int *out)
{
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

int mgmt_start(const struct mgmt_config *cfg, const struct mgmt_ops *ops, struct mgmt **out,
               char *err, size_t errlen)
{
    const char *addr = cfg->bind_addr && cfg->bind_addr[0] ? cfg->bind_addr : "127.0.0.1";
    struct sockaddr_storage ss;
    socklen_t sslen;
    int fd = -1, rc;

    *out = NULL;
    if (parse_addr(addr, cfg->port, &ss, &sslen) != 0) {
        snprintf(err, errlen, "management bind address '%s' is not an IPv4 or IPv6 address literal",
                 addr);
        return -EINVAL;
    }
    rc = listen_on(&ss, sslen, &fd);
    if (rc < 0) {
        snprintf(err, errlen, "management port %u on %s: %s", cfg->port, addr, strerror(-rc));
        return rc;
    }
    struct mgmt *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        close(fd);
        snprintf(err, errlen, "management server: %s", strerror(ENOMEM));
        return -ENOMEM;
    }
    if (ops)
        m->ops = *ops;
    m->w = cfg->warmup;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    m->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                            : ((struct sockaddr_in6 *)&bound)->sin6_port);
    snprintf(m->location, sizeof(m->location), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
             m->port);

    unsigned threads = cfg->threads ? cfg->threads : 2;
    unsigned conns = cfg->max_conns ? cfg->max_conns : 64;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    /* The logger goes first, or MHD warns that earlier options may log to stderr. A pool of
       one thread is no pool to MHD (it warns); one internal thread is the same thing. */
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                            m, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                            MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0u,
                            MHD_OPTION_CONNECTION_LIMIT, conns, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)MGMT_CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)MGMT_CONN_MEMORY, MHD_OPTION_URI_LOG_CALLBACK, uri_cb, m,
                            MHD_OPTION_NOTIFY_COMPLETED, completed_cb, m, MHD_OPTION_END);
    if (m->d == NULL) {
        close(fd);
        free(m);
        snprintf(err, errlen, "management port %u on %s: libmicrohttpd did not start", cfg->port,
                 addr);
        return -EIO;
    }
    log_debug("mgmt: management server on %s (%u threads, %u connections)", m->location, threads,
              conns);
    *out = m;
    return 0;
}

uint16_t mgmt_port(const struct mgmt *m)
{
    return m->port;
}

void mgmt_stop(struct mgmt *m)
{
    if (m == NULL)
        return;
    /* MHD closes the listening socket it was given. */
    MHD_stop_daemon(m->d);
    free(m);
}
