/* Mutual TLS 1.3 contexts and the identity checks on a finished handshake. */
#include "tls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct cs_tls {
	SSL_CTX *ctx;
};

static void openssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", r ? r : "unknown error");
	ERR_clear_error();
}

static int load_files(SSL_CTX *ctx, const char *ca, const char *cert, const char *key, char *err,
                      size_t errlen)
{
	char why[128];

	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		openssl_reason(why, sizeof(why));
		snprintf(err, errlen, "cannot load CA %s: %s", ca, why);
		return -EINVAL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		openssl_reason(why, sizeof(why));
		snprintf(err, errlen, "cannot load certificate %s: %s", cert, why);
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		openssl_reason(why, sizeof(why));
		snprintf(err, errlen, "cannot load key %s: %s", key, why);
		return -EINVAL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "key %s does not match certificate %s", key, cert);
		return -EINVAL;
	}
	return 0;
}

int cs_tls_new(const char *ca, const char *cert, const char *key, struct cs_tls **out, char *err,
               size_t errlen)
{
	struct cs_tls *tls = calloc(1, sizeof(*tls));
	int r;

	if (!tls)
		return -ENOMEM;
	tls->ctx = SSL_CTX_new(TLS_method());
	if (!tls->ctx) {
		free(tls);
		snprintf(err, errlen, "cannot create a TLS context");
		return -ENOMEM;
	}
	/* TLS 1.3 only; both sides present and verify certificates. */
	SSL_CTX_set_min_proto_version(tls->ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(tls->ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(tls->ctx, 4);
	SSL_CTX_set_session_cache_mode(tls->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(tls->ctx, 0);
	r = load_files(tls->ctx, ca, cert, key, err, errlen);
	if (r < 0) {
		cs_tls_free(tls);
		return r;
	}
	*out = tls;
	return 0;
}

void cs_tls_free(struct cs_tls *tls)
{
	if (!tls)
		return;
	SSL_CTX_free(tls->ctx);
	free(tls);
}

SSL *cs_tls_ssl(struct cs_tls *tls)
{
	return SSL_new(tls->ctx);
}

/* The name a certificate stands for: its first DNS subjectAltName, else
 * its CN. */
static void cert_name(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	X509_NAME *subj = X509_get_subject_name(cert);

	snprintf(buf, len, "(no name)");
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type == GEN_DNS) {
			snprintf(buf, len, "%.*s", ASN1_STRING_length(g->d.dNSName),
			         (const char *)ASN1_STRING_get0_data(g->d.dNSName));
			GENERAL_NAMES_free(names);
			return;
		}
	}
	GENERAL_NAMES_free(names);
	if (subj)
		X509_NAME_get_text_by_NID(subj, NID_commonName, buf, (int)len);
}

int cs_tls_check_name(SSL *ssl, const char *name, char *reason, size_t len)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	char has[128];
	int r;

	if (!cert) {
		snprintf(reason, len, "no peer certificate");
		return -EACCES;
	}
	/* DNS subjectAltNames if any, the CN otherwise; no wildcards. */
	r = X509_check_host(cert, name, strlen(name), X509_CHECK_FLAG_NO_WILDCARDS, NULL);
	if (r != 1) {
		cert_name(cert, has, sizeof(has));
		snprintf(reason, len, "certificate names %s, peer claims %s", has, name);
	}
	X509_free(cert);
	return r == 1 ? 0 : -EACCES;
}

static bool unknown_issuer(long v)
{
	return v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	       v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	       v == X509_V_ERR_CERT_SIGNATURE_FAILURE ||
	       v == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	       v == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
	       v == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
}

void cs_tls_failure(SSL *ssl, unsigned long err, char *reason, size_t len)
{
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	const char *r = err ? ERR_reason_error_string(err) : NULL;

	if (v != X509_V_OK && unknown_issuer(v))
		snprintf(reason, len, "certificate not signed by cluster CA (%s)",
		         X509_verify_cert_error_string(v));
	else if (v != X509_V_OK)
		snprintf(reason, len, "certificate rejected: %s", X509_verify_cert_error_string(v));
	else if (r && strstr(r, "alert"))
		snprintf(reason, len, "peer refused our certificate: %s", r);
	else if (r)
		snprintf(reason, len, "TLS handshake failed: %s", r);
	else
		snprintf(reason, len, "TLS handshake failed: connection closed");
}

struct check {
	void (*report)(void *arg, const char *problem);
	void *arg;
	int problems;
};

static void problem(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct check *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->report(c->arg, msg);
	c->problems++;
}

/* The certificates of a PEM file, first one first (a certificate file may
 * carry its intermediates after it). NULL with a problem reported if there
 * is none. */
static STACK_OF(X509) * read_certs(struct check *c, const char *what, const char *path)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	FILE *f = fopen(path, "re");
	X509 *x;

	if (!f) {
		problem(c, "%s %s: cannot read it: %s", what, path, strerror(errno));
		sk_X509_free(certs);
		return NULL;
	}
	while (certs && (x = PEM_read_X509(f, NULL, NULL, NULL)))
		if (!sk_X509_push(certs, x))
			X509_free(x);
	fclose(f);
	ERR_clear_error(); /* the read that ended the loop */
	if (sk_X509_num(certs) == 0) {
		problem(c, "%s %s: no PEM certificate in it", what, path);
		sk_X509_pop_free(certs, X509_free);
		return NULL;
	}
	return certs;
}

static void format_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "(unreadable time)");
}

static void check_dates(struct check *c, const char *what, const char *path, X509 *x)
{
	char when[64];

	if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
		format_time(X509_get0_notBefore(x), when, sizeof(when));
		problem(c, "%s %s: not valid yet: valid from %s (is this host's clock right?)",
		        what, path, when);
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		format_time(X509_get0_notAfter(x), when, sizeof(when));
		problem(c, "%s %s: expired on %s", what, path, when);
	}
}

/* Whether CERT's chain ends at CA's certificates. Dates are left to
 * check_dates, so an expired certificate is not also called foreign. */
static void check_signed(struct check *c, const char *ca, const char *cert, STACK_OF(X509) * certs)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *chain = sk_X509_dup(certs);
	X509 *leaf = sk_X509_shift(chain);
	char why[128];
	int v;

	if (!store || !ctx || !chain || X509_STORE_load_file(store, ca) != 1 ||
	    X509_STORE_CTX_init(ctx, store, leaf, chain) != 1) {
		openssl_reason(why, sizeof(why));
		problem(c, "CA %s: cannot load it: %s", ca, why);
		goto out;
	}
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
	if (X509_verify_cert(ctx) != 1) {
		v = X509_STORE_CTX_get_error(ctx);
		if (unknown_issuer(v))
			problem(c, "certificate %s: not signed by the CA in %s (%s)", cert, ca,
			        X509_verify_cert_error_string(v));
		else
			problem(c, "certificate %s: rejected against CA %s: %s", cert, ca,
			        X509_verify_cert_error_string(v));
	}
out:
	ERR_clear_error();
	sk_X509_free(chain);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
}

static void check_key(struct check *c, const char *cert, const char *key, X509 *leaf)
{
	FILE *f = fopen(key, "re");
	EVP_PKEY *pkey = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

	if (!f)
		problem(c, "key %s: cannot read it: %s", key, strerror(errno));
	else if (!pkey)
		problem(c, "key %s: no PEM private key in it", key);
	else if (X509_check_private_key(leaf, pkey) != 1)
		problem(c, "key %s: does not match certificate %s", key, cert);
	if (f)
		fclose(f);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
}

int cs_tls_check_files(const char *ca, const char *cert, const char *key, const char *node,
                       void (*report)(void *arg, const char *problem), void *arg)
{
	struct check c = {report, arg, 0};
	STACK_OF(X509) *cas = read_certs(&c, "CA", ca);
	STACK_OF(X509) *certs = read_certs(&c, "certificate", cert);
	X509 *leaf = certs ? sk_X509_value(certs, 0) : NULL;
	char has[128];

	for (int i = 0; cas && i < sk_X509_num(cas); i++)
		check_dates(&c, "CA", ca, sk_X509_value(cas, i));
	if (leaf) {
		check_dates(&c, "certificate", cert, leaf);
		if (cas)
			check_signed(&c, ca, cert, certs);
		if (X509_check_host(leaf, node, strlen(node), X509_CHECK_FLAG_NO_WILDCARDS, NULL) !=
		    1) {
			cert_name(leaf, has, sizeof(has));
			problem(&c, "certificate %s: names %s, but this node is %s", cert, has,
			        node);
		}
		check_key(&c, cert, key, leaf);
	}
	sk_X509_pop_free(cas, X509_free);
	sk_X509_pop_free(certs, X509_free);
	return c.problems;
}
