/* A cluster CA and per-host certificates with OpenSSL's C API. */
#include "certs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define CA_SUBJECT "checksync cluster CA"
/* Certificates start a few minutes in the past, so hosts whose clocks lag
 * the one that made them accept them at once. */
#define BACKDATE_SECONDS 300

struct paths {
	char key[PATH_MAX];
	char cert[PATH_MAX];
};

static int set_paths(struct paths *p, const char *dir, const char *base, char *err, size_t errlen)
{
	if ((size_t)snprintf(p->key, sizeof(p->key), "%s/%s.key", dir, base) >= sizeof(p->key) ||
	    (size_t)snprintf(p->cert, sizeof(p->cert), "%s/%s.pem", dir, base) >= sizeof(p->cert)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

static const char *ossl_reason(void)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unknown OpenSSL error";
}

/* Writes one PEM object to a new file of MODE; an existing file is never
 * replaced (a CA key overwritten by mistake orphans every certificate). */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert, char *err,
                     size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "%s: cannot create it: %s", path, strerror(e));
		return -e;
	}
	/* The umask may have taken bits away; a certificate stays readable. */
	(void)fchmod(fd, mode);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		return -ENOMEM;
	}
	ok =
	    key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
	ok = fflush(f) == 0 && fsync(fd) == 0 && ok;
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		snprintf(err, errlen, "%s: cannot write it", path);
		return -EIO;
	}
	return 0;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = e && X509_add_ext(x, e, -1);

	X509_EXTENSION_free(e);
	return ok ? 0 : -EINVAL;
}

/* A random positive 127-bit serial, as RFC 5280 recommends (unpredictable). */
static int set_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int ok = bn && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
	         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));

	BN_free(bn);
	return ok ? 0 : -EINVAL;
}

static int set_extensions(X509 *x, X509 *issuer, bool ca, const char *host)
{
	X509V3_CTX ctx;
	char san[128];
	int r;

	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	r = add_ext(x, &ctx, NID_subject_key_identifier, "hash");
	if (ca)
		return r ?: add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ?:
		       add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
	/* Every link is mutual: a host is a TLS server and a client. */
	snprintf(san, sizeof(san), "DNS:%s", host);
	return r ?: add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") ?:
	       add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ?:
	       add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ?:
	       add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") ?:
	       add_ext(x, &ctx, NID_subject_alt_name, san);
}

/* The certificate for KEY named CN, signed by ISSUER (NULL: self-signed by
 * KEY, a CA). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, unsigned days, X509 *issuer,
                       EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
	bool ok = name && X509_set_version(x, X509_VERSION_3) && set_serial(x) == 0 &&
	          X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS) &&
	          X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) &&
	          X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
	                                     -1, -1, 0) &&
	          X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) &&
	          X509_set_pubkey(x, key);

	/* A certificate outliving its CA would only fail later, less clearly. */
	if (ok && issuer &&
	    ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuer)) > 0)
		ok = X509_set1_notAfter(x, X509_get0_notAfter(issuer));
	ok = ok && set_extensions(x, issuer, !issuer, cn) == 0 &&
	     X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Writes the key (0600) and then the certificate (0644); if the
 * certificate cannot be written, the key goes too. */
static int write_pair(const struct paths *p, EVP_PKEY *key, X509 *cert, char *err, size_t errlen)
{
	int r = write_pem(p->key, 0600, key, NULL, err, errlen);

	if (r == 0) {
		r = write_pem(p->cert, 0644, NULL, cert, err, errlen);
		if (r < 0)
			unlink(p->key);
	}
	return r;
}

static int new_pair(const struct paths *p, const char *cn, unsigned days, X509 *issuer,
                    EVP_PKEY *issuer_key, char *err, size_t errlen)
{
	EVP_PKEY *key;
	X509 *cert = NULL;
	int r = -EINVAL;

	/* Checked first, so nothing is generated for a file that is there. */
	if (access(p->key, F_OK) == 0 || access(p->cert, F_OK) == 0) {
		snprintf(err, errlen, "%s: already exists (remove it to make a new one)",
		         access(p->key, F_OK) == 0 ? p->key : p->cert);
		return -EEXIST;
	}
	key = EVP_EC_gen("P-256");
	if (key)
		cert = make_cert(key, cn, days, issuer, issuer_key);
	if (!cert)
		snprintf(err, errlen, "cannot make the certificate for %s: %s", cn, ossl_reason());
	else
		r = write_pair(p, key, cert, err, errlen);
	X509_free(cert);
	EVP_PKEY_free(key);
	return r;
}

/* mkdir -p, 0755 */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = strchr(path + 1, '/');; p = strchr(p + 1, '/')) {
		if (p)
			*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (!p)
			return 0;
		*p = '/';
	}
}

int cs_certs_init(const char *dir, unsigned days, char *err, size_t errlen)
{
	struct paths p;
	int r = set_paths(&p, dir, "ca", err, errlen);

	if (r < 0)
		return r;
	r = make_dirs(dir);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot create it: %s", dir, strerror(-r));
		return r;
	}
	return new_pair(&p, CA_SUBJECT, days, NULL, NULL, err, errlen);
}

static int read_ca(const struct paths *ca, X509 **ret_cert, EVP_PKEY **ret_key, char *err,
                   size_t errlen)
{
	FILE *f = fopen(ca->cert, "re");

	*ret_cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (!*ret_cert) {
		snprintf(err, errlen, "CA certificate %s: %s (run `checksyncctl certs init` first)",
		         ca->cert, f ? "no PEM certificate in it" : strerror(errno));
		return -EINVAL;
	}
	f = fopen(ca->key, "re");
	*ret_key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (!*ret_key || X509_check_private_key(*ret_cert, *ret_key) != 1) {
		snprintf(err, errlen, "CA key %s: %s", ca->key,
		         !f          ? strerror(errno)
		         : !*ret_key ? "no PEM private key in it"
		                     : "does not match the CA certificate");
		ERR_clear_error();
		X509_free(*ret_cert);
		EVP_PKEY_free(*ret_key);
		return -EINVAL;
	}
	return 0;
}

int cs_certs_issue(const char *dir, const char *host, unsigned days, char *err, size_t errlen)
{
	struct paths ca, p;
	X509 *ca_cert;
	EVP_PKEY *ca_key;
	int r = set_paths(&ca, dir, "ca", err, errlen) ?: set_paths(&p, dir, host, err, errlen);

	if (r < 0)
		return r;
	r = read_ca(&ca, &ca_cert, &ca_key, err, errlen);
	if (r < 0)
		return r;
	r = new_pair(&p, host, days, ca_cert, ca_key, err, errlen);
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	return r;
}
