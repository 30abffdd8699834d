/* Mutual TLS 1.3 contexts and the identity checks on a finished handshake. */
#include "tls.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
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
