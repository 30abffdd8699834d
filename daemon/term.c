/* Durable term and vote: a tiny text file, replaced atomically. */
#include "term.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_term_file(const char *buf, struct cs_term_state *out)
{
	char name[sizeof(out->voted_for)] = "";
	uint64_t term;
	int n = 0;

	/* "term N\nvote NAME\n" or "term N\nvote -\n" */
	if (sscanf(buf, "term %" SCNu64 "\nvote %63s\n%n", &term, name, &n) != 2 || n == 0)
		return -EINVAL;
	out->term = term;
	if (strcmp(name, "-") == 0)
		name[0] = '\0';
	memcpy(out->voted_for, name, sizeof(out->voted_for));
	return 0;
}

int cs_term_load(const char *dir, struct cs_term_state *out)
{
	char path[PATH_MAX], buf[256];
	ssize_t n;
	int fd, r;

	memset(out, 0, sizeof(*out));
	if (snprintf(path, sizeof(path), "%s/%s", dir, CS_TERM_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	buf[n] = '\0';
	return parse_term_file(buf, out);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int cs_term_store(const char *dir, const struct cs_term_state *st)
{
	char path[PATH_MAX], tmp[PATH_MAX], buf[128];
	int fd, r, len;

	if (snprintf(path, sizeof(path), "%s/%s", dir, CS_TERM_FILE) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, CS_TERM_FILE) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	len = snprintf(buf, sizeof(buf), "term %" PRIu64 "\nvote %s\n", st->term,
	               st->voted_for[0] ? st->voted_for : "-");
	if (len < 0 || len >= (int)sizeof(buf))
		return -EINVAL;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, buf, (size_t)len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	/* The rename is durable only once the directory entry is. */
	return fsync_dir(dir);
}
