/* Small helpers usable in the freeze path and the writer child: no stdio,
 * no malloc, no locale. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

size_t cs_fmt_u64(char *buf, uint64_t v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = 0;
	return n;
}

size_t cs_fmt_hex(char *buf, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = digits[v & 15];
		v >>= 4;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = 0;
	return n;
}

size_t cs_strlcpy(char *dst, const char *src, size_t cap)
{
	size_t n = strlen(src);
	if (cap) {
		size_t c = n < cap - 1 ? n : cap - 1;
		memcpy(dst, src, c);
		dst[c] = 0;
	}
	return n;
}

size_t cs_strlcat(char *dst, const char *src, size_t cap)
{
	size_t d = strnlen(dst, cap);
	if (d == cap)
		return d + strlen(src);
	return d + cs_strlcpy(dst + d, src, cap - d);
}

/* Parses digits at *s in base 10 or 16, advancing *s. -EINVAL if none. */
int cs_parse_u64(const char **s, uint64_t *out, int base)
{
	const char *p = *s;
	uint64_t v = 0;
	int any = 0;
	for (;; p++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			break;
		v = v * (uint64_t)base + (uint64_t)d;
		any = 1;
	}
	if (!any)
		return -EINVAL;
	*s = p;
	*out = v;
	return 0;
}

/* Reads a whole (small, /proc) file into buf, NUL-terminated. */
ssize_t cs_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	while (len + 1 < cap) {
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = 0;
	return (ssize_t)len;
}

int64_t cs_clock_ns(int clockid)
{
	struct timespec ts;
	if (clock_gettime(clockid, &ts))
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* dst = a + b + c (any may be NULL), truncated to CS_ERR_MAX. */
int cs_set_err(char *dst, const char *a, const char *b, const char *c)
{
	dst[0] = 0;
	if (a)
		cs_strlcat(dst, a, CS_ERR_MAX);
	if (b)
		cs_strlcat(dst, b, CS_ERR_MAX);
	if (c)
		cs_strlcat(dst, c, CS_ERR_MAX);
	return 0;
}

/*
 * Copies application pages. Not memcpy: in a sanitizer build of the
 * program, memcpy is intercepted and checks shadow memory, and some of the
 * pages copied here are the sanitizer's own shadow.
 */
void cs_copy(void *dst, const void *src, size_t len)
{
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(len) : : "memory");
}

/* The symbolic name of an errno value, for messages written in a freeze
 * (strerror may translate, and translating takes locks). */
const char *cs_errname(int e)
{
	static const struct {
		int e;
		const char *name;
	} names[] = {
	    {EPERM, "EPERM"},
	    {ENOENT, "ENOENT"},
	    {ESRCH, "ESRCH"},
	    {EINTR, "EINTR"},
	    {EIO, "EIO"},
	    {EAGAIN, "EAGAIN"},
	    {ENOMEM, "ENOMEM"},
	    {EACCES, "EACCES"},
	    {EBUSY, "EBUSY"},
	    {EINVAL, "EINVAL"},
	    {E2BIG, "E2BIG"},
	    {EPROTO, "EPROTO"},
	    {ETIMEDOUT, "ETIMEDOUT"},
	    {ECONNREFUSED, "ECONNREFUSED"},
	};
	if (e < 0)
		e = -e;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return names[i].name;
	return "an error";
}
