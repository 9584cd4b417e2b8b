/* bench/nullfs.c - efc-nullfs: a null FUSE file system, the ceiling of bench/run.sh.
 *
 * It serves a fixed, read-only tree described on its command line (or in a spec file) and answers
 * every read from memory: one pattern buffer computed at start, sliced by offset, sent with
 * fuse_reply_buf (no allocation, no copy in user space, no I/O). Whatever a FUSE design does on
 * this machine, it cannot beat this: every figure of efc is divided by nullfs's in the benchmark.
 *
 * The kernel sees the same session as efc's (efc/fs.c): libfuse3's low-level API, the
 * multi-threaded loop with one cloned /dev/fuse fd per worker, read-only, max_read 1 MiB,
 * readdirplus always (not the kernel's "auto" guess), parallel dirops, async read and async direct
 * I/O, max_background 64, keep_cache at open, st_blksize 1 MiB, long entry/attribute timeouts,
 * and the mount's readahead window raised after INIT (to 4 MiB; efc raises it to 1 MiB: see
 * bench/README.md for where the two sessions differ).
 *
 *   efc-nullfs [options] MOUNTPOINT
 *     --file NAME:SIZE          a file at the root (SIZE: bytes, or with K/M/G/T, binary)
 *     --dir NAME:COUNT:SIZE     a directory at the root holding COUNT files of SIZE bytes,
 *                               named f0000000 ... (printf "f%07u"), as bench/run.sh creates them
 *     --spec FILE               the same, one entry a line: "file NAME SIZE" / "dir NAME COUNT SIZE"
 *                               (blank lines and lines starting with '#' are skipped)
 *     --threads N               most FUSE worker threads (default 16)
 *     --timeout S               entry and attribute timeout in seconds (default 3600)
 *     --readahead-kb N          the mount's readahead window after INIT (default 4096; 0 keeps
 *                               the kernel's)
 *     -o OPTS                   more mount options (e.g. allow_other is already on)
 *     -d                        libfuse debug output
 *
 * It stays in the foreground; SIGINT/SIGTERM or an unmount (fusermount3 -u) ends it. The byte at
 * offset X of every file is pattern[X % PERIOD]: deterministic, not all zero, the same for every
 * file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define NULLFS_MAX_READ      (1u << 20)
#define NULLFS_BLKSIZE       NULLFS_MAX_READ
#define NULLFS_MAX_BG        64
#define NULLFS_PERIOD        (1u << 20) /* the pattern repeats every PERIOD bytes */
#define NULLFS_READDIR_MAX   (1u << 20)
#define NULLFS_NAME_FMT      "f%07u"

struct node {
    char *name;
    uint64_t parent;
    uint64_t size;
    bool is_dir;
    uint64_t first_child; /* directories: children are inodes [first_child, first_child+nchild) */
    uint64_t nchild;
};

static struct node *nodes; /* indexed by inode; 0 unused, 1 is the root */
static uint64_t nnodes, capnodes;
static uint64_t *htab; /* open addressing over (parent, name) -> inode, 0 empty */
static uint64_t hmask;
static char *pattern; /* PERIOD + MAX_READ bytes, so any slice [X % PERIOD, +MAX_READ) exists */
static double timeout_s = 3600.0;
static unsigned readahead_kb = 4096;
static char bdi[64];
static atomic_bool readahead_set;
static time_t mount_time;

/* ---- the tree ---------------------------------------------------------------------------- */

struct top {
    char *name;
    bool is_dir;
    uint64_t count, size;
};
static struct top *tops;
static size_t ntops, captops;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("efc-nullfs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL)
        die("out of memory");
    return p;
}

static uint64_t parse_size(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        die("bad %s '%s'", what, s);
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
        die("bad %s '%s'", what, s);
    return (uint64_t)v << shift;
}

static void check_name(const char *name)
{
    if (name[0] == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        strlen(name) > 255)
        die("bad name '%s'", name);
    for (size_t i = 0; i < ntops; i++)
        if (strcmp(tops[i].name, name) == 0)
            die("'%s' given twice", name);
}

static void add_top(const char *name, bool is_dir, uint64_t count, uint64_t size)
{
    check_name(name);
    if (ntops == captops) {
        captops = captops ? captops * 2 : 8;
        tops = xrealloc(tops, captops * sizeof(*tops));
    }
    tops[ntops].name = strdup(name);
    if (tops[ntops].name == NULL)
        die("out of memory");
    tops[ntops].is_dir = is_dir;
    tops[ntops].count = count;
    tops[ntops].size = size;
    ntops++;
}

/* "NAME:SIZE" or "NAME:COUNT:SIZE": NAME is everything before the last one or two colons. */
static void add_arg(const char *arg, bool is_dir)
{
    char *s = strdup(arg);
    if (s == NULL)
        die("out of memory");
    char *c2 = strrchr(s, ':');
    if (c2 == NULL)
        die("bad %s '%s'", is_dir ? "--dir" : "--file", arg);
    *c2 = '\0';
    if (is_dir) {
        char *c1 = strrchr(s, ':');
        if (c1 == NULL)
            die("bad --dir '%s' (NAME:COUNT:SIZE)", arg);
        *c1 = '\0';
        uint64_t count = parse_size(c1 + 1, "count");
        if (count > 100000000)
            die("too many files in '%s'", arg);
        add_top(s, true, count, parse_size(c2 + 1, "size"));
    } else {
        add_top(s, false, 0, parse_size(c2 + 1, "size"));
    }
    free(s);
}

static void read_spec(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        die("cannot open spec '%s': %s", path, strerror(errno));
    char line[1024];
    unsigned lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char kind[16], name[512], a[64], b[64];
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        int n = sscanf(p, "%15s %511s %63s %63s", kind, name, a, b);
        if (n == 3 && strcmp(kind, "file") == 0)
            add_top(name, false, 0, parse_size(a, "size"));
        else if (n == 4 && strcmp(kind, "dir") == 0)
            add_top(name, true, parse_size(a, "count"), parse_size(b, "size"));
        else
            die("%s:%u: expected 'file NAME SIZE' or 'dir NAME COUNT SIZE'", path, lineno);
    }
    fclose(f);
}

static uint64_t new_node(const char *name, uint64_t parent, bool is_dir, uint64_t size)
{
    if (nnodes == capnodes) {
        capnodes = capnodes ? capnodes * 2 : 1024;
        nodes = xrealloc(nodes, capnodes * sizeof(*nodes));
    }
    struct node *n = &nodes[nnodes];
    memset(n, 0, sizeof(*n));
    n->name = strdup(name);
    if (n->name == NULL)
        die("out of memory");
    n->parent = parent;
    n->is_dir = is_dir;
    n->size = size;
    return nnodes++;
}

static uint64_t hash_name(uint64_t parent, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ (parent * 0x9e3779b97f4a7c15ull);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static void hash_insert(uint64_t ino)
{
    uint64_t i = hash_name(nodes[ino].parent, nodes[ino].name) & hmask;
    while (htab[i] != 0)
        i = (i + 1) & hmask;
    htab[i] = ino;
}

static uint64_t hash_find(uint64_t parent, const char *name)
{
    uint64_t i = hash_name(parent, name) & hmask;
    for (uint64_t ino; (ino = htab[i]) != 0; i = (i + 1) & hmask)
        if (nodes[ino].parent == parent && strcmp(nodes[ino].name, name) == 0)
            return ino;
    return 0;
}

static void build_tree(void)
{
    new_node("", 0, false, 0);       /* inode 0: unused */
    uint64_t root = new_node("", 1, true, 0); /* inode 1 */
    nodes[root].first_child = nnodes;
    nodes[root].nchild = ntops;
    uint64_t *top_ino = xrealloc(NULL, (ntops + 1) * sizeof(*top_ino));
    for (size_t i = 0; i < ntops; i++)
        top_ino[i] = new_node(tops[i].name, root, tops[i].is_dir, tops[i].is_dir ? 0 : tops[i].size);
    for (size_t i = 0; i < ntops; i++) {
        if (!tops[i].is_dir)
            continue;
        /* the node array may move: index, never hold pointers across new_node() */
        nodes[top_ino[i]].first_child = nnodes;
        nodes[top_ino[i]].nchild = tops[i].count;
        char name[32];
        for (uint64_t k = 0; k < tops[i].count; k++) {
            snprintf(name, sizeof(name), NULLFS_NAME_FMT, (unsigned)k);
            new_node(name, top_ino[i], false, tops[i].size);
        }
    }
    free(top_ino);
    uint64_t cap = 16;
    while (cap < nnodes * 2)
        cap <<= 1;
    htab = calloc(cap, sizeof(*htab));
    if (htab == NULL)
        die("out of memory");
    hmask = cap - 1;
    for (uint64_t ino = 2; ino < nnodes; ino++)
        hash_insert(ino);
}

static void make_pattern(void)
{
    pattern = malloc(NULLFS_PERIOD + NULLFS_MAX_READ);
    if (pattern == NULL)
        die("out of memory");
    uint64_t x = 0x243f6a8885a308d3ull; /* xorshift: not compressible, not zero */
    for (size_t i = 0; i < NULLFS_PERIOD; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(pattern + i, &x, 8);
    }
    memcpy(pattern + NULLFS_PERIOD, pattern, NULLFS_MAX_READ);
}

/* ---- operations -------------------------------------------------------------------------- */

static void fill_stat(uint64_t ino, struct stat *st)
{
    const struct node *n = &nodes[ino];
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_uid = 0;
    st->st_gid = 0;
    if (n->is_dir) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
        st->st_size = 4096;
        st->st_blocks = 8;
    } else {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t)n->size;
        st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
    }
    st->st_blksize = NULLFS_BLKSIZE;
    st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = mount_time;
}

static bool valid_ino(fuse_ino_t ino)
{
    return ino >= 1 && ino < nnodes;
}

/* As efc: the bdi's readahead is raised once INIT is done, i.e. at the first request after it
   (raising it before INIT is undone by the kernel's clamp to max_readahead). */
static void raise_readahead(void)
{
    if (readahead_kb == 0 || bdi[0] == '\0' || atomic_load_explicit(&readahead_set, memory_order_relaxed) ||
        atomic_exchange(&readahead_set, true))
        return;
    char path[128], val[32];
    snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", bdi);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int n = snprintf(val, sizeof(val), "%u\n", readahead_kb);
    if (fd < 0 || write(fd, val, (size_t)n) != n)
        fprintf(stderr, "efc-nullfs: cannot set %s: %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_READDIRPLUS | FUSE_CAP_PARALLEL_DIROPS |
                    FUSE_CAP_ASYNC_DIO;
    conn->want |= want & conn->capable;
    conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_AUTO_INVAL_DATA |
                              FUSE_CAP_WRITEBACK_CACHE);
    conn->max_read = NULLFS_MAX_READ;
    conn->max_background = NULLFS_MAX_BG;
    conn->congestion_threshold = NULLFS_MAX_BG * 3 / 4;
    conn->time_gran = 1000000000;
}

static void entry_of(uint64_t ino, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof(*e));
    e->ino = ino;
    e->generation = 1;
    e->attr_timeout = timeout_s;
    e->entry_timeout = timeout_s;
    fill_stat(ino, &e->attr);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    raise_readahead();
    if (!valid_ino(parent) || !nodes[parent].is_dir) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    uint64_t ino = hash_find(parent, name);
    if (ino == 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fuse_entry_param e;
    entry_of(ino, &e);
    fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    fuse_reply_none(req); /* the tree is static: nothing to count */
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    raise_readahead();
    if (!valid_ino(ino)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct stat st;
    fill_stat(ino, &st);
    fuse_reply_attr(req, &st, timeout_s);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    raise_readahead();
    if (!valid_ino(ino)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (nodes[ino].is_dir) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err(req, EROFS);
        return;
    }
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    uint64_t fsize = nodes[ino].size;
    if (off < 0 || (uint64_t)off >= fsize) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > NULLFS_MAX_READ)
        size = NULLFS_MAX_READ;
    if ((uint64_t)off + size > fsize)
        size = (size_t)(fsize - (uint64_t)off);
    fuse_reply_buf(req, pattern + ((uint64_t)off % NULLFS_PERIOD), size);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    raise_readahead();
    if (!valid_ino(ino)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (!nodes[ino].is_dir) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

/* Offsets: 0 ".", 1 "..", 2+k the k-th child; an entry's off is the offset of the next one. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
    static __thread char *buf;
    if (!valid_ino(ino) || !nodes[ino].is_dir) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (size > NULLFS_READDIR_MAX)
        size = NULLFS_READDIR_MAX;
    if (buf == NULL && (buf = malloc(NULLFS_READDIR_MAX)) == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    const struct node *d = &nodes[ino];
    size_t used = 0;
    for (uint64_t o = (uint64_t)(off < 0 ? 0 : off); o < d->nchild + 2; o++) {
        uint64_t cino = o == 0 ? ino : o == 1 ? (ino == 1 ? 1 : d->parent) : d->first_child + o - 2;
        const char *name = o == 0 ? "." : o == 1 ? ".." : nodes[cino].name;
        size_t n;
        if (plus) {
            struct fuse_entry_param e;
            entry_of(cino, &e);
            n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)(o + 1));
        } else {
            struct stat st;
            memset(&st, 0, sizeof(st));
            st.st_ino = cino;
            st.st_mode = nodes[cino].is_dir ? S_IFDIR : S_IFREG;
            n = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(o + 1));
        }
        if (n > size - used)
            break;
        used += n;
    }
    fuse_reply_buf(req, buf, used);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    do_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = NULLFS_BLKSIZE;
    sv.f_frsize = 4096;
    sv.f_blocks = 1ull << 38;
    sv.f_files = nnodes;
    sv.f_namemax = 255;
    fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    /* xattrs unimplemented: libfuse answers ENOSYS and the kernel stops asking, as with efc */
};

/* ---- main ---------------------------------------------------------------------------------- */

/* major:minor of the mount on DIR from /proc/self/mountinfo (the last one: ours, just made). */
static void find_bdi(const char *dir)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char devno[64], mp[PATH_MAX];
        if (sscanf(line, "%*s %*s %63s %*s %4095s", devno, mp) == 2 && strcmp(mp, dir) == 0)
            snprintf(bdi, sizeof(bdi), "%s", devno);
    }
    free(line);
    fclose(f);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: efc-nullfs [--file NAME:SIZE]... [--dir NAME:COUNT:SIZE]... [--spec FILE]\n"
               "                  [--threads N] [--timeout S] [--readahead-kb N] [-o OPTS] [-d]"
               " MOUNTPOINT\n");
}

int main(int argc, char **argv)
{
    const char *mnt = NULL, *extra_opts = NULL;
    unsigned threads = 16;
    bool debug = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                                                    \
    do {                                                                                           \
        if (v == NULL)                                                                             \
            die("%s needs a value", a);                                                            \
        i++;                                                                                       \
    } while (0)
        if (strcmp(a, "--file") == 0) {
            NEEDV();
            add_arg(v, false);
        } else if (strcmp(a, "--dir") == 0) {
            NEEDV();
            add_arg(v, true);
        } else if (strcmp(a, "--spec") == 0) {
            NEEDV();
            read_spec(v);
        } else if (strcmp(a, "--threads") == 0) {
            NEEDV();
            threads = (unsigned)parse_size(v, "--threads");
            if (threads < 1 || threads > 1024)
                die("--threads must be 1..1024");
        } else if (strcmp(a, "--timeout") == 0) {
            NEEDV();
            timeout_s = strtod(v, NULL);
        } else if (strcmp(a, "--readahead-kb") == 0) {
            NEEDV();
            readahead_kb = (unsigned)parse_size(v, "--readahead-kb");
        } else if (strcmp(a, "-o") == 0) {
            NEEDV();
            extra_opts = v;
        } else if (strcmp(a, "-d") == 0) {
            debug = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-' || mnt != NULL) {
            usage(stderr);
            return 2;
        } else {
            mnt = a;
        }
#undef NEEDV
    }
    if (mnt == NULL) {
        usage(stderr);
        return 2;
    }
    char *real = realpath(mnt, NULL);
    if (real == NULL)
        die("mount point '%s': %s", mnt, strerror(errno));

    mount_time = time(NULL);
    make_pattern();
    build_tree();

    char opts[1024];
    snprintf(opts, sizeof(opts),
             "ro,default_permissions,allow_other,max_read=%u,fsname=efc-nullfs,subtype=efc-nullfs%s%s",
             NULLFS_MAX_READ, extra_opts ? "," : "", extra_opts ? extra_opts : "");
    char *fargv[] = {argv[0], "-o", opts, debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, fargv);

    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
    if (se == NULL)
        die("fuse_session_new failed");
    if (fuse_set_signal_handlers(se) != 0)
        die("cannot set signal handlers");
    if (fuse_session_mount(se, real) != 0)
        die("cannot mount on '%s'", real);
    find_bdi(real);
    fprintf(stderr, "efc-nullfs: %" PRIu64 " inodes mounted on %s (bdi %s)\n", nnodes - 1, real,
            bdi[0] ? bdi : "?");

    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 1);
    fuse_loop_cfg_set_max_threads(cfg, threads);
    int rc = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);

    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    free(real);
    return rc == 0 ? 0 : 1;
}
