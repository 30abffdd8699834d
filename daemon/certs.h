/* The cluster's certificates, made for `checksyncctl certs`: a CA (EC P-256)
 * and, per host, a key and a certificate whose CN and DNS subjectAltName are
 * the host's node name, which is what checksyncd checks on every link
 * (tls.h). Keys are written 0600, certificates 0644; nothing is overwritten.
 *
 * Files in DIR: ca.key, ca.pem (init); HOST.key, HOST.pem (issue). */
#ifndef CS_CERTS_H
#define CS_CERTS_H

#include <stddef.h>

#define CS_CERTS_CA_DAYS   3650
#define CS_CERTS_HOST_DAYS 825

/* Creates DIR (0755) if needed, then the CA key and self-signed certificate,
 * valid for DAYS. On failure returns a negative errno and writes a sentence
 * naming the file and the problem into err; no half-written file is left. */
int cs_certs_init(const char *dir, unsigned days, char *err, size_t errlen);
/* Issues HOST's key and certificate, signed by DIR's CA, valid for DAYS
 * (never past the CA's own end). Same error convention. */
int cs_certs_issue(const char *dir, const char *host, unsigned days, char *err, size_t errlen);

#endif
