/* efc/hoblob_i.h - the blob a daemon hands its mount to a new process with (handover_i.h has the
 * sequence): its layout, and an encoder and a checking decoder (hoblob.c).
 */
#ifndef EFC_HOBLOB_I_H
#define EFC_HOBLOB_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "efc/ns_i.h"
#include "efc/update_i.h"
#include "util/buf.h"

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
 *         4 restored, 8 lookup count unknown), u16 etag length, u16 open-etag length, u16 spare (0),
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
#define EFC_HO_MAX_INIT     1024      /* the INIT request: 40 + 64 bytes today */
#define EFC_HO_MIN_INIT     (40 + 16) /* in header + the fuse_init_in fields libfuse reads */
#define EFC_HO_MAX_REPLY    256       /* the INIT reply: 64 bytes today */
#define EFC_HO_MAX_ID       EFC_UPDATE_MAX_ID /* update ids */
#define EFC_HO_MAX_NODES    (1ull << 28)      /* inodes the kernel may hold */
#define EFC_HO_MAX_HANDLES  (1ull << 22)      /* open files and directories (fs.c's table size) */
#define EFC_HO_MAX_BYTES    (64ull << 30)     /* the whole blob */
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

#endif
