/* tests/tools/faultfs.c - a FUSE file system for tests that passes through to a directory and,
 * on command, fails every data operation with EIO, as a dying disk does (this machine has no
 * device-mapper for a dm-error or dm-flakey target).
 *
 *   faultfs BACKING MOUNTPOINT [FUSE options]     (stays in the foreground; SIGTERM unmounts)
 *
 * The control file /.faultfs at the root of the mount (not in BACKING) takes "eio" (fail open,
 * create, read, write, fsync, fallocate and truncate of every other file with EIO) or "ok" (pass
 * them through again); the change is made when the write returns. Reading it gives the mode and
 * the number of operations failed so far: "eio 12\n". Names, attributes and directories always
 * work, so that a test can look at and clean up the backing files whatever the mode.
 *
 * Every file is opened direct_io: no read or write is answered from the kernel's page cache, so
 * each one reaches this process (and fails when told to).
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 314
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define CTL_PATH "/.faultfs"

static int backing = -1;     /* the backing directory */
static int failing;          /* atomic: the mode */
static unsigned long failed; /* atomic: operations failed */

/* The path relative to the backing directory ("." for the root). */
static const char *rel(const char *path)
{
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

static int is_ctl(const char *path)
{
    return path && strcmp(path, CTL_PATH) == 0;
}

/* 1 (and counted) when a data operation on PATH must fail now. */
static int fail_now(const char *path)
{
    if (is_ctl(path) || !__atomic_load_n(&failing, __ATOMIC_RELAXED))
        return 0;
    __atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
    return 1;
}

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    cfg->direct_io = 1;
    cfg->hard_remove = 1; /* an unlinked open file is not renamed to .fuse_hidden* */
    cfg->use_ino = 1;
    return NULL;
}

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        memset(st, 0, sizeof(*st));
        st->st_mode = S_IFREG | 0600;
        st->st_nlink = 1;
        return 0;
    }
    int r = fi ? fstat((int)fi->fh, st) : fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int ff_access(const char *path, int mask)
{
    if (is_ctl(path))
        return 0;
    return faccessat(backing, rel(path), mask, 0) == 0 ? 0 : -errno;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st = {.st_ino = de->d_ino, .st_mode = (mode_t)DTTOIF(de->d_type)};
        if (fill(buf, de->d_name, &st, 0, 0))
            break;
    }
    closedir(d);
    return 0;
}

static int ff_mkdir(const char *path, mode_t mode)
{
    return mkdirat(backing, rel(path), mode) == 0 ? 0 : -errno;
}

static int ff_unlink(const char *path)
{
    return unlinkat(backing, rel(path), 0) == 0 ? 0 : -errno;
}

static int ff_rmdir(const char *path)
{
    return unlinkat(backing, rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno;
}

static int ff_rename(const char *from, const char *to, unsigned int flags)
{
    return renameat2(backing, rel(from), backing, rel(to), flags) == 0 ? 0 : -errno;
}

static int ff_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    int r = fi ? fchmod((int)fi->fh, mode) : fchmodat(backing, rel(path), mode, 0);
    return r == 0 ? 0 : -errno;
}

static int ff_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    int r = fi ? fchown((int)fi->fh, uid, gid)
               : fchownat(backing, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int ff_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    int r = fi ? futimens((int)fi->fh, tv) : utimensat(backing, rel(path), tv, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (is_ctl(path))
        return 0; /* open(O_TRUNC) of the control file */
    if (fail_now(path))
        return -EIO;
    int r;
    if (fi) {
        r = ftruncate((int)fi->fh, size);
    } else {
        int fd = openat(backing, rel(path), O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        r = ftruncate(fd, size);
        if (r != 0)
            r = -errno;
        close(fd);
        return r;
    }
    return r == 0 ? 0 : -errno;
}

static int ff_open(const char *path, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        fi->fh = (uint64_t)-1;
        return 0;
    }
    if (fail_now(path))
        return -EIO;
    int fd = openat(backing, rel(path), (fi->flags & ~O_DIRECT) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    return 0;
}

static int ff_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (is_ctl(path))
        return -EEXIST;
    if (fail_now(path))
        return -EIO;
    int fd = openat(backing, rel(path), (fi->flags & ~O_DIRECT) | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    return 0;
}

static int ff_read(const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        char s[64];
        int n = snprintf(s, sizeof(s), "%s %lu\n",
                         __atomic_load_n(&failing, __ATOMIC_RELAXED) ? "eio" : "ok",
                         __atomic_load_n(&failed, __ATOMIC_RELAXED));
        if (off >= n)
            return 0;
        size_t k = (size_t)(n - off) < len ? (size_t)(n - off) : len;
        memcpy(buf, s + off, k);
        return (int)k;
    }
    if (fail_now(path))
        return -EIO;
    ssize_t r = pread((int)fi->fh, buf, len, off);
    return r >= 0 ? (int)r : -errno;
}

static int ff_write(const char *path, const char *buf, size_t len, off_t off,
                    struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        if (len >= 3 && memcmp(buf, "eio", 3) == 0)
            __atomic_store_n(&failing, 1, __ATOMIC_RELAXED);
        else if (len >= 2 && memcmp(buf, "ok", 2) == 0)
            __atomic_store_n(&failing, 0, __ATOMIC_RELAXED);
        else
            return -EINVAL;
        return (int)len;
    }
    if (fail_now(path))
        return -EIO;
    ssize_t r = pwrite((int)fi->fh, buf, len, off);
    return r >= 0 ? (int)r : -errno;
}

static int ff_statfs(const char *path, struct statvfs *st)
{
    return fstatvfs(backing, st) == 0 ? 0 : -errno;
}

static int ff_flush(const char *path, struct fuse_file_info *fi)
{
    return 0;
}

static int ff_release(const char *path, struct fuse_file_info *fi)
{
    if (!is_ctl(path) && fi->fh != (uint64_t)-1)
        close((int)fi->fh);
    return 0;
}

static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    if (is_ctl(path))
        return 0;
    if (fail_now(path))
        return -EIO;
    int r = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
    return r == 0 ? 0 : -errno;
}

static int ff_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
    if (is_ctl(path))
        return -EOPNOTSUPP;
    if (fail_now(path))
        return -EIO;
    return fallocate((int)fi->fh, mode, off, len) == 0 ? 0 : -errno;
}

static const struct fuse_operations ops = {
    .init = ff_init,
    .getattr = ff_getattr,
    .access = ff_access,
    .readdir = ff_readdir,
    .mkdir = ff_mkdir,
    .unlink = ff_unlink,
    .rmdir = ff_rmdir,
    .rename = ff_rename,
    .chmod = ff_chmod,
    .chown = ff_chown,
    .utimens = ff_utimens,
    .truncate = ff_truncate,
    .open = ff_open,
    .create = ff_create,
    .read = ff_read,
    .write = ff_write,
    .statfs = ff_statfs,
    .flush = ff_flush,
    .release = ff_release,
    .fsync = ff_fsync,
    .fallocate = ff_fallocate,
};

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: faultfs BACKING MOUNTPOINT [FUSE options]\n");
        return 2;
    }
    backing = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (backing < 0) {
        fprintf(stderr, "faultfs: cannot open '%s': %s\n", argv[1], strerror(errno));
        return 1;
    }
    /* fuse_main's arguments: the mount point, in the foreground, then the caller's options. */
    char **fargv = calloc((size_t)argc + 4, sizeof(*fargv));
    if (!fargv)
        return 1;
    int n = 0;
    fargv[n++] = argv[0];
    fargv[n++] = "-f";
    fargv[n++] = "-o";
    fargv[n++] = "fsname=faultfs,subtype=faultfs,max_threads=16";
    for (int i = 2; i < argc; i++)
        fargv[n++] = argv[i];
    int rc = fuse_main(n, fargv, &ops, NULL);
    free(fargv);
    close(backing);
    return rc;
}
