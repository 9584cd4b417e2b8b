/* efc/ns_i.h - the namespace: inode numbers for the names the kernel knows about.
 *
 * Every name the kernel has been told about (by lookup or readdirplus) is a node with an inode
 * number, a lookup count (nlookup) and the object's attributes as last learnt. A node lives while
 * the kernel holds it (nlookup > 0) and is freed by forget; the root (FUSE_ROOT_ID) lives as long
 * as the namespace. Inode numbers come from a 64-bit counter and are never reused, so a number the
 * kernel still holds can never come to mean another object. A name keeps its inode number while
 * it is referenced; a name that changes type (file to directory or back) gets a new node and the
 * old one lingers, unnamed, until the kernel forgets it.
 *
 * Nothing here does I/O and no call hands out a pointer into the table: callers get copies
 * (struct efc_node_info), so a node may be forgotten at any time without dangling references.
 * All calls are thread-safe.
 */
#ifndef EFC_NS_I_H
#define EFC_NS_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "oss/oss.h"

#define EFC_ROOT_INO 1

struct efc_ns;

/* What is known about an object (files) or a directory. */
struct efc_attr {
    uint64_t size;
    time_t mtime;
    enum oss_storage_class sc;
    bool restored; /* an Archive-class object with a finished restore */
    uint64_t fetched_ms;             /* time_mono_ms() when the origin said so; 0: never asked */
    char etag[OSS_MAX_ETAG_LEN + 1]; /* "" for directories */
};

/* A copy of one node. */
struct efc_node_info {
    uint64_t ino;
    uint64_t parent; /* the root's parent is itself */
    bool is_dir;
    struct efc_attr attr;
    /* Full object key: "<prefix><path>" for a file, "<prefix><path>/" for a directory, the
       mount's prefix ("" or ending in '/') for the root. */
    char key[OSS_MAX_KEY_LEN + 1];
    size_t keylen;
};

/* ROOT_KEY is the mount's prefix: "" or a key prefix ending in '/'. Returns 0 or -errno. */
int efc_ns_new(const char *root_key, struct efc_ns **out);
void efc_ns_free(struct efc_ns *ns);

/* Copies node INO into OUT. Returns 0, or -ENOENT if the kernel holds no such inode. */
int efc_ns_get(struct efc_ns *ns, uint64_t ino, struct efc_node_info *out);

/* The inode number of (PARENT, NAME) if it has a node, without counting a lookup; 0 if none. */
uint64_t efc_ns_find(struct efc_ns *ns, uint64_t parent, const char *name, size_t namelen);

/* Records a successful lookup of (PARENT, NAME): finds or creates the node, adds one to its
 * lookup count, and stores ATTR if it is at least as recent as what the node holds. KEY is the
 * node's full key (as in struct efc_node_info). On return *INO is the node's number and, if OUT
 * is not NULL, *OUT its attributes (ATTR, or newer ones already held). A name that was a file and
 * is now a directory (or the reverse) gets a new node. Returns 0 or -ENOMEM. */
int efc_ns_add(struct efc_ns *ns, uint64_t parent, const char *name, size_t namelen,
               const char *key, bool is_dir, const struct efc_attr *attr, uint64_t *ino,
               struct efc_attr *out);

/* The kernel drops NLOOKUP references to INO; the node goes when none are left. Returns true
 * when that freed a directory (whose cached listing may then go too). */
bool efc_ns_forget(struct efc_ns *ns, uint64_t ino, uint64_t nlookup);

/* Stores ATTR on INO if it is at least as recent as what the node holds. Returns 0 or -ENOENT. */
int efc_ns_set_attr(struct efc_ns *ns, uint64_t ino, const struct efc_attr *attr);

/* open() revalidated INO and found ATTR. Stores it, and tells whether the object is the version
 * whose pages the kernel may already cache (*SAME_VERSION: same ETag as at the last open) and
 * whether the attributes the kernel may hold changed (*CHANGED: size, mtime or ETag differ from
 * what the node held). Returns 0 or -ENOENT. */
int efc_ns_opened(struct efc_ns *ns, uint64_t ino, const struct efc_attr *attr, bool *same_version,
                  bool *changed);

struct efc_ns_stats {
    uint64_t nodes;   /* nodes alive, the root included */
    uint64_t created; /* nodes ever created */
    uint64_t freed;   /* nodes freed by forget */
};
void efc_ns_get_stats(struct efc_ns *ns, struct efc_ns_stats *st);

/* The lookup count of INO (for tests); 0 if unknown. */
uint64_t efc_ns_nlookup(struct efc_ns *ns, uint64_t ino);

/* ---- runtime update (handover.c): the table as records -------------------------------------
 * The daemon that hands the mount over exports every node; the one that takes it over imports
 * them into a fresh table before serving, so every inode number the kernel holds keeps its
 * meaning (object, name, lookup count). */

/* Everything the table holds of one node. */
struct efc_ns_record {
    uint64_t ino;
    uint64_t parent;
    uint64_t nlookup;
    bool is_dir;
    bool named; /* reachable by (parent, name): false for the root and for replaced nodes */
    /* The kernel's lookup count was not written down (a node recovered from the crash journal,
       journal_i.h): NLOOKUP is 1, and the kernel's next forget of the node, whatever its count,
       ends it (the kernel forgets an inode's whole count at once). */
    bool lookups_unknown;
    struct efc_attr attr;
    char open_etag[OSS_MAX_ETAG_LEN + 1]; /* the ETag of the last open; "" none */
    const char *key;                      /* KEYLEN bytes, NUL-terminated */
    size_t keylen;
    size_t namelen; /* the name is the key's tail (before a directory's '/'); 0 for the root */
};

typedef int (*efc_ns_record_fn)(void *arg, const struct efc_ns_record *r);

/* Calls FN for every node, each shard's lock held while its nodes are visited (FN must not call
 * into NS). Stops at FN's first non-zero return and returns it; else returns 0. *NEXT_SEQ
 * receives the sequence number the next new node would get. */
int efc_ns_export(struct efc_ns *ns, efc_ns_record_fn fn, void *arg, uint64_t *next_seq);

/* Restores R, as efc_ns_export gave it, into a table: the same inode number, parent, lookup count,
 * attributes and name. The root's record is only checked (same key as this table's root).
 * Returns 0, -EINVAL for a record that cannot be (bad lengths, a name with '/', an inode number
 * of the wrong shard, a number or a name already present), or -ENOMEM. */
int efc_ns_import(struct efc_ns *ns, const struct efc_ns_record *r);

/* Ends an import: new inode numbers continue from sequence NEXT_SEQ, which must be above every
 * imported one. Returns 0 or -EINVAL. */
int efc_ns_import_done(struct efc_ns *ns, uint64_t next_seq);

/* The sequence a table whose highest inode number is MAX_INO goes on from (for a table rebuilt
 * from the crash journal, which records inode numbers, not the sequence). */
uint64_t efc_ns_seq_after(uint64_t max_ino);

/* ---- the crash journal (journal_i.h) --------------------------------------------------------
 * From this call on, every node created, unnamed or freed is written to J (NULL: none), under the
 * node's shard lock, so the journal's order is the table's. */
struct efc_journal;
void efc_ns_set_journal(struct efc_ns *ns, struct efc_journal *j);

#endif
