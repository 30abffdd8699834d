/*
 * inotify instances, captured during the freeze. fdinfo gives each watch
 * as "inotify wd:3 ino:6286d sdev:fe00000 mask:4000fff ignored_mask:0
 * fhandle-bytes:8 fhandle-type:1 f_handle:6d28060000000000" (numbers in
 * hex): the file handle is opened (open_by_handle_at, which needs
 * CAP_DAC_READ_SEARCH) on a mount of that device to find the watched
 * file's path now. The watches go into file_data (docs/image-format.md).
 * Refused: queued events (they cannot be read without consuming them),
 * watch numbers with gaps (a restore hands out 1, 2, 3...), a watched file
 * without a path.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent.h"

#define MAX_HANDLE 128

static char *mounts; /* /proc/self/mountinfo text */
static size_t mounts_cap;

void cs_inotify_reset(void)
{
	mounts = NULL;
	mounts_cap = 0;
}

struct watch_line {
	uint64_t wd, ino, sdev, mask, bytes, type;
	uint8_t handle[MAX_HANDLE];
};

static uint64_t hex_after(const char *line, const char *name, const char *end)
{
	const char *p = strstr(line, name);
	uint64_t v = 0;
	if (p && p < end) {
		p += strlen(name);
		cs_parse_u64(&p, &v, 16);
	}
	return v;
}

static int parse_watch(const char *line, const char *end, struct watch_line *w)
{
	const char *h = strstr(line, "f_handle:");
	w->wd = hex_after(line, "wd:", end);
	w->ino = hex_after(line, "ino:", end);
	w->sdev = hex_after(line, "sdev:", end);
	w->mask = hex_after(line, "mask:", end);
	w->bytes = hex_after(line, "fhandle-bytes:", end);
	w->type = hex_after(line, "fhandle-type:", end);
	if (!h || h > end || w->bytes > MAX_HANDLE || !w->wd)
		return -1;
	h += 9;
	for (uint64_t i = 0; i < w->bytes; i++) {
		const char pair[3] = {h[2 * i], h[2 * i + 1], 0};
		const char *q = pair;
		uint64_t v;
		if (cs_parse_u64(&q, &v, 16) || q != pair + 2)
			return -1;
		w->handle[i] = (uint8_t)v;
	}
	return 0;
}

/* A directory of the mount of sdev (the kernel's dev_t: major << 20 | minor),
 * from /proc/self/mountinfo's "major:minor" and mount point fields. */
static int mount_of(uint64_t sdev)
{
	char want[48], num[24];
	cs_fmt_u64(num, sdev >> 20);
	cs_strlcpy(want, " ", sizeof(want));
	cs_strlcat(want, num, sizeof(want));
	cs_strlcat(want, ":", sizeof(want));
	cs_fmt_u64(num, sdev & 0xfffff);
	cs_strlcat(want, num, sizeof(want));
	cs_strlcat(want, " ", sizeof(want));
	if (cs_scratch_grow((void **)&mounts, &mounts_cap, 1, 1u << 20) ||
	    cs_read_file("/proc/self/mountinfo", mounts, mounts_cap) < 0)
		return -1;
	const char *p = strstr(mounts, want);
	if (!p)
		return -1;
	p = strchr(p + strlen(want), ' '); /* root within the filesystem */
	const char *mp = p ? p + 1 : NULL, *sp = mp ? strchr(mp, ' ') : NULL;
	if (!sp || (size_t)(sp - mp) >= CS_IMAGE_PATH_MAX)
		return -1;
	char dir[CS_IMAGE_PATH_MAX];
	memcpy(dir, mp, (size_t)(sp - mp));
	dir[sp - mp] = 0;
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* O_PATH: EBADF */
}

/* The watched file's path now, through its handle. */
static const char *watch_path(const struct watch_line *w, char *path)
{
	struct {
		uint32_t bytes;
		int32_t type;
		uint8_t h[MAX_HANDLE];
	} fh = {(uint32_t)w->bytes, (int32_t)w->type, {0}};
	char self[64];
	memcpy(fh.h, w->handle, w->bytes);
	int mnt = mount_of(w->sdev);
	int fd = mnt < 0 ? -1 : open_by_handle_at(mnt, (void *)&fh, O_PATH | O_CLOEXEC);
	if (mnt >= 0)
		close(mnt);
	if (fd < 0)
		return "a watched file cannot be found again (open_by_handle_at needs "
		       "CAP_DAC_READ_SEARCH)";
	cs_strlcpy(self, "/proc/self/fd/", sizeof(self));
	cs_fmt_u64(self + strlen(self), (uint64_t)fd);
	ssize_t n = readlink(self, path, CS_IMAGE_PATH_MAX - 1);
	close(fd);
	path[n > 0 ? n : 0] = 0;
	if (n <= 0 || path[0] != '/' || strstr(path, " (deleted)"))
		return "a watched file has no path any more";
	return NULL;
}

static const char *add_watch(struct cs_capture *c, struct cs_image_fd *f,
                             const struct watch_line *w)
{
	char path[CS_IMAGE_PATH_MAX];
	const char *why = watch_path(w, path);
	size_t len = strlen(path);
	if (why)
		return why;
	if (cs_fd_pool_reserve(c, CS_IMAGE_WATCH_FIXED + 4 + len))
		return "no memory for its watches";
	uint8_t *p = c->fd_pool + c->fd_pool_len;
	uint32_t wd = (uint32_t)w->wd, mask = (uint32_t)w->mask, l = (uint32_t)len;
	memcpy(p, &wd, 4); /* little-endian, like the rest of the image */
	memcpy(p + 4, &mask, 4);
	memcpy(p + 8, &w->ino, 8);
	memcpy(p + 16, &l, 4);
	memcpy(p + 20, path, len);
	c->fd_pool_len += CS_IMAGE_WATCH_FIXED + 4 + len;
	f->file_data_len += (uint32_t)(CS_IMAGE_WATCH_FIXED + 4 + len);
	return NULL;
}

/* The kernel lists the newest watch first: the image wants them from wd 1
 * up, with no gap. */
static const char *watches(struct cs_capture *c, struct cs_image_fd *f, const char *info)
{
	uint64_t n = 0;
	for (const char *p = info; (p = strstr(p, "inotify wd:")) != NULL; p++)
		n++;
	f->file_data = (const uint8_t *)(uintptr_t)c->fd_pool_len;
	for (uint64_t wd = 1; wd <= n; wd++) {
		const char *p = info, *end = NULL;
		struct watch_line w = {0};
		while ((p = strstr(p, "inotify wd:")) != NULL) {
			end = strchr(p, '\n');
			if (!parse_watch(p, end ? end : p + strlen(p), &w) && w.wd == wd)
				break;
			p++;
		}
		if (!p)
			return "watch numbers with gaps (a watch was removed): not restored";
		const char *why = add_watch(c, f, &w);
		if (why)
			return why;
	}
	return NULL;
}

void cs_inotify_capture(struct cs_capture *c, struct cs_image_fd *f, const char *info)
{
	int queued = 0;
	const char *why = NULL;
	f->type = CS_FD_INOTIFY;
	if (ioctl(f->fd, FIONREAD, &queued) || queued)
		why = "inotify events are queued (they cannot be read without consuming them)";
	if (!why)
		why = watches(c, f, info);
	if (why)
		cs_fd_unsupported(c, f, why);
}
