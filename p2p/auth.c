/* p2p/auth.c - peer authentication (g_tier_DadiP2PKeyFile): the shared key and the proofs of the
 * HELLO/HELLO_OK/AUTH handshake (wire.c).
 *
 * Each side sends a fresh random nonce. The server proves it holds the key with
 * HMAC-SHA256(key, "efc-p2p-1 server" || client nonce || server nonce), the client with
 * HMAC-SHA256(key, "efc-p2p-1 client" || server nonce || client nonce): the labels and the order
 * keep one side's proof from being replayed as the other's, and the nonces keep an old proof
 * from being replayed at all. Neither the key nor a hash of it alone crosses the wire. The key
 * file holds the secret (surrounding whitespace ignored), at least 16 bytes, readable by its
 * owner only: a key others can read is refused, as ssh refuses such a private key.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "p2p/p2p_i.h"

#define KEY_MIN 16

int p2p_key_load(struct p2p *p, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "g_tier_DadiP2PKeyFile: cannot open '%s': %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, errlen, "g_tier_DadiP2PKeyFile: '%s' is not a regular file", path);
        return -EINVAL;
    }
    if (st.st_mode & 077) {
        close(fd);
        snprintf(err, errlen,
                 "g_tier_DadiP2PKeyFile: '%s' may be read by others (mode %03o): chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        return -EPERM;
    }
    uint8_t buf[sizeof(p->key) + 64];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0) {
        int e = errno;
        snprintf(err, errlen, "g_tier_DadiP2PKeyFile: cannot read '%s': %s", path, strerror(e));
        return -e;
    }
    size_t a = 0, b = (size_t)n;
    while (a < b && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r' || buf[a] == '\n'))
        a++;
    while (b > a &&
           (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r' || buf[b - 1] == '\n'))
        b--;
    if (b - a < KEY_MIN || b - a > sizeof(p->key)) {
        OPENSSL_cleanse(buf, sizeof(buf));
        snprintf(err, errlen, "g_tier_DadiP2PKeyFile: '%s' must hold a key of %d to %zu bytes",
                 path, KEY_MIN, sizeof(p->key));
        return -EINVAL;
    }
    memcpy(p->key, buf + a, b - a);
    p->keylen = b - a;
    p->auth = true;
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

void p2p_nonce(uint8_t nonce[P2P_NONCE])
{
    if (RAND_bytes(nonce, P2P_NONCE) != 1) {
        /* RAND_bytes does not fail on Linux once seeded; keep the nonce unpredictable anyway */
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, nonce, P2P_NONCE) != P2P_NONCE)
            abort();
        close(fd);
    }
}

void p2p_proof(const struct p2p *p, bool server, const uint8_t nc[P2P_NONCE],
               const uint8_t ns[P2P_NONCE], uint8_t out[P2P_PROOF])
{
    static const char ls[] = "efc-p2p-1 server", lc[] = "efc-p2p-1 client";
    uint8_t msg[sizeof(ls) + 2 * P2P_NONCE];
    unsigned len = 0;
    memcpy(msg, server ? ls : lc, sizeof(ls));
    memcpy(msg + sizeof(ls), server ? nc : ns, P2P_NONCE);
    memcpy(msg + sizeof(ls) + P2P_NONCE, server ? ns : nc, P2P_NONCE);
    if (HMAC(EVP_sha256(), p->key, (int)p->keylen, msg, sizeof(msg), out, &len) == NULL ||
        len != P2P_PROOF)
        p2p_nonce(out); /* random: matches no proof, not even another failure's */
}

bool p2p_proof_ok(const uint8_t a[P2P_PROOF], const uint8_t b[P2P_PROOF])
{
    return CRYPTO_memcmp(a, b, P2P_PROOF) == 0;
}
