/* mgmt/warmup.h - warm-up tasks: load a mount's files into the block cache ahead of their reads.
 *
 * The seed's "Prefetch data": /v1/warmup/load|stat|cancel and `aliyun-alinas-efc-cli -r
 * warmup/...`. A task is one target path (relative to the mount's root, "" for the root itself)
 * and an optional pattern (a POSIX extended regular expression matched, unanchored, against each
 * file's name, its last path component). A path naming a file loads that file; a path naming a
 * directory (a key prefix) loads every visible file under it, recursively. When both a file
 * "x" and a directory "x/" exist, the directory wins (as in the mount).
 *
 * Tasks run in the background on a bounded pool of worker threads: a task's walk lists the
 * prefix without delimiter (ListObjectsV2 pages of 1000 keys), adds each matching file's size to
 * TotalSize as it is found, and fills its blocks through backend.fill (disk tier first); each
 * filled block adds its bytes to CompletedSize. Files are filled by several workers at once, at
 * most `workers` blocks in flight over all tasks. Cancel stops a running task promptly (within
 * one block fill per worker); completed, failed and canceled tasks cannot be canceled. A task
 * fails (Status "failed", ErrorMessage saying why) when its path does not exist, its listing
 * fails, or a file cannot be filled; files that vanish during the walk (-ENOENT, -ESTALE) are
 * skipped, not failures.
 *
 * History: finished tasks (completed, canceled, failed) are evicted, oldest first, when there are
 * more than max_tasks tasks in all or when they are older than max_age_s; running tasks are
 * never evicted.
 *
 * Paths: warmup_normalize() turns a user's path into the canonical form used as the task's Path
 * and refuses anything that could escape the mount: absolute paths, "." or ".." components,
 * empty components ("a//b"), NUL bytes, paths longer than WARMUP_PATH_MAX. A trailing '/' is
 * dropped ("dir/" is "dir").
 *
 * Thread safety: every function may be called from any thread; warmup_free only when no other
 * call is running.
 */
#ifndef EFC_MGMT_WARMUP_H
#define EFC_MGMT_WARMUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WARMUP_PATH_MAX    1023 /* bytes of a normalized path (an object key's limit) */
#define WARMUP_PATTERN_MAX 1024 /* bytes of a pattern */

/* What the warm-up needs from the daemon (efc/ provides it on oss/ and cache/; tests fake it). */
struct warmup_backend {
    void *arg;
    /* Every object whose key starts with PREFIX (no delimiter), in pages: calls FN for each
     * (KEY the full key, ETAG with its quotes). Stops early and returns FN's non-zero return when
     * FN returns one. Returns 0 or -errno. */
    int (*list)(void *arg, const char *prefix,
                int (*fn)(void *fnarg, const char *key, const char *etag, uint64_t size),
                void *fnarg);
    /* HEAD of KEY: its ETag (quotes included) and size. -ENOENT when absent. */
    int (*head)(void *arg, const char *key, char *etag, size_t etaglen, uint64_t *size);
    /* Makes block INDEX (of block_size bytes) of (key, etag, size) present in the cache, as
     * cache_fill() does. 0 or -errno. */
    int (*fill)(void *arg, const char *key, const char *etag, uint64_t size, uint64_t index);
    uint64_t block_size;
};

struct warmup_config {
    const char *root_prefix; /* the mount's key prefix: "" or "dir/sub/" (copied) */
    unsigned workers;        /* block fills in flight over all tasks; 0: 8 */
    unsigned max_tasks;      /* history limit; 0: 10000 */
    uint64_t max_age_s;      /* history limit for finished tasks; 0: 7 days */
};

enum warmup_status {
    WARMUP_RUNNING,
    WARMUP_COMPLETED,
    WARMUP_CANCELED,
    WARMUP_FAILED,
};
/* "running", "completed", "canceled", "failed" */
const char *warmup_status_name(enum warmup_status s);

struct warmup_task_info {
    char path[WARMUP_PATH_MAX + 1];
    char pattern[WARMUP_PATTERN_MAX + 1];
    char error[256];         /* "" unless failed */
    bool is_dir;             /* the path named a directory */
    enum warmup_status status;
    uint64_t completed_size; /* bytes filled (or found already cached) so far */
    uint64_t total_size;     /* bytes of the matching files found so far (final once done) */
    uint64_t submit_time_us; /* CLOCK_REALTIME, microseconds */
    uint64_t id;             /* unique, increasing */
};

struct warmup;

int warmup_new(const struct warmup_config *cfg, const struct warmup_backend *be,
               struct warmup **out);
/* Cancels every running task, waits for the workers and frees everything. NULL: no-op. */
void warmup_free(struct warmup *w);

/* Normalizes PATH (see above) into OUT (OUTLEN >= WARMUP_PATH_MAX + 1). Returns 0, or -EINVAL with
 * a one-line reason in ERR ("path '/a' is absolute: give a path relative to the mount", ...). */
int warmup_normalize(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* Submits a task for PATH (normalized by the caller or not: it is normalized again) and PATTERN
 * (NULL or "" for every file). Returns at once with the task's id in *ID; the task runs in the
 * background. -EINVAL with a reason in ERR for a bad path or a pattern that does not compile;
 * -EBUSY when max_tasks tasks are running (none can be evicted). A path that does not exist is
 * not an error here: the task fails. */
int warmup_load(struct warmup *w, const char *path, const char *pattern, uint64_t *id, char *err,
                size_t errlen);

/* The tasks whose Path is PATH (normalized) submitted within the last PRECEDING_S seconds
 * (0: any age), newest first, at most MAX of them into OUT. Returns how many matched in all
 * (which may exceed MAX), or -EINVAL with a reason in ERR for a bad path. */
int warmup_stat(struct warmup *w, const char *path, uint64_t preceding_s,
                struct warmup_task_info *out, size_t max, char *err, size_t errlen);

/* Cancels the running tasks whose Path is PATH. Returns how many were canceled (>= 1), or
 * -ENOENT when there is no task for that path, -EALREADY when its tasks are all finished
 * (completed, failed or canceled: they cannot be canceled), -EINVAL for a bad path; a reason in
 * ERR in each error case. */
int warmup_cancel(struct warmup *w, const char *path, char *err, size_t errlen);

/* Task counts by status (index: enum warmup_status), for /metrics. */
void warmup_counts(struct warmup *w, uint64_t counts[4]);

#endif
