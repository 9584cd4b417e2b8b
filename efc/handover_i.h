/* efc/handover_i.h - runtime updates: a running daemon hands its FUSE connection, inode table and
 * open handles to a new daemon process started with changed options, without unmounting.
 *
 * The sequence (handover.c has the details):
 *
 *     efc_runtime_ops           old daemon                          new daemon
 *     writes <state>.pending.json
 *     SIGUSR2 ------------>     validates the options (else: answers in the state file, done)
 *                               holds /dev/fuse reads, waits for the requests in flight
 *                               exports inodes and handles to a memfd (the blob below)
 *                               stops mgmt, read path, block cache (flushes its disk writes)
 *                               starts the new daemon ----------->  adopts /dev/fuse, replays
 *                                                                   INIT, imports the blob,
 *                                                                   starts cache and read path
 *                               exits  <-------------- "ok" ------  serves; writes the state file
 *     sees the new pid and "ok"
 *
 * Any failure before "ok" leaves the old daemon serving as before (it restarts what it stopped)
 * and its state file's "update" section says why.
 */
#ifndef EFC_HANDOVER_I_H
#define EFC_HANDOVER_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "efc/ns_i.h"
#include "util/buf.h"

struct efc;
struct efc_handover;

/* ---- the blob --------------------------------------------------------------------------------
 * What the new process needs, written by the old one into a memfd. Little-endian, fixed-width:
 *
 *     header (EFC_HO_HEADER_SIZE = 96 bytes)
 *      0  magic "EFCHOVR\0"                   8
 *      8  u32 version (1)                     12  u32 header size (96)
 *     16  u64 body length                     24  u64 CRC-64/XZ of the blob (these 8 bytes as 0)
 *     32  i64 mount time (s)                  40  u64 next inode sequence
 *     48  u64 node count                      56  u64 handle count
 *     64  u64 hold start (CLOCK_MONOTONIC ms) 72  u32 INIT request length  76  u32 old pid
 *     80  u32 INIT reply length               84  12 spare bytes (0)
 *     body
 *       the kernel's FUSE_INIT request as read (header + fuse_init_in), INIT length bytes
 *       the reply the kernel got (fuse_init_out as sent), INIT reply length bytes
 *       the update id: u16 length, bytes
 *       node count nodes:
 *         u64 ino, u64 parent, u64 nlookup, u64 size, u64 fetched_ms, i64 mtime,
 *         u16 key length, u16 name length, u8 storage class, u8 flags (1 dir, 2 named,
 *         4 restored), u16 etag length, u16 open-etag length, u16 spare (0),
 *         key, etag, open etag
 *       handle count handles:
 *         u64 handle number, u64 ino, u64 parent, u64 size, u8 flags (1 dir, 2 stale),
 *         u8 spare (0), u16 key length, u16 etag length, u16 spare (0), key, etag
 *
 * Every length is checked against its limit and against the bytes left before anything is
 * read; a blob that fails a check is refused as a whole with a one-line reason. */

#define EFC_HO_MAGIC        "EFCHOVR"
#define EFC_HO_VERSION      1
#define EFC_HO_HEADER_SIZE  96
#define EFC_HO_MAX_INIT     1024          /* the INIT request: 40 + 64 bytes today */
#define EFC_HO_MIN_INIT     (40 + 16)     /* in header + the fuse_init_in fields libfuse reads */
#define EFC_HO_MAX_REPLY    256           /* the INIT reply: 64 bytes today */
#define EFC_HO_MAX_ID       64            /* update ids */
#define EFC_HO_MAX_NODES    (1ull << 28)  /* inodes the kernel may hold */
#define EFC_HO_MAX_HANDLES  (1ull << 22)  /* open files and directories (fs.c's table size) */
#define EFC_HO_MAX_BYTES    (64ull << 30) /* the whole blob */
#define EFC_HO_NODE_FIXED   60
#define EFC_HO_HANDLE_FIXED 40

/* An open file or directory, as fs.c exports and imports it. */
struct efc_fh_record {
    uint64_t num; /* the handle number the kernel holds (fi->fh) */
    uint64_t ino;
    uint64_t parent; /* directories: the parent's inode ("..") */
    uint64_t size;   /* files: the size learnt at open */
    bool is_dir;
    bool stale;       /* files: a newer open saw another ETag (reads answer ESTALE) */
    const char *key;  /* NUL-terminated */
    const char *etag; /* files: the ETag learnt at open, "" none */
};

struct efc_ho_header {
    int64_t mount_time;
    uint64_t next_seq;
    uint64_t nodes, handles;
    uint64_t hold_start_ms;
    uint32_t old_pid;
    const uint8_t *init; /* INIT request bytes */
    uint32_t init_len;
    const uint8_t *reply; /* the INIT reply's body as the kernel got it (0 bytes: unknown) */
    uint32_t reply_len;
    char id[EFC_HO_MAX_ID + 1];
};

/* Encoding: begin (H's next_seq, nodes and handles are ignored), then every node, then every
 * handle, then end, which patches the next inode sequence, the counts, the length and the
 * checksum into the header. B's maximum bounds the blob. Each returns 0, -E2BIG or -ENOMEM;
 * -EINVAL for a record past a limit. */
int efc_ho_begin(struct buf *b, const struct efc_ho_header *h);
int efc_ho_put_node(struct buf *b, const struct efc_ns_record *r);
int efc_ho_put_handle(struct buf *b, const struct efc_fh_record *r);
int efc_ho_end(struct buf *b, uint64_t next_seq, uint64_t nodes, uint64_t handles);
/* The checksum of a blob of LEN bytes (header and body, the checksum field read as zero); the
 * header stores it at offset 24. */
uint64_t efc_ho_checksum(const void *blob, size_t len);

/* Callbacks of efc_ho_parse; any may be NULL. A non-zero return stops the parse and is
 * returned. Records' strings point into scratch space valid during the call only. */
struct efc_ho_visitor {
    int (*header)(void *arg, const struct efc_ho_header *h);
    int (*node)(void *arg, const struct efc_ns_record *r);
    int (*handle)(void *arg, const struct efc_fh_record *r);
};

/* Checks the whole blob (magic, version, sizes, checksum, every record's lengths and fields),
 * then, if V is not NULL, walks it again calling V. Returns 0, -EINVAL (or -EBADMSG for a
 * checksum mismatch) with a one-line reason in ERR, or what a callback returned. */
int efc_ho_parse(const void *blob, size_t len, const struct efc_ho_visitor *v, void *arg, char *err,
                 size_t errlen);

/* ---- update requests -------------------------------------------------------------------------
 * The tool's <state>.pending.json:
 *   {"version": 1, "id": "<1..64 of [A-Za-z0-9._-]>", "action": "update"|"rollback",
 *    "mode": "merge"|"replace", "options": {"g_<name>": "<value>" | <integer> | <boolean>, ...}}
 * merge: the options change the running set; replace: the running set becomes the defaults plus
 * these (a rollback names every option the previous state had set). */

#define EFC_UPDATE_MAX_BYTES   (256u << 10)
#define EFC_UPDATE_MAX_OPTIONS 256

struct opt_set;

struct efc_update_req {
    char id[EFC_HO_MAX_ID + 1];
    char action[16];
    bool replace;
};

/* Parses TEXT (LEN bytes) and builds the option set it asks for from CUR (the running set) into
 * OUT (which the caller releases with opt_release). Checks every name, value and relation
 * (opt_check), and refuses a change of an option the option table does not mark runtime.
 * Returns 0, or -EINVAL with a one-line reason in ERR; REQ->id is filled as soon as it is
 * known (so an error can be answered to the right request). */
int efc_update_parse(const char *text, size_t len, const struct opt_set *cur,
                     struct efc_update_req *req, struct opt_set *out, char *err, size_t errlen);

/* ---- the daemon's side (handover.c) ---------------------------------------------------------- */

/* Blocks the trigger signal (SIGUSR2) in the calling thread; call first thing in main(), so every
 * thread started later inherits the mask and only the handover thread receives it. */
void efc_handover_block_signals(void);

/* Sets up E->handover (before the FUSE channel is installed). ADOPT_FD >= 0: this process takes
 * over from another one: the blob is read from ADOPT_FD (and checked as a whole). Returns 0 or
 * -errno with a reason in ERR. */
int efc_handover_setup(struct efc *e, int adopt_fd, char *err, size_t errlen);
/* Taking over: restores the inode table (after efc_fs_setup). */
int efc_handover_restore_ns(struct efc *e, char *err, size_t errlen);
/* Taking over: makes libfuse process the saved INIT request, its reply swallowed (after
 * efc_fuseio_install). */
int efc_handover_replay_init(struct efc *e, char *err, size_t errlen);
/* Taking over: restores the open handles (after efc_fs_start). */
int efc_handover_restore_handles(struct efc *e, char *err, size_t errlen);
/* Starts the thread that waits for SIGUSR2 (in the process that serves, before the session
 * loop). When taking over, that thread first waits for the old process to exit and then writes
 * the state file. Returns 0 or -errno. */
int efc_handover_start(struct efc *e);
void efc_handover_free(struct efc *e);

/* The state file's "update" section: the last update's id, "ok" or "error", a message, and the
 * time requests were held. Returns false when there is none. */
struct efc_update_result {
    char id[EFC_HO_MAX_ID + 1];
    bool ok;
    char message[512];
    uint64_t pause_ms;
    long previous_pid;
    int64_t time;
};
bool efc_handover_result(const struct efc *e, struct efc_update_result *r);

/* fuseio.c's hooks. efc_handover_read wraps read(2) of /dev/fuse: while a handover holds
 * requests it parks the calling worker instead (and wakes it out of a read already blocked).
 * efc_handover_note_init keeps the kernel's INIT request, efc_handover_note_init_reply the reply
 * it got (IOV as written). efc_handover_swallow tells whether a reply (IOV, COUNT) is the one to
 * the replayed INIT, which is not to be written. */
struct iovec;
ssize_t efc_handover_read(struct efc_handover *h, int fd, void *buf, size_t len);
void efc_handover_note_init(struct efc_handover *h, const void *buf, size_t len);
void efc_handover_note_init_reply(struct efc_handover *h, const struct iovec *iov, int count);
bool efc_handover_swallow(struct efc_handover *h, const struct iovec *iov, int count);

/* ---- fs.c's side ------------------------------------------------------------------------------
 */

/* Calls FN for every open handle (under fh_lock: FN must not call into fs.c). */
int efc_fs_export_handles(struct efc *e, int (*fn)(void *arg, const struct efc_fh_record *r),
                          void *arg);
/* Restores one handle under its number (after efc_fs_start). Returns 0, -EINVAL (a number out of
 * range or already in use), or -ENOMEM. */
int efc_fs_import_handle(struct efc *e, const struct efc_fh_record *r);
/* Ends an import: the numbers not restored become free. */
void efc_fs_import_done(struct efc *e);
/* Stops the read path and the block cache (queued disk writes are flushed) for a handover:
 * every file's reader is closed; handles, namespace and listings stay. No FUSE request may be
 * running. */
void efc_fs_suspend(struct efc *e);
/* Undoes efc_fs_suspend when the handover failed. Returns 0 or -errno with a reason in ERR. */
int efc_fs_resume(struct efc *e, char *err, size_t errlen);

#endif
