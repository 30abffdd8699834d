/* Mutual TLS 1.3 for peer links: one context per set of certificates, both
 * for dialing and accepting. A peer is accepted only if its chain ends at
 * the cluster CA and its certificate names the peer it claims to be. */
#ifndef CS_TLS_H
#define CS_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

struct cs_tls;

/* Loads the CA, certificate and key. On failure returns a negative errno
 * and writes a sentence naming the file and the problem into err. */
int cs_tls_new(const char *ca, const char *cert, const char *key, struct cs_tls **out, char *err,
               size_t errlen);
void cs_tls_free(struct cs_tls *tls);
/* A new SSL for one connection; it keeps the context alive by itself, so
 * the cs_tls may be replaced (SIGHUP) while connections run. */
SSL *cs_tls_ssl(struct cs_tls *tls);

/* After the handshake: returns 0 if the peer's certificate names NAME
 * (subjectAltName DNS, or CN when there is no DNS name). Otherwise -EACCES
 * with a reason like "certificate names gamma, peer claims beta". */
int cs_tls_check_name(SSL *ssl, const char *name, char *reason, size_t len);
/* Why a handshake failed, as a sentence ("certificate not signed by cluster
 * CA", "peer refused our certificate: unknown ca", ...). err is
 * the OpenSSL error code the bufferevent saw, 0 if none. */
void cs_tls_failure(SSL *ssl, unsigned long err, char *reason, size_t len);

/* What --check-config looks for before the daemon starts, with every
 * problem found (not only the first) handed to REPORT as one sentence that
 * names the file and the reason: a file that cannot be read or parsed, a
 * certificate expired or not yet valid, CERT not signed by CA, CERT not
 * naming NODE, KEY not matching CERT. Returns the number of problems. */
int cs_tls_check_files(const char *ca, const char *cert, const char *key, const char *node,
                       void (*report)(void *arg, const char *problem), void *arg);

#endif
