/* p2p/wire_i.h - the frames efc nodes exchange over TCP (see wire.c for the layout and the
 * protocol): encoders, and a decoder for each frame kind with a hard limit on every length and
 * count it reads. Pure functions of their bytes: the client, the server, the fuzz target and the
 * unit tests all use these and nothing else to read or write the wire.
 */
#ifndef EFC_P2P_WIRE_I_H
#define EFC_P2P_WIRE_I_H

#include <stddef.h>
#include <stdint.h>

#define P2P_MAGIC   0x50434645u /* "EFCP" little-endian */
#define P2P_VERSION 1
#define P2P_HDR     32 /* bytes of the frame header */

/* Hard limits of the decoder: a frame that claims more is refused before anything is read. */
#define P2P_MAX_META       (16u << 10) /* typed fields of one frame, CRC list included */
#define P2P_MAX_DATA       (4u << 20)  /* bulk bytes of one DATA frame */
#define P2P_MAX_PAGES      1024        /* page CRCs in one DATA frame */
#define P2P_MAX_BLOCKS     64          /* blocks one GET may ask for */
#define P2P_MAX_NAME       200         /* a node's name "<id>:<ip>:<port>" */
#define P2P_MAX_NS         511         /* as CACHE_MAX_NS */
#define P2P_MAX_KEY        1023        /* as CACHE_MAX_KEY */
#define P2P_MAX_ETAG       127         /* as CACHE_MAX_ETAG */
#define P2P_MAX_MSG        256         /* an ERROR frame's text */
#define P2P_NONCE          32
#define P2P_PROOF          32 /* HMAC-SHA256 */
#define P2P_MIN_PAGE       4096
#define P2P_MAX_BLOCK_SIZE (64u << 20)

enum p2p_type {
    P2P_HELLO = 1,    /* client -> server, first frame of a connection */
    P2P_HELLO_OK = 2, /* server -> client */
    P2P_AUTH = 3,     /* client -> server, when both hold a key */
    P2P_GET = 4,      /* client -> server: blocks of one object version */
    P2P_DATA = 5,     /* server -> client: (part of) one block, or its failure */
    P2P_ERROR = 6,    /* either way: the connection (request id 0) or a request failed */
};

/* Frame flags. */
#define P2P_F_LAST 1u /* DATA: the last frame of its request */

/* Roles (g_tier_DadiRootClientType). */
enum p2p_role {
    P2P_ROLE_ROOT_AGENT = 0, /* serves and reads through the cluster */
    P2P_ROLE_ROOT = 1,       /* serves, reads from the origin itself */
    P2P_ROLE_AGENT = 2,      /* reads through the cluster, serves nothing */
};

/* Status of a block in a DATA frame (wire values; never errno, which differs between systems). */
enum p2p_status {
    P2P_OK = 0,
    P2P_STALE = 1,         /* the object no longer has that ETag at the origin */
    P2P_NOT_FOUND = 2,     /* no such object at the origin */
    P2P_OTHER_BUCKET = 3,  /* this node does not mount that bucket */
    P2P_BUSY = 4,          /* too many requests: ask the origin yourself */
    P2P_ORIGIN_FAILED = 5, /* the origin did not answer this node */
    P2P_BAD_REQUEST = 6,
    P2P_NOT_SERVING = 7, /* an agent: it holds nothing */
    P2P_DENIED = 8,      /* the origin refused (archived object, no permission) */
    P2P_HOT = 9,         /* the owner's fan-out of this block is full: ask your parent (RELAY) */
    P2P_PENDING = 10,    /* not an answer: the server still works on it (the deadline restarts) */
    P2P_STATUS_MAX = 10,
};

struct p2p_hdr {
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint64_t rid; /* request id (0: the connection) */
    uint32_t meta_len;
    uint32_t data_len;
    uint64_t crc; /* CRC64 of header bytes 0..23 and the meta */
};

/* HELLO and HELLO_OK. */
struct p2p_hello {
    uint8_t role;        /* enum p2p_role */
    uint8_t auth;        /* 1: the sender holds a key (and HELLO_OK's proof is set) */
    uint32_t block_size; /* g_tier_BlockSize, for a warning when nodes differ */
    uint64_t members;    /* the sender's membership hash */
    uint8_t nonce[P2P_NONCE];
    uint8_t proof[P2P_PROOF];    /* HELLO_OK: the server's proof of the key (zero without) */
    char name[P2P_MAX_NAME + 1]; /* the sender's rootlist entry, "" when not in it */
};

/* GET: blocks [first, first + count) of one object version whose bit (1 << (i)) is in mask,
 * each whole, or, when count is 1, bytes [off, off + len) of it (page-aligned, len 0: to the
 * block's end). */
#define P2P_GET_FILL  1u /* warm-up: make the blocks present at the owner, send no data */
#define P2P_GET_RELAY 2u /* a hot block, asked of the requester's parent in its fan-out tree */
struct p2p_get {
    uint64_t obj_size;
    uint64_t first;
    uint64_t mask;
    uint32_t count;
    uint32_t off, len;
    uint32_t block_size, page_size;
    uint32_t flags; /* P2P_GET_* */
    uint64_t id[2]; /* the requester's identity of block first (pages' CRCs bind to the
                       identity of their own block) */
    const char *ns; /* the bucket's name space, "<bucket>.<host>" */
    const char *key;
    const char *etag;
    uint16_t ns_len, key_len, etag_len;
};

/* DATA: bytes [off, off + data_len) of block index, page-aligned, with one CRC per page (the
 * last page may be short), or a failure status with no data. */
struct p2p_data {
    uint64_t index;
    uint32_t off;
    uint16_t status; /* enum p2p_status */
    uint8_t hit;     /* 1: from the server's memory or disk; 0: it fetched from the origin */
    uint32_t page_size;
    uint32_t npages;
    const uint8_t *crcs; /* npages x 8 bytes, little-endian, inside the decoded meta */
};

/* ---- encoding ------------------------------------------------------------------------------ */

/* Writes a whole frame's header and meta for TYPE into OUT (which holds P2P_HDR +
 * P2P_MAX_META bytes), DATA_LEN announcing the bulk bytes the caller sends after it. Returns
 * the bytes written (header + meta). The header's CRC covers what was written. */
size_t p2p_enc_hello(uint8_t *out, enum p2p_type type, uint64_t rid, const struct p2p_hello *h);
size_t p2p_enc_auth(uint8_t *out, const uint8_t proof[P2P_PROOF]);
size_t p2p_enc_get(uint8_t *out, uint64_t rid, const struct p2p_get *g);
/* CRCS: npages x uint64 in host order. */
size_t p2p_enc_data(uint8_t *out, uint64_t rid, uint16_t flags, const struct p2p_data *d,
                    const uint64_t *crcs, uint32_t data_len);
size_t p2p_enc_error(uint8_t *out, uint64_t rid, int status, const char *msg);

/* ---- decoding ------------------------------------------------------------------------------ */

/* Parses the P2P_HDR bytes at IN. Returns 0, or -EPROTO (not efc's magic), -EPROTONOSUPPORT (a
 * version this node does not speak: h->version says which), -EMSGSIZE (a length over its
 * limit), -EBADMSG (an unknown type). The CRC is checked by p2p_check_crc once the meta is in. */
int p2p_dec_hdr(const uint8_t *in, struct p2p_hdr *h);
/* Whether H's CRC matches the header bytes HDR and the meta. 0 or -EBADMSG. */
int p2p_check_crc(const uint8_t *hdr, const uint8_t *meta, const struct p2p_hdr *h);

/* Each parses a frame's META (LEN bytes) of its kind. 0 or -EBADMSG (malformed, or a length or
 * count over its limit). Pointers in the result point into META. */
int p2p_dec_hello(const uint8_t *meta, size_t len, struct p2p_hello *h);
int p2p_dec_auth(const uint8_t *meta, size_t len, uint8_t proof[P2P_PROOF]);
int p2p_dec_get(const uint8_t *meta, size_t len, struct p2p_get *g);
/* DATA_LEN: the header's data length, checked against the pages announced. */
int p2p_dec_data(const uint8_t *meta, size_t len, uint32_t data_len, struct p2p_data *d);
int p2p_dec_error(const uint8_t *meta, size_t len, int *status, char *msg, size_t msglen);

/* "ok", "stale", ... for logs and metrics. */
const char *p2p_status_name(int status);

#endif
