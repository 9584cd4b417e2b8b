/* efc/journal_i.h - the crash journal: what a successor needs when the daemon dies without a
 * handover (kill -9, abort, the OOM killer, or the supervisor's watchdog ending a wedged daemon).
 *
 * A runtime update (handover_i.h) has the old daemon write its inode table and open handles into
 * a blob at leisure. A daemon that dies writes nothing, so it keeps that state written down as it
 * goes: every node the kernel learns of, every name that stops leading to its node, every node the
 * kernel forgets, every handle opened and released is one record appended to a memfd that the
 * supervisor (supervise.c) holds. When the daemon is gone the supervisor replays the records into
 * the live set and turns it into a hand-over blob (efc_journal_blob), and a new daemon takes the
 * mount over from it exactly as a runtime update's successor does.
 *
 * Layout (little-endian, fixed width), one memfd:
 *
 *     header (EFC_JNL_HEADER_SIZE = 64 KiB)
 *        0  magic "EFCJRNL\0"                8  u32 version (1)   12  u32 header size
 *       16  u64 half size (bytes of each record area, a multiple of 4096)
 *       24  u32 active half (0 or 1)        28  u32 pid of the daemon that serves
 *       32  u64 used bytes of half 0        40  u64 used bytes of half 1
 *       48  u32 state (enum efc_journal_state)
 *       52  u32 INIT request length         56  u32 INIT reply length
 *       60  u32 argv length (bytes of NUL-terminated strings, the last one's NUL included)
 *       64  u64 generation (compactions so far)   72  u32 argc   76..127 spare (0)
 *      128  the kernel's FUSE_INIT request, EFC_HO_MAX_INIT bytes reserved
 *     1152  the INIT reply the kernel got, EFC_HO_MAX_REPLY bytes reserved
 *     1408  the daemon's argv (argv[0] included), to the end of the header
 *     half 0 at EFC_JNL_HEADER_SIZE, half 1 at EFC_JNL_HEADER_SIZE + half size
 *
 *     a record (8-byte aligned; its length a multiple of 8):
 *        0  u32 length of the whole record (EFC_JNL_FIXED + key + etag, rounded up to 8)
 *        4  u8 type (enum efc_jnl_type)     5  u8 flags (1: a directory)
 *        6  u16 key length                  8  u16 etag length   10  u16 spare (0)
 *       12  u32 spare (0)
 *       16  u64 a    24  u64 b    32  u64 c    40  u64 d
 *       48  key bytes, then etag bytes (no NULs), then zeros to the length
 *
 *     type    a               b        c         d       key, etag
 *     NODE    inode           parent   name len  0       full key (ns_i.h), -
 *     UNNAME  inode           0        0         0       -, -       (the name now leads elsewhere)
 *     FORGET  inode           0        0         0       -, -       (the node is gone)
 *     OPEN    handle number   inode    parent    size    key, ETag (files; "" for directories)
 *     CLOSE   handle number   0        0         0       -, -
 *
 * Writing. One mutex (a leaf: the callers hold ns.c's shard lock or fs.c's fh_lock) orders the
 * appends. A record is written into the active half past its used bytes, and only then is the
 * used count published (a release store), so a daemon killed at any instruction leaves every
 * record below the count whole. When the active half fills, or its records are mostly dead (used
 * bytes over 4x an estimate of the live ones, and over 1 MiB), the live records are copied into
 * the other half, its used count published, and only then the active index flipped: a death
 * during the copy leaves the old half active and whole. The old half's pages are then given back
 * (fallocate PUNCH_HOLE; the memfd is sparse, so the halves cost only what they hold). If even the
 * live records do not fit in a half the journal turns itself off (state EFC_JNL_OFF, logged
 * once): a successor then starts with an empty table, and the kernel's old inodes answer ESTALE.
 *
 * Reading (the supervisor, after the daemon is gone, and the fuzzer): everything is checked as
 * outside input: the header's sizes against the mapping, every record's length against its
 * limits and the bytes left, every field against its type. Replaying keeps the last word on each
 * inode and each handle: NODE makes a node live and named, UNNAME leaves it live and unnamed,
 * FORGET ends it; OPEN makes a handle live, CLOSE ends it. A record that fails a check stops the
 * replay with a one-line reason (nothing is half applied: the caller gets either the whole live
 * set or an error).
 */
#ifndef EFC_JOURNAL_I_H
#define EFC_JOURNAL_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "efc/hoblob_i.h"
#include "util/buf.h"

#define EFC_JNL_MAGIC        "EFCJRNL"
#define EFC_JNL_VERSION      1
#define EFC_JNL_HEADER_SIZE  65536
#define EFC_JNL_INIT_OFF     128
#define EFC_JNL_REPLY_OFF    (EFC_JNL_INIT_OFF + EFC_HO_MAX_INIT)
#define EFC_JNL_ARGV_OFF     (EFC_JNL_REPLY_OFF + EFC_HO_MAX_REPLY)
#define EFC_JNL_MAX_ARGV     (EFC_JNL_HEADER_SIZE - EFC_JNL_ARGV_OFF)
#define EFC_JNL_MAX_ARGC     256
#define EFC_JNL_FIXED        48
#define EFC_JNL_MIN_HALF     (64u << 10)
#define EFC_JNL_MAX_HALF     (16ull << 30)
#define EFC_JNL_DEFAULT_HALF (1ull << 30) /* sparse: only what the records use is memory */

enum efc_journal_state {
    EFC_JNL_SERVING = 0, /* a daemon serves the mount: restart it if it dies */
    EFC_JNL_EXITING = 1, /* the mount is ending (unmount, SIGTERM): do not restart */
    EFC_JNL_OFF = 2,     /* the records outgrew a half: a successor gets no table */
};

enum efc_jnl_type {
    EFC_JNL_NODE = 1,
    EFC_JNL_UNNAME = 2,
    EFC_JNL_FORGET = 3,
    EFC_JNL_OPEN = 4,
    EFC_JNL_CLOSE = 5,
};

struct efc_journal;

/* ---- the daemon's side: writing ------------------------------------------------------------ */

/* Creates a journal in a new memfd with two record areas of HALF bytes each (rounded up to 4096,
 * within EFC_JNL_MIN_HALF..EFC_JNL_MAX_HALF), state SERVING. Returns 0, or -errno with a reason
 * in ERR. */
int efc_journal_create(uint64_t half, struct efc_journal **out, char *err, size_t errlen);
/* Maps the journal on FD (a successor: the handover's or the supervisor's), checking its header
 * as outside input, to go on appending where the last writer stopped. Takes FD (closed by
 * efc_journal_free, or here on failure). Returns 0 or -errno with a reason in ERR. */
int efc_journal_attach(int fd, struct efc_journal **out, char *err, size_t errlen);
/* Unmaps and closes. NULL is fine. */
void efc_journal_free(struct efc_journal *j);
/* The memfd (to pass to a successor or to the supervisor); -1 for NULL. */
int efc_journal_fd(const struct efc_journal *j);

void efc_journal_set_pid(struct efc_journal *j, pid_t pid);
void efc_journal_set_state(struct efc_journal *j, enum efc_journal_state s);
/* Stores the kernel's INIT request and the reply it got. Returns 0 or -EINVAL (too long). */
int efc_journal_set_init(struct efc_journal *j, const void *init, size_t init_len,
                         const void *reply, size_t reply_len);
/* Stores the command line a successor is started with. Returns 0 or -E2BIG (more than
 * EFC_JNL_MAX_ARGC strings or EFC_JNL_MAX_ARGV bytes). */
int efc_journal_set_argv(struct efc_journal *j, int argc, char *const *argv);

/* The appends. Each is a no-op for a NULL journal or one turned off; none fails visibly. KEY is
 * KEYLEN bytes (not necessarily NUL-terminated). */
void efc_journal_node(struct efc_journal *j, uint64_t ino, uint64_t parent, size_t namelen,
                      bool is_dir, const char *key, size_t keylen);
void efc_journal_unname(struct efc_journal *j, uint64_t ino);
void efc_journal_forget(struct efc_journal *j, uint64_t ino);
void efc_journal_open(struct efc_journal *j, const struct efc_fh_record *r);
void efc_journal_close(struct efc_journal *j, uint64_t num);

struct efc_journal_stats {
    uint64_t records;     /* appended */
    uint64_t compactions; /* generation */
    uint64_t used;        /* bytes in the active half */
    uint64_t live;        /* live records after the last compaction + appended since */
    bool off;
};
void efc_journal_get_stats(struct efc_journal *j, struct efc_journal_stats *st);

/* ---- the supervisor's side: reading ---------------------------------------------------------- */

/* The header of a journal, as read from a mapping. Pointers point into the mapping. */
struct efc_journal_header {
    uint64_t half;
    uint32_t active;
    uint32_t pid;
    uint64_t used;  /* of the active half */
    uint32_t state; /* enum efc_journal_state */
    uint64_t generation;
    const uint8_t *init;
    uint32_t init_len;
    const uint8_t *reply;
    uint32_t reply_len;
    int argc;
    const char *argv[EFC_JNL_MAX_ARGC + 1]; /* NULL-terminated, into the mapping */
};

/* Reads and checks the header of the LEN bytes at MEM. Returns 0, or -EINVAL with a reason. */
int efc_journal_read_header(const void *mem, size_t len, struct efc_journal_header *h, char *err,
                            size_t errlen);

/* A live node or handle, as the replay hands them out (strings valid during the call only). */
struct efc_journal_node {
    uint64_t ino, parent;
    size_t namelen;
    bool is_dir;
    bool named;
    const char *key; /* NUL-terminated */
    size_t keylen;
};
struct efc_journal_visitor {
    int (*node)(void *arg, const struct efc_journal_node *n);
    int (*handle)(void *arg, const struct efc_fh_record *r);
};

/* Replays the active half of the journal at MEM (LEN bytes) and calls V for every live node
 * (in inode order) and then every live handle (in handle-number order). Returns 0, -EINVAL with a
 * reason in ERR (a header or a record that fails a check: nothing was called), -ENOMEM, or what a
 * callback returned. */
int efc_journal_replay(const void *mem, size_t len, const struct efc_journal_visitor *v, void *arg,
                       char *err, size_t errlen);

/* Builds into B the hand-over blob a successor takes the mount over with (hoblob_i.h): the
 * journal's INIT request and reply, MOUNT_TIME, OLD_PID, HOLD_START_MS (when requests began to
 * wait: the death, CLOCK_MONOTONIC ms; 0: now), ID as the update id, every live node
 * with lookup count 1 and "count unknown" set (efc_ns_record.lookups_unknown: the kernel's own
 * count was not written down, and the next forget of the node ends it) and no attributes
 * (fetched_ms 0: the next getattr asks the origin), every live handle; the next inode sequence
 * is NEXT_SEQ(max live inode) (pass efc_ns_seq_after). Returns 0, -EINVAL with a reason, -E2BIG
 * or -ENOMEM. */
int efc_journal_blob(const void *mem, size_t len, int64_t mount_time, uint32_t old_pid,
                     uint64_t hold_start_ms, const char *id, uint64_t (*next_seq)(uint64_t max_ino),
                     struct buf *b, char *err, size_t errlen);

#endif
