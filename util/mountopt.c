/* util/mountopt.c - mount(8)'s command line, option string and source, parsed; see mountopt.h.
 *
 * Everything here is a pure function over text, bounded by the buffers it is given: a name or a
 * value that does not fit is an error, never a truncation, so what the helper validates is exactly
 * what the daemon receives. The option string follows libmount's rules (commas separate, a
 * double-quoted part may hold commas, "x" and "x=" differ). Errors are one line, lower case, the
 * offending text in quotes, ready to be printed after "mount.alinas: ".
 */
#include "util/mountopt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The -o strings of one command line together; far above anything mount(8) passes. */
#define MOUNTOPT_OPTIONS_MAX 65536
#define MOUNTOPT_NAME_MAX    256

static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- command line ---- */

static int append_options(struct mountopt_cmd *cmd, const char *more, char *err, size_t errlen)
{
    size_t have = strlen(cmd->options), add = strlen(more);
    if (add == 0)
        return 0;
    if (have + 1 + add > MOUNTOPT_OPTIONS_MAX)
        return seterr(err, errlen, -EINVAL, "mount options too long (more than %d bytes)",
                      MOUNTOPT_OPTIONS_MAX);
    char *s = realloc(cmd->options, have + 1 + add + 1);
    if (s == NULL)
        return -ENOMEM;
    if (have)
        s[have++] = ',';
    memcpy(s + have, more, add + 1);
    cmd->options = s;
    return 0;
}

int mountopt_cmd_parse(int argc, char *const argv[], struct mountopt_cmd *cmd, char *err,
                       size_t errlen)
{
    int operands = 0;
    bool only_operands = false;

    memset(cmd, 0, sizeof(*cmd));
    cmd->options = strdup("");
    if (cmd->options == NULL)
        return -ENOMEM;
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        const char *a = argv[i];
        if (!only_operands && strcmp(a, "--") == 0) {
            only_operands = true;
            continue;
        }
        if (!only_operands && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--help") == 0) {
                cmd->help = true;
                continue;
            }
            for (const char *p = a + 1; *p; p++) {
                const char *arg;
                int rc;
                switch (*p) {
                case 's':
                    cmd->sloppy = true;
                    continue;
                case 'f':
                    cmd->fake = true;
                    continue;
                case 'n':
                    cmd->nomtab = true;
                    continue;
                case 'v':
                    cmd->verbose = true;
                    continue;
                case 'h':
                    cmd->help = true;
                    continue;
                case 'o':
                case 't':
                case 'N':
                    if (p[1] != '\0')
                        arg = p + 1;
                    else if (i + 1 < argc && argv[i + 1] != NULL)
                        arg = argv[++i];
                    else
                        return seterr(err, errlen, -EINVAL, "flag '-%c' needs an argument", *p);
                    if (*p == 'o') {
                        rc = append_options(cmd, arg, err, errlen);
                        if (rc)
                            return rc;
                    } else if (*p == 't') {
                        cmd->type = arg;
                    } else {
                        cmd->ns = arg;
                    }
                    break;
                default:
                    return seterr(err, errlen, -EINVAL, "unknown flag '-%c'", *p);
                }
                break; /* the flag's argument ended this word */
            }
            continue;
        }
        if (operands == 0)
            cmd->source = a;
        else if (operands == 1)
            cmd->dir = a;
        else
            return seterr(err, errlen, -EINVAL, "unexpected argument '%.200s'", a);
        operands++;
    }
    if (cmd->help)
        return 0;
    if (operands < 2)
        return seterr(err, errlen, -EINVAL, "%s",
                      operands == 0 ? "missing source and mount point" : "missing mount point");
    if (cmd->source[0] == '\0' || cmd->dir[0] == '\0')
        return seterr(err, errlen, -EINVAL, "empty source or mount point");
    return 0;
}

void mountopt_cmd_release(struct mountopt_cmd *cmd)
{
    free(cmd->options);
    cmd->options = NULL;
}

/* ---- option string ---- */

int mountopt_next(const char **cursor, char *name, size_t namelen, char *value, size_t valuelen,
                  bool *has_value)
{
    const char *p = *cursor;
    size_t n = 0, v = 0;
    bool in_value = false, quoted = false;

    if (namelen == 0 || valuelen == 0)
        return -ENAMETOOLONG;
    while (*p == ',')
        p++;
    if (*p == '\0') {
        *cursor = p;
        return 0;
    }
    *has_value = false;
    for (; *p; p++) {
        char c = *p;
        if (c == '"') {
            quoted = !quoted;
            continue;
        }
        if (!quoted && c == ',')
            break;
        if (!in_value && !quoted && c == '=') {
            in_value = true;
            *has_value = true;
            continue;
        }
        if (in_value) {
            if (v + 1 >= valuelen)
                return -ENAMETOOLONG;
            value[v++] = c;
        } else {
            if (n + 1 >= namelen)
                return -ENAMETOOLONG;
            name[n++] = c;
        }
    }
    if (quoted)
        return -EINVAL;
    name[n] = '\0';
    value[v] = '\0';
    *cursor = p;
    return 1;
}

bool mountopt_is_generic(const char *name, bool has_value)
{
    /* Flags of mount(8) that mean nothing to a read-only FUSE mount made by a daemon: the kernel
       mount is always ro,nosuid,nodev, and _netdev / nofail / auto / user only steer mount(8)
       and systemd, which have acted on them before we run. */
    static const char *const flags[] = {
        "ro",      "rw",       "defaults",    "_netdev",    "nofail", "auto",  "noauto", "nouser",
        "users",   "exec",     "noexec",      "suid",       "nosuid", "dev",   "nodev",  "atime",
        "noatime", "relatime", "strictatime", "nodiratime", "sync",   "async",
    };
    /* Options that carry free text: x-* (x-systemd.*, x-mount.*: for userspace tools),
       comment=, and user / user=<name> (libmount adds user=<name> to a user mount). */
    if (strncmp(name, "x-", 2) == 0 && name[2] != '\0')
        return true;
    if (strcmp(name, "comment") == 0 || strcmp(name, "user") == 0)
        return true;
    if (has_value)
        return false;
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strcmp(name, flags[i]) == 0)
            return true;
    return false;
}

int mountopt_init(struct mountopt *m)
{
    memset(m, 0, sizeof(*m));
    m->trybind = true;
    return opt_init(&m->opts);
}

void mountopt_release(struct mountopt *m)
{
    free(m->passwd_file);
    m->passwd_file = NULL;
    opt_release(&m->opts);
}

static void note_ignored(struct mountopt *m, const char *name)
{
    size_t have = strlen(m->ignored), nl = strlen(name);
    if (have + nl + 5 >= sizeof(m->ignored))
        return; /* the list is for a warning; the first ones are enough */
    char *w = m->ignored + have;
    if (have) {
        *w++ = ',';
        *w++ = ' ';
    }
    *w++ = '\'';
    memcpy(w, name, nl);
    w += nl;
    *w++ = '\'';
    *w = '\0';
}

static int parse_one(struct mountopt *m, const char *name, const char *value, bool has_value,
                     bool sloppy, char *err, size_t errlen)
{
    if (name[0] == '\0')
        return seterr(err, errlen, -EINVAL, "option '=%.200s' has no name", value);
    if (strcmp(name, "efc") == 0) {
        if (has_value)
            return seterr(err, errlen, -EINVAL, "option 'efc' takes no value");
        m->efc = true;
        return 0;
    }
    if (strcmp(name, "protocol") == 0) {
        if (strcasecmp(value, "oss") == 0)
            strcpy(m->protocol, "oss");
        else if (strcasecmp(value, "s3") == 0)
            strcpy(m->protocol, "s3");
        else
            return seterr(err, errlen, -EINVAL, "protocol: must be oss or s3, not '%.200s'", value);
        return 0;
    }
    if (strcmp(name, "passwd_file") == 0) {
        if (value[0] != '/')
            return seterr(err, errlen, -EINVAL, "passwd_file: must be an absolute path");
        char *s = strdup(value);
        if (s == NULL)
            return -ENOMEM;
        free(m->passwd_file);
        m->passwd_file = s;
        return 0;
    }
    if (strcmp(name, "trybind") == 0) {
        if (!has_value || strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0)
            m->trybind = true;
        else if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0)
            m->trybind = false;
        else
            return seterr(err, errlen, -EINVAL, "trybind: must be yes or no, not '%.200s'", value);
        return 0;
    }
    if (strncmp(name, "g_", 2) == 0) {
        /* Our own namespace: a typo here must never be ignored, even with -s. */
        size_t nl = strlen(name), vl = strlen(value);
        char *kv = malloc(nl + vl + 2);
        if (kv == NULL)
            return -ENOMEM;
        memcpy(kv, name, nl);
        kv[nl] = '\0';
        if (has_value) {
            kv[nl] = '=';
            memcpy(kv + nl + 1, value, vl + 1);
        }
        int rc = opt_set_kv(&m->opts, kv, err, errlen);
        free(kv);
        return rc;
    }
    if (mountopt_is_generic(name, has_value))
        return 0;
    if (mountopt_is_generic(name, false))
        return seterr(err, errlen, -EINVAL, "option '%s' takes no value", name);
    if (sloppy) {
        note_ignored(m, name);
        return 0;
    }
    return seterr(err, errlen, -ENOENT, "unknown option '%.200s'", name);
}

int mountopt_parse(struct mountopt *m, const char *optstr, bool sloppy, char *err, size_t errlen)
{
    const char *cur = optstr ? optstr : "";
    char name[MOUNTOPT_NAME_MAX];
    char *value = malloc(OPT_MAX_VALUE + 2);
    bool has_value;
    int rc;

    if (value == NULL)
        return -ENOMEM;
    for (;;) {
        rc = mountopt_next(&cur, name, sizeof(name), value, OPT_MAX_VALUE + 2, &has_value);
        if (rc == -ENAMETOOLONG)
            rc = seterr(err, errlen, -EINVAL, "an option name or value is too long near '%.40s'",
                        cur);
        else if (rc < 0)
            rc = seterr(err, errlen, -EINVAL, "unterminated quote in the options");
        if (rc <= 0)
            break;
        rc = parse_one(m, name, value, has_value, sloppy, err, errlen);
        if (rc)
            break;
    }
    free(value);
    if (rc < 0)
        return rc;
    if (!m->efc)
        return seterr(err, errlen, -EINVAL,
                      "missing option 'efc' (mount -t alinas -o efc,protocol=oss,...)");
    if (m->protocol[0] == '\0')
        return seterr(err, errlen, -EINVAL, "missing option 'protocol' (protocol=oss or s3)");
    return opt_check(&m->opts, err, errlen);
}

/* ---- trybind ---- */

bool mountopt_bind_ignores(int id)
{
    return id == OPT_LOG_FILE || id == OPT_LOG_LEVEL || id == OPT_LOG_MAXBYTES ||
           id == OPT_LOG_FILECOUNT;
}

int mountopt_bind_differs(const struct opt_set *a, const struct opt_set *b)
{
    for (int i = 0; i < OPT__COUNT; i++) {
        if (mountopt_bind_ignores(i))
            continue;
        if (opt_table[i].type == OPT_STRING
                ? strcmp(a->v[i].s ? a->v[i].s : "", b->v[i].s ? b->v[i].s : "") != 0
                : a->v[i].i != b->v[i].i)
            return i;
    }
    return -1;
}

/* ---- source ---- */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static int check_host(const char *h, size_t n, char *err, size_t errlen)
{
    size_t end = n;
    const char *colon = memchr(h, ':', n);
    if (colon) {
        end = (size_t)(colon - h);
        long port = 0;
        size_t digits = n - end - 1;
        if (digits == 0 || digits > 5)
            return seterr(err, errlen, -EINVAL, "invalid port");
        for (size_t i = end + 1; i < n; i++) {
            if (h[i] < '0' || h[i] > '9')
                return seterr(err, errlen, -EINVAL, "invalid port");
            port = port * 10 + (h[i] - '0');
        }
        if (port < 1 || port > 65535)
            return seterr(err, errlen, -EINVAL, "invalid port");
    }
    if (end == 0)
        return seterr(err, errlen, -EINVAL, "missing host after the bucket name");
    size_t label = 0;
    for (size_t i = 0; i <= end; i++) {
        if (i == end || h[i] == '.') {
            if (label == 0 || h[i - 1] == '-' || h[i - label] == '-')
                return seterr(err, errlen, -EINVAL, "invalid host name");
            label = 0;
            continue;
        }
        if (!is_alnum(h[i]) && h[i] != '-')
            return seterr(err, errlen, -EINVAL, "invalid character in the host name");
        if (++label > 63)
            return seterr(err, errlen, -EINVAL, "invalid host name");
    }
    return 0;
}

int mountopt_source_parse(const char *src, struct mountopt_source *out, char *err, size_t errlen)
{
    static const char shape[] = "expected <bucket>.<host>:/<prefix>";
    const char *sep = strstr(src, ":/");

    memset(out, 0, sizeof(*out));
    if (sep == NULL)
        return seterr(err, errlen, -EINVAL, "%s", shape);
    const char *dot = memchr(src, '.', (size_t)(sep - src));
    if (dot == NULL)
        return seterr(err, errlen, -EINVAL, "no host: %s", shape);

    size_t bl = (size_t)(dot - src);
    if (bl < 3 || bl > MOUNTOPT_BUCKET_MAX)
        return seterr(err, errlen, -EINVAL, "bucket name must be 3 to 63 characters");
    for (size_t i = 0; i < bl; i++)
        if (!is_lower_alnum(src[i]) && src[i] != '-')
            return seterr(err, errlen, -EINVAL,
                          "bucket name may hold only lower-case letters, digits and '-'");
    if (src[0] == '-' || src[bl - 1] == '-')
        return seterr(err, errlen, -EINVAL, "bucket name must not start or end with '-'");

    const char *host = dot + 1;
    size_t hl = (size_t)(sep - host);
    if (hl > MOUNTOPT_HOST_MAX)
        return seterr(err, errlen, -EINVAL, "host name too long");
    int rc = check_host(host, hl, err, errlen);
    if (rc)
        return rc;

    const char *p = sep + 2;
    size_t pl = strlen(p);
    if (pl > 0 && p[pl - 1] == '/')
        pl--; /* the trailing slash is optional */
    if (pl + 1 > MOUNTOPT_PREFIX_MAX)
        return seterr(err, errlen, -EINVAL, "prefix too long");
    size_t comp = 0;
    for (size_t i = 0; i <= pl; i++) {
        if (i == pl || p[i] == '/') {
            if (pl == 0)
                break;
            /* Such keys are never visible in the mount (DESIGN.md), so neither is such a root. */
            if (comp == 0 || (comp == 1 && p[i - 1] == '.') ||
                (comp == 2 && p[i - 1] == '.' && p[i - 2] == '.'))
                return seterr(err, errlen, -EINVAL,
                              "prefix must not hold empty, '.' or '..' components");
            comp = 0;
            continue;
        }
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return seterr(err, errlen, -EINVAL, "control character in the prefix");
        comp++;
    }

    memcpy(out->bucket, src, bl);
    memcpy(out->host, host, hl);
    if (pl) {
        memcpy(out->prefix, p, pl);
        out->prefix[pl] = '/';
    }
    return 0;
}

/* ---- mountinfo ---- */

static void unescape_octal(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

int mountopt_mountinfo_parse(char *line, struct mountopt_mountinfo *out)
{
    /* id parent major:minor root mountpoint options [optional fields...] - fstype source super */
    char *save = NULL, *tok;
    int field = 0;

    memset(out, 0, sizeof(*out));
    line[strcspn(line, "\n")] = '\0';
    for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 3)
            out->majmin = tok;
        if (field == 4)
            out->root = tok;
        if (field == 5)
            out->mountpoint = tok;
        if (field > 6 && strcmp(tok, "-") == 0)
            break;
    }
    if (tok == NULL || out->mountpoint == NULL)
        return -EINVAL;
    unescape_octal(out->root);
    out->fstype = strtok_r(NULL, " ", &save);
    out->source = strtok_r(NULL, " ", &save);
    if (out->fstype == NULL || out->source == NULL)
        return -EINVAL;
    unescape_octal(out->mountpoint);
    unescape_octal(out->fstype);
    unescape_octal(out->source);
    return 0;
}
