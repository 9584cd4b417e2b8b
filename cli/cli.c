/* cli/cli.c - the parsers and printers of aliyun-alinas-efc-cli; see cli.h.
 *
 * Three kinds of outside bytes arrive here: mountinfo (kernel text, but a test hook can point the
 * CLI at any file), the daemon's state file, and the management API's JSON answers. Each is taken
 * whole into a bounded buffer by main.c and parsed here from (pointer, length), so a NUL byte or a
 * truncated file is just another malformed input. JSON goes through jansson; every field is
 * checked for its type before use, and an absent optional field reads as zero or empty so that a
 * newer daemon that adds fields still works with this CLI. Text from the daemon (paths, patterns,
 * error messages) is sanitized before printing: a key name could carry terminal escapes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* ---- mountinfo --------------------------------------------------------------------------- */

/* Decodes a mountinfo field (octal escapes such as \040) into OUT; returns its length, or -1 if
 * it does not fit. */
static long unescape_field(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            c = (char)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0'));
            i += 3;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* Splits LINE (N bytes) at single spaces into at most MAX fields; returns how many. */
static size_t split_fields(const char *line, size_t n, const char **f, size_t *fl, size_t max)
{
    size_t k = 0, i = 0;
    while (i < n && k < max) {
        while (i < n && line[i] == ' ')
            i++;
        if (i >= n)
            break;
        size_t start = i;
        while (i < n && line[i] != ' ')
            i++;
        f[k] = line + start;
        fl[k] = i - start;
        k++;
    }
    return k;
}

/* Whether mount point MP (length MPL) strictly encloses PATH. */
static bool encloses(const char *mp, size_t mpl, const char *path, size_t pl)
{
    if (mpl == 1 && mp[0] == '/')
        return pl > 1;
    return mpl < pl && memcmp(mp, path, mpl) == 0 && path[mpl] == '/';
}

int cli_mountinfo_find(const char *text, size_t len, const char *mountpoint, struct cli_mount *m)
{
    size_t want = strlen(mountpoint), best = 0;
    char mp[PATH_MAX];

    memset(m, 0, sizeof(*m));
    if (mountpoint[0] != '/')
        return -EINVAL;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *line = text + pos;
        const char *f[64];
        size_t fl[64];
        pos += n + 1;

        /* id parent major:minor root mountpoint options [optional...] - fstype source super */
        size_t k = split_fields(line, n, f, fl, 64), dash = 0;
        for (size_t i = 6; i < k; i++)
            if (fl[i] == 1 && f[i][0] == '-') {
                dash = i;
                break;
            }
        if (k < 5 || dash == 0 || dash + 1 >= k || fl[dash + 1] >= sizeof(m->fstype))
            continue;
        long mpl = unescape_field(f[4], fl[4], mp, sizeof(mp));
        if (mpl <= 0)
            continue;
        if ((size_t)mpl == want && memcmp(mp, mountpoint, want) == 0) {
            m->found = true;
            memcpy(m->fstype, f[dash + 1], fl[dash + 1]);
            m->fstype[fl[dash + 1]] = '\0';
        } else if (encloses(mp, (size_t)mpl, mountpoint, want) && (size_t)mpl >= best) {
            /* ">=": of two mounts on one point the later line is the one on top */
            best = (size_t)mpl;
            memcpy(m->parent, mp, (size_t)mpl + 1);
            memcpy(m->parent_fstype, f[dash + 1], fl[dash + 1]);
            m->parent_fstype[fl[dash + 1]] = '\0';
        }
    }
    return 0;
}

int cli_path_lexical(const char *path, char *out, size_t outlen)
{
    size_t o = 0;
    const char *p = path;

    if (path[0] != '/')
        return -EINVAL;
    while (*p) {
        while (*p == '/')
            p++;
        const char *start = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - start);
        if (n == 0 || (n == 1 && start[0] == '.'))
            continue;
        if (n == 2 && start[0] == '.' && start[1] == '.')
            return -EINVAL;
        if (o + 1 + n + 1 > outlen)
            return -ENAMETOOLONG;
        out[o++] = '/';
        memcpy(out + o, start, n);
        o += n;
    }
    if (o == 0) {
        if (outlen < 2)
            return -ENAMETOOLONG;
        out[o++] = '/';
    }
    out[o] = '\0';
    return 0;
}

/* ---- the state file ---------------------------------------------------------------------- */

int cli_state_parse(const char *text, size_t len, struct cli_state *st, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root, *opts, *v;
    int rc = -EINVAL;

    memset(st, 0, sizeof(*st));
    if (len > CLI_MAX_STATE) {
        snprintf(err, errlen, "larger than %u bytes", CLI_MAX_STATE);
        return -EINVAL;
    }
    root = json_loadb(text, len, 0, &je);
    if (root == NULL) {
        snprintf(err, errlen, "not JSON: %s (line %d)", je.text, je.line);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "not a JSON object");
        goto out;
    }
    v = json_object_get(root, "pid");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            snprintf(err, errlen, "'pid' is not a process id");
            goto out;
        }
        st->pid = (long)json_integer_value(v);
    }
    v = json_object_get(root, "mountpoint");
    if (v != NULL) {
        if (!json_is_string(v) || json_string_length(v) >= sizeof(st->mountpoint) ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            snprintf(err, errlen, "'mountpoint' is not a path");
            goto out;
        }
        memcpy(st->mountpoint, json_string_value(v), json_string_length(v) + 1);
    }
    opts = json_object_get(root, "options");
    if (!json_is_object(opts)) {
        snprintf(err, errlen, "no 'options' object");
        goto out;
    }
    v = json_object_get(opts, "g_server_Port");
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 65535) {
        st->port = (unsigned)json_integer_value(v);
    } else if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= 5 &&
               strspn(json_string_value(v), "0123456789") == json_string_length(v) &&
               atoi(json_string_value(v)) <= 65535) {
        /* a state file rewritten by hand or by a tool that keeps every value a string */
        st->port = (unsigned)atoi(json_string_value(v));
    } else {
        snprintf(err, errlen, "%s",
                 v ? "'g_server_Port' is not a port number" : "no 'g_server_Port' in 'options'");
        goto out;
    }
    v = json_object_get(opts, "g_server_BindAddr");
    if (v != NULL) {
        if (!json_is_string(v) || json_string_length(v) >= sizeof(st->bind_addr) ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            snprintf(err, errlen, "'g_server_BindAddr' is not an address");
            goto out;
        }
        memcpy(st->bind_addr, json_string_value(v), json_string_length(v) + 1);
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int cli_connect_host(const char *bind, char *out, size_t outlen)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (bind[0] == '\0' || (inet_pton(AF_INET, bind, &a4) == 1 && a4.s_addr == INADDR_ANY)) {
        snprintf(out, outlen, "127.0.0.1");
        return 0;
    }
    if (inet_pton(AF_INET, bind, &a4) == 1) {
        snprintf(out, outlen, "%s", bind);
        return 0;
    }
    if (inet_pton(AF_INET6, bind, &a6) == 1) {
        if (IN6_IS_ADDR_UNSPECIFIED(&a6))
            snprintf(out, outlen, "[::1]");
        else
            snprintf(out, outlen, "[%s]", bind);
        return 0;
    }
    return -EINVAL;
}

/* ---- answers ------------------------------------------------------------------------------ */

json_t *cli_reply_parse(const char *body, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root, *v;

    if (len > CLI_MAX_BODY) {
        snprintf(err, errlen, "answer larger than %u bytes", CLI_MAX_BODY);
        return NULL;
    }
    root = json_loadb(body, len, 0, &je);
    if (root == NULL) {
        snprintf(err, errlen, "answer is not JSON: %s", je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "answer is not a JSON object");
        goto bad;
    }
    if (!json_is_integer(json_object_get(root, "ErrorCode"))) {
        snprintf(err, errlen, "answer has no integer 'ErrorCode'");
        goto bad;
    }
    v = json_object_get(root, "ErrorMessage");
    if (v != NULL && !json_is_string(v)) {
        snprintf(err, errlen, "answer's 'ErrorMessage' is not a string");
        goto bad;
    }
    v = json_object_get(root, "Results");
    if (v != NULL) {
        size_t i;
        json_t *r;
        if (!json_is_array(v)) {
            snprintf(err, errlen, "answer's 'Results' is not an array");
            goto bad;
        }
        json_array_foreach(v, i, r)
        {
            json_t *c = json_object_get(r, "ErrorCode");
            if (!json_is_object(r) || (c != NULL && !json_is_integer(c))) {
                snprintf(err, errlen, "answer's 'Results[%zu]' is malformed", i);
                goto bad;
            }
        }
    }
    return root;
bad:
    json_decref(root);
    return NULL;
}

static json_int_t code_of(json_t *o)
{
    json_t *c = json_object_get(o, "ErrorCode");
    return json_is_integer(c) ? json_integer_value(c) : 0;
}

/* The string field NAME of O, or "" when absent or not a string. */
static const char *str_of(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    return s ? s : "";
}

bool cli_reply_failed(json_t *reply)
{
    size_t i;
    json_t *r;

    if (code_of(reply) != 0)
        return true;
    json_array_foreach(json_object_get(reply, "Results"), i, r)
    {
        if (code_of(r) != 0)
            return true;
    }
    return false;
}

void cli_sanitize(const char *s, char *out, size_t outlen)
{
    size_t o = 0;

    if (s == NULL)
        s = "";
    for (size_t i = 0; s[i] && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            out[o++] = '?';
        } else if (c == 0xc2 && (unsigned char)s[i + 1] >= 0x80 &&
                   (unsigned char)s[i + 1] <= 0x9f) {
            out[o++] = '?'; /* U+0080..U+009F: C1 controls, e.g. CSI */
            i++;
        } else {
            out[o++] = (char)c;
        }
    }
    /* do not leave half of a UTF-8 sequence at a cut */
    if (o > 0 && o + 1 >= outlen && s[0]) {
        size_t k = o;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0xc0)
            o = k - 1;
    }
    if (outlen > 0)
        out[o] = '\0';
}

void cli_human_size(uint64_t n, char *out, size_t outlen)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = -1;

    if (n < 1024) {
        snprintf(out, outlen, "%" PRIu64 " B", n);
        return;
    }
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, outlen, "%.1f %s", v, units[u]);
}

/* Display columns of UTF-8 text, approximated as its code points. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

/* "'dir'" or "the root" for a path relative to the mount, sanitized. */
static void quote_path(const char *path, char *out, size_t outlen)
{
    char clean[CLI_MAX_FIELD];
    if (path[0] == '\0') {
        snprintf(out, outlen, "the root");
        return;
    }
    cli_sanitize(path, clean, sizeof(clean));
    snprintf(out, outlen, "'%s'", clean);
}

/* ---- /v1/tier ----------------------------------------------------------------------------- */

const char *const cli_tier_names[10] = {
    "tier_read",
    "tier_read_bytes",
    "tier_read_hit",
    "tier_read_hit_bytes",
    "tier_read_miss",
    "tier_read_miss_bytes",
    "tier_direct_read",
    "tier_direct_read_bytes",
    "tier_root_read_source",
    "tier_root_read_source_bytes",
};

int cli_print_tier(FILE *out, json_t *reply, char *err, size_t errlen)
{
    json_t *src = json_array_get(json_object_get(reply, "Results"), 0);
    json_int_t v[10];

    /* the counters are in Results[0] (the seed's shape for every /v1 answer); accept them at
       the top level too */
    if (!json_is_object(src) || json_object_get(src, cli_tier_names[0]) == NULL)
        src = reply;
    for (int i = 0; i < 10; i++) {
        json_t *j = json_object_get(src, cli_tier_names[i]);
        if (!json_is_integer(j)) {
            snprintf(err, errlen, "answer has no integer '%s'", cli_tier_names[i]);
            return -EINVAL;
        }
        v[i] = json_integer_value(j);
    }
    for (int i = 0; i < 10; i++)
        fprintf(out, "%s %" JSON_INTEGER_FORMAT "\n", cli_tier_names[i], v[i]);
    return 0;
}

/* ---- warm-up ------------------------------------------------------------------------------- */

/* Prints the top-level error of REPLY when no result said why. */
static int print_top_error(FILE *err_out, json_t *reply, int printed)
{
    char msg[CLI_MAX_FIELD];
    if (printed > 0 || code_of(reply) == 0)
        return printed;
    cli_sanitize(str_of(reply, "ErrorMessage"), msg, sizeof(msg));
    fprintf(err_out, CLI_PROGRAM ": the daemon answered error %" JSON_INTEGER_FORMAT "%s%s\n",
            code_of(reply), msg[0] ? ": " : "", msg);
    return printed + 1;
}

int cli_print_results(FILE *out, FILE *err_out, json_t *reply, const char *op)
{
    bool load = strcmp(op, "load") == 0;
    int printed = 0;
    size_t i;
    json_t *r;

    json_array_foreach(json_object_get(reply, "Results"), i, r)
    {
        char p[CLI_MAX_FIELD + 8], msg[CLI_MAX_FIELD];
        quote_path(str_of(r, "Path"), p, sizeof(p));
        cli_sanitize(str_of(r, "ErrorMessage"), msg, sizeof(msg));
        if (code_of(r) == 0) {
            fprintf(out, "warm-up of %s %s\n", p, load ? "started" : "canceled");
        } else {
            fprintf(err_out, CLI_PROGRAM ": %s of %s: %s\n",
                    load ? "cannot start the warm-up" : "cannot cancel the warm-up", p,
                    msg[0] ? msg : "error");
            printed++;
        }
    }
    return print_top_error(err_out, reply, printed);
}

bool cli_task_finished(const char *status)
{
    return strcmp(status, "completed") == 0 || strcmp(status, "canceled") == 0 ||
           strcmp(status, "failed") == 0;
}

/* Reads an optional non-negative integer field. */
static int u64_field(json_t *o, const char *name, uint64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, name);
    *out = 0;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        snprintf(err, errlen, "task's '%s' is not a non-negative integer", name);
        return -EINVAL;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int str_field(json_t *o, const char *name, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    json_t *v = json_object_get(o, name);
    out[0] = '\0';
    if (v == NULL)
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "task's '%s' is not a string", name);
        return -EINVAL;
    }
    cli_sanitize(json_string_value(v), out, outlen);
    return 0;
}

static int task_from_json(json_t *ti, json_t *result, struct cli_task *t, char *err, size_t errlen)
{
    json_t *d;
    memset(t, 0, sizeof(*t));
    if (!json_is_object(ti)) {
        snprintf(err, errlen, "a task of 'TaskInfos' is not an object");
        return -EINVAL;
    }
    if (str_field(ti, "Path", t->path, sizeof(t->path), err, errlen) ||
        str_field(ti, "Pattern", t->pattern, sizeof(t->pattern), err, errlen) ||
        str_field(ti, "Status", t->status, sizeof(t->status), err, errlen) ||
        str_field(ti, "ErrorMessage", t->error, sizeof(t->error), err, errlen) ||
        u64_field(ti, "CompletedSize", &t->completed, err, errlen) ||
        u64_field(ti, "TotalSize", &t->total, err, errlen) ||
        u64_field(ti, "SubmitTime", &t->submit_us, err, errlen))
        return -EINVAL;
    if (json_object_get(ti, "Path") == NULL)
        cli_sanitize(str_of(result, "Path"), t->path, sizeof(t->path));
    d = json_object_get(ti, "IsDir");
    if (d != NULL && !json_is_boolean(d)) {
        snprintf(err, errlen, "task's 'IsDir' is not a boolean");
        return -EINVAL;
    }
    t->is_dir = json_is_true(d);
    return 0;
}

/* TaskInfos of a result: an array, or NULL for none; -EINVAL if present and not an array. */
static int task_infos(json_t *r, json_t **out, char *err, size_t errlen)
{
    json_t *ti = json_object_get(r, "TaskInfos");
    *out = NULL;
    if (ti == NULL || json_is_null(ti))
        return 0;
    if (!json_is_array(ti)) {
        snprintf(err, errlen, "answer's 'TaskInfos' is not an array");
        return -EINVAL;
    }
    *out = ti;
    return 0;
}

long cli_stat_tasks(json_t *reply, struct cli_task **out, char *err, size_t errlen)
{
    size_t i, j, n = 0, cap = 0;
    json_t *r, *ti, *tasks;
    struct cli_task *v = NULL;

    *out = NULL;
    json_array_foreach(json_object_get(reply, "Results"), i, r)
    {
        if (code_of(r) != 0)
            continue;
        if (task_infos(r, &tasks, err, errlen) != 0)
            goto bad;
        json_array_foreach(tasks, j, ti)
        {
            if (n == CLI_MAX_TASKS)
                break;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                struct cli_task *nv = realloc(v, nc * sizeof(*v));
                if (nv == NULL) {
                    free(v);
                    snprintf(err, errlen, "out of memory");
                    return -ENOMEM;
                }
                v = nv;
                cap = nc;
            }
            if (task_from_json(ti, r, &v[n], err, errlen) != 0)
                goto bad;
            n++;
        }
    }
    *out = v;
    return (long)n;
bad:
    free(v);
    return -EINVAL;
}

void cli_task_progress(const struct cli_task *t, char *sizes, size_t sizeslen, char *pct,
                       size_t pctlen)
{
    char c[32], tot[32];
    cli_human_size(t->completed, c, sizeof(c));
    cli_human_size(t->total, tot, sizeof(tot));
    snprintf(sizes, sizeslen, "%s / %s", c, tot);
    if (t->total > 0) {
        double p = (double)t->completed * 100.0 / (double)t->total;
        snprintf(pct, pctlen, "%.1f%%", p > 100.0 ? 100.0 : p);
    } else {
        /* nothing found (yet): a completed empty task is done, anything else has no ratio */
        snprintf(pct, pctlen, "%s", strcmp(t->status, "completed") == 0 ? "100.0%" : "-");
    }
}

/* A table of text cells, printed with each column as wide as its widest cell (the stat table,
 * the cluster's members). */
#define TABLE_MAX_COLS 12

struct table {
    int ncols;   /* at most TABLE_MAX_COLS */
    char **cell; /* n rows of ncols malloc'd cells, row-major */
    size_t n, cap;
};

static int table_add(struct table *tb, const char *const *cells)
{
    size_t nc = (size_t)tb->ncols;
    if (tb->n == tb->cap) {
        size_t ncap = tb->cap ? tb->cap * 2 : 8;
        void *nr = realloc(tb->cell, ncap * nc * sizeof(*tb->cell));
        if (nr == NULL)
            return -ENOMEM;
        tb->cell = nr;
        tb->cap = ncap;
    }
    char **row = tb->cell + tb->n * nc;
    for (size_t c = 0; c < nc; c++) {
        row[c] = strdup(cells[c]);
        if (row[c] == NULL) {
            while (c-- > 0)
                free(row[c]);
            return -ENOMEM;
        }
    }
    tb->n++;
    return 0;
}

static void table_print(FILE *out, const struct table *tb)
{
    size_t w[TABLE_MAX_COLS] = {0}, nc = (size_t)tb->ncols;
    for (size_t r = 0; r < tb->n; r++)
        for (size_t c = 0; c < nc; c++) {
            size_t cw = text_width(tb->cell[r * nc + c]);
            if (cw > w[c])
                w[c] = cw;
        }
    for (size_t r = 0; r < tb->n; r++) {
        char *const *row = tb->cell + r * nc;
        /* the last non-empty cell ends the line: no trailing blanks */
        size_t last = nc - 1;
        while (last > 0 && row[last][0] == '\0')
            last--;
        for (size_t c = 0; c <= last; c++) {
            fputs(row[c], out);
            if (c < last)
                fprintf(out, "%*s", (int)(w[c] - text_width(row[c]) + 2), "");
        }
        fputc('\n', out);
    }
}

static void table_free(struct table *tb)
{
    for (size_t i = 0; i < tb->n * (size_t)tb->ncols; i++)
        free(tb->cell[i]);
    free(tb->cell);
}

#define STAT_COLS 7

static void format_time(uint64_t us, char *out, size_t outlen)
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    if (us == 0 || us / 1000000u > (uint64_t)INT64_MAX / 2 || localtime_r(&t, &tm) == NULL ||
        strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, outlen, "-");
}

int cli_print_stat(FILE *out, FILE *err_out, json_t *reply, const char *preceding_s, char *err,
                   size_t errlen)
{
    static const char *const head[STAT_COLS] = {
        "Path", "Status", "Completed / Total", "Progress", "Submit time", "Pattern", "Error"};
    struct table tb = {.ncols = STAT_COLS};
    struct cli_task *t = malloc(sizeof(*t));
    char *notes = NULL;
    size_t notes_len = 0;
    FILE *nf = open_memstream(&notes, &notes_len);
    int rc = 0, failed = 0;
    size_t i, j;
    json_t *r, *ti, *tasks;

    if (t == NULL || nf == NULL || table_add(&tb, head) != 0) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    json_array_foreach(json_object_get(reply, "Results"), i, r)
    {
        char p[CLI_MAX_FIELD + 8], msg[CLI_MAX_FIELD];
        quote_path(str_of(r, "Path"), p, sizeof(p));
        rc = task_infos(r, &tasks, err, errlen);
        if (rc)
            goto out;
        /* "no task in the window" is an answer, not a failure to get one: the daemon says
           ENOENT (the exit code still tells a script), the text says it plainly */
        if (json_array_size(tasks) == 0 && (code_of(r) == 0 || code_of(r) == ENOENT)) {
            if (preceding_s && strcmp(preceding_s, "0") == 0)
                fprintf(nf, "no warm-up task of %s\n", p);
            else
                fprintf(nf, "no warm-up task of %s submitted in the last %s s\n", p,
                        preceding_s ? preceding_s : "86400");
            continue;
        }
        if (code_of(r) != 0) {
            cli_sanitize(str_of(r, "ErrorMessage"), msg, sizeof(msg));
            fprintf(err_out, CLI_PROGRAM ": cannot stat the warm-up of %s: %s\n", p,
                    msg[0] ? msg : "error");
            failed++;
            continue;
        }
        json_array_foreach(tasks, j, ti)
        {
            char path[CLI_MAX_FIELD + 2], sizes[64], pct[16], when[32];
            rc = task_from_json(ti, r, t, err, errlen);
            if (rc)
                goto out;
            if (t->path[0] == '\0')
                snprintf(path, sizeof(path), "(root)");
            else
                snprintf(path, sizeof(path), "%s%s", t->path, t->is_dir ? "/" : "");
            cli_task_progress(t, sizes, sizeof(sizes), pct, sizeof(pct));
            format_time(t->submit_us, when, sizeof(when));
            const char *cells[STAT_COLS] = {path, t->status[0] ? t->status : "?",   sizes,   pct,
                                            when, t->pattern[0] ? t->pattern : "-", t->error};
            if (table_add(&tb, cells) != 0) {
                snprintf(err, errlen, "out of memory");
                rc = -ENOMEM;
                goto out;
            }
        }
    }
    fflush(nf);
    if (tb.n > 1)
        table_print(out, &tb);
    if (notes_len > 0)
        fwrite(notes, 1, notes_len, out);
    print_top_error(err_out, reply, failed);
out:
    if (nf != NULL)
        fclose(nf);
    free(notes);
    free(t);
    table_free(&tb);
    return rc;
}

/* ---- /v1/cluster ---------------------------------------------------------------------------- */

/* The optional fields of an answer: absent reads as "not said" (printed "-"), present with the
 * wrong type refuses the whole answer. WHERE names the object in the message ("" for the result,
 * "Members[2]." for a member). */
static int opt_type_error(const char *where, const char *name, const char *what, char *err,
                          size_t errlen)
{
    snprintf(err, errlen, "answer's '%s%s' is not %s", where, name, what);
    return -EINVAL;
}

static int opt_str(json_t *o, const char *where, const char *name, char *out, size_t outlen,
                   bool *have, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, name);
    out[0] = '\0';
    *have = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return opt_type_error(where, name, "a string", err, errlen);
    cli_sanitize(json_string_value(v), out, outlen);
    return 0;
}

static int opt_u64(json_t *o, const char *where, const char *name, uint64_t *out, bool *have,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(o, name);
    *out = 0;
    *have = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return opt_type_error(where, name, "a non-negative integer", err, errlen);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int opt_bool(json_t *o, const char *where, const char *name, bool *out, bool *have,
                    char *err, size_t errlen)
{
    json_t *v = json_object_get(o, name);
    *out = false;
    *have = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return opt_type_error(where, name, "a boolean", err, errlen);
    *out = json_is_true(v);
    return 0;
}

/* A non-negative number, integer or not (jansson reads "2" as an integer, "2.0" as a real). */
static int opt_number(json_t *o, const char *where, const char *name, double *out, bool *have,
                      char *err, size_t errlen)
{
    json_t *v = json_object_get(o, name);
    *out = 0;
    *have = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_number(v) || !(json_number_value(v) >= 0))
        return opt_type_error(where, name, "a non-negative number", err, errlen);
    *out = json_number_value(v);
    return 0;
}

static void format_secs(uint64_t s, char *out, size_t outlen)
{
    time_t t = (time_t)s;
    struct tm tm;
    if (s == 0 || s > (uint64_t)INT64_MAX / 2 || localtime_r(&t, &tm) == NULL ||
        strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, outlen, "-");
}

/* "0.25 ms", "12.5 ms", "3.1e+07 ms": two decimals where they matter, never a 300-digit cell. */
static void format_ms(double ms, char *out, size_t outlen)
{
    if (ms < 10)
        snprintf(out, outlen, "%.2f ms", ms);
    else if (ms < 1e6)
        snprintf(out, outlen, "%.1f ms", ms);
    else
        snprintf(out, outlen, "%.3g ms", ms);
}

#define CLUSTER_COLS 9

/* The row of member I (M) in the table; OUR_HASH is the result's RootlistHash ("" if unsaid).
 * Counts it in *MISMATCHED when its rootlist differs. */
static int member_row(json_t *m, size_t i, const char *our_hash, struct table *tb,
                      unsigned long *mismatched, char *err, size_t errlen)
{
    char where[48], name[CLI_MAX_FIELD], role[64], state[64], hash[64], last[CLI_MAX_FIELD];
    char lat[48], req[24], errs[24], bytes[32], rl[96];
    bool self, matches, h_self, h_matches, h_lat, h_req, h_errs, h_bytes, h;
    uint64_t nreq, nerr, nbytes;
    double ms;

    snprintf(where, sizeof(where), "Members[%zu].", i);
    if (!json_is_object(m)) {
        snprintf(err, errlen, "answer's 'Members[%zu]' is not an object", i);
        return -EINVAL;
    }
    if (opt_str(m, where, "Name", name, sizeof(name), &h, err, errlen) ||
        opt_str(m, where, "Role", role, sizeof(role), &h, err, errlen) ||
        opt_str(m, where, "State", state, sizeof(state), &h, err, errlen) ||
        opt_str(m, where, "RootlistHash", hash, sizeof(hash), &h, err, errlen) ||
        opt_str(m, where, "LastError", last, sizeof(last), &h, err, errlen) ||
        opt_bool(m, where, "Self", &self, &h_self, err, errlen) ||
        opt_bool(m, where, "RootlistMatches", &matches, &h_matches, err, errlen) ||
        opt_number(m, where, "LatencyMs", &ms, &h_lat, err, errlen) ||
        opt_u64(m, where, "Requests", &nreq, &h_req, err, errlen) ||
        opt_u64(m, where, "Errors", &nerr, &h_errs, err, errlen) ||
        opt_u64(m, where, "Bytes", &nbytes, &h_bytes, err, errlen))
        return -EINVAL;
    self = self || strcmp(state, "self") == 0;

    /* this node's own counters would be zeros that look like an idle peer: "-" */
    snprintf(lat, sizeof(lat), "-");
    snprintf(req, sizeof(req), "-");
    snprintf(errs, sizeof(errs), "-");
    snprintf(bytes, sizeof(bytes), "-");
    if (!self) {
        if (h_lat && ms > 0) /* 0: no answer yet */
            format_ms(ms, lat, sizeof(lat));
        if (h_req)
            snprintf(req, sizeof(req), "%" PRIu64, nreq);
        if (h_errs)
            snprintf(errs, sizeof(errs), "%" PRIu64, nerr);
        if (h_bytes)
            cli_human_size(nbytes, bytes, sizeof(bytes));
    }
    /* Whether it uses our rootlist: the daemon says so; an older answer without the flag is
       judged by the hashes. A peer not heard from yet has no hash and is no mismatch. */
    if (!h_matches)
        matches = hash[0] == '\0' || our_hash[0] == '\0' || strcmp(hash, our_hash) == 0;
    if (!matches) {
        snprintf(rl, sizeof(rl), "differs%s%s%s", hash[0] ? " (" : "", hash, hash[0] ? ")" : "");
        (*mismatched)++;
    } else {
        snprintf(rl, sizeof(rl), "%s", hash[0] || self ? "same" : "-");
    }
    const char *cells[CLUSTER_COLS] = {name[0] ? name : "-",
                                       role[0] ? role : "-",
                                       state[0] ? state : "-",
                                       lat,
                                       req,
                                       errs,
                                       bytes,
                                       rl,
                                       last};
    if (table_add(tb, cells) != 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

int cli_print_cluster(FILE *out, json_t *reply, char *err, size_t errlen)
{
    static const char *const head[CLUSTER_COLS] = {"Name",    "Role",     "State",
                                                   "Latency", "Requests", "Errors",
                                                   "Bytes",   "Rootlist", "Last error"};
    char rootlist[CLI_MAX_FIELD], hash[64], self[CLI_MAX_FIELD], role[64], loaded[32];
    bool auth, h_rootlist, h_hash, h_self, h_role, h_auth, h_loaded, h_count, h_mism;
    uint64_t loaded_s, count, mism;
    unsigned long mismatched = 0;
    struct table tb = {.ncols = CLUSTER_COLS};
    json_t *src = json_array_get(json_object_get(reply, "Results"), 0), *members, *m;
    size_t i, shown = 0;
    int rc;

    /* the seed's shape puts everything in Results[0]; accept it at the top level too, as
       cli_print_tier does */
    if (!json_is_object(src) || json_object_get(src, "Members") == NULL)
        src = reply;
    members = json_object_get(src, "Members");
    if (!json_is_array(members)) {
        snprintf(err, errlen, "answer has no array 'Members'");
        return -EINVAL;
    }
    if (opt_str(src, "", "Rootlist", rootlist, sizeof(rootlist), &h_rootlist, err, errlen) ||
        opt_str(src, "", "RootlistHash", hash, sizeof(hash), &h_hash, err, errlen) ||
        opt_str(src, "", "Self", self, sizeof(self), &h_self, err, errlen) ||
        opt_str(src, "", "Role", role, sizeof(role), &h_role, err, errlen) ||
        opt_bool(src, "", "Authentication", &auth, &h_auth, err, errlen) ||
        opt_u64(src, "", "LoadedTime", &loaded_s, &h_loaded, err, errlen) ||
        opt_u64(src, "", "MemberCount", &count, &h_count, err, errlen) ||
        opt_u64(src, "", "MismatchedPeers", &mism, &h_mism, err, errlen))
        return -EINVAL;

    if (table_add(&tb, head) != 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    json_array_foreach(members, i, m)
    {
        if (shown == CLI_MAX_MEMBERS)
            break;
        rc = member_row(m, i, hash, &tb, &mismatched, err, errlen);
        if (rc) {
            table_free(&tb);
            return rc;
        }
        shown++;
    }
    /* the daemon lists at most a few thousand members but counts them all */
    if (!h_count || count < json_array_size(members))
        count = json_array_size(members);
    if (!h_mism)
        mism = mismatched;

    format_secs(h_loaded ? loaded_s : 0, loaded, sizeof(loaded));
    fprintf(out, "%-15s %s\n", "rootlist", rootlist[0] ? rootlist : "-");
    fprintf(out, "%-15s %s\n", "hash", hash[0] ? hash : "-");
    fprintf(out, "%-15s %s\n", "loaded", loaded);
    fprintf(out, "%-15s %s\n", "self",
            self[0]  ? self
            : h_self ? "none (this node is not in the rootlist)"
                     : "-");
    fprintf(out, "%-15s %s\n", "role", role[0] ? role : "-");
    fprintf(out, "%-15s %s\n", "authentication", !h_auth ? "-" : auth ? "on" : "off");
    fprintf(out, "%-15s %" PRIu64 "\n", "members", count);
    fprintf(out, "%-15s %" PRIu64 "%s\n", "mismatched", mism,
            mism ? " (see the Rootlist column)" : "");
    fputc('\n', out);
    if (shown == 0)
        fprintf(out, "no members\n");
    else
        table_print(out, &tb);
    if (count > shown)
        fprintf(out, "... and %" PRIu64 " more members not shown\n", count - shown);
    table_free(&tb);
    return 0;
}
