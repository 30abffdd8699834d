/*
 * In the process being restored (already the image's pid, in the new
 * namespaces), before it execs the restorer: recreate the image's fds at
 * their numbers, put the helper fds at the numbers the plan names, set
 * cwd, umask and personality.
 *
 * fd numbers: the helpers sit above every number the image uses and above
 * every fd the tool had open; each new fd is first moved above the helpers
 * (a scratch number) and then dup2'd onto its number, so creating one fd
 * never clobbers another.
 *
 * stdio: fds 0-2 are the restoring tool's own, whatever the image had there
 * (usually the first launcher's terminal or log file: restoring a saved
 * offset into a log overwrote later lines, and a terminal is gone).
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "restore.h"
#include "tool.h"

static int status_fd = -1;
static const struct cs_restore *restoring; /* for the memfds of shmem.c */
static int scratch_min;

int cs_restore_fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(buf, sizeof(buf), "error ");
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	if (write(status_fd, buf, (size_t)n) < 0)
		return -1;
	return -1;
}

/* Moves a freshly created fd onto its number. */
int cs_restore_place(int tmp, int target, const char *what)
{
	if (tmp < 0)
		return cs_restore_fail("fd %d (%s): %s", target, what, strerror(errno));
	int hi = fcntl(tmp, F_DUPFD, scratch_min);
	close(tmp);
	if (hi < 0 || dup2(hi, target) < 0)
		return cs_restore_fail("fd %d (%s): placing it: %s", target, what, strerror(errno));
	close(hi);
	return 0;
}

int cs_restore_finish(const struct cs_image_fd *f)
{
	if (f->open_flags & O_PATH)
		return 0; /* it has no status flags (F_SETFL is EBADF) */
	/* FD_CLOEXEC is set by the restorer: exec would close the fd now */
	if (fcntl(f->fd, F_SETFL,
	          f->open_flags & (O_NONBLOCK | O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME)) < 0)
		return cs_restore_fail("fd %d: restoring its flags: %s", f->fd, strerror(errno));
	return 0;
}

static int open_path(const struct cs_image_fd *f)
{
	int flags =
	    (int)(f->open_flags & ~(unsigned)(O_CREAT | O_EXCL | O_TRUNC | O_NONBLOCK)) | O_CLOEXEC;
	if (f->type == CS_FD_DIRECTORY)
		flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (int)(f->open_flags & O_PATH);
	if (cs_restore_place(open(f->path, flags), f->fd, f->path) < 0)
		return -1;
	/* an O_PATH fd has no offset (lseek is EBADF) */
	if (f->type == CS_FD_REGULAR && !(f->open_flags & (O_APPEND | O_PATH)) &&
	    lseek(f->fd, (off_t)f->offset, SEEK_SET) < 0)
		return cs_restore_fail("fd %d (%s): seeking to %llu: %s", f->fd, f->path,
		                       (unsigned long long)f->offset, strerror(errno));
	return 0;
}

/*
 * A connected socket cannot move: it comes back as one whose peer is gone.
 * TCP: connected over loopback to a listener whose accepted end is closed
 * with SO_LINGER 0, so the program reads ECONNRESET (then EOF), exactly as
 * after a peer's reset, and the fd is still an AF_INET(6) TCP socket.
 * Other families: a socketpair end whose peer is closed (EOF, EPIPE).
 */
static int reset_socket(const struct cs_image_fd *f)
{
	if ((f->family == AF_INET || f->family == AF_INET6) && f->sock_type == SOCK_STREAM) {
		struct sockaddr_storage sa = {0};
		socklen_t len =
		    f->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
		if (f->family == AF_INET)
			((struct sockaddr_in *)&sa)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else
			((struct sockaddr_in6 *)&sa)->sin6_addr = in6addr_loopback;
		sa.ss_family = (sa_family_t)f->family;
		int l = socket(f->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int c = socket(f->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct linger lg = {1, 0};
		if (l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&sa, len) == 0 &&
		    listen(l, 1) == 0 && getsockname(l, (struct sockaddr *)&sa, &len) == 0 &&
		    connect(c, (struct sockaddr *)&sa, len) == 0) {
			int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
			if (a >= 0) {
				setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				close(a);
				close(l);
				return cs_restore_place(c, f->fd, "reset TCP socket");
			}
		}
		if (l >= 0)
			close(l);
		if (c >= 0)
			close(c);
	}
	int sv[2];
	int type = f->sock_type == SOCK_DGRAM || f->sock_type == SOCK_SEQPACKET ? f->sock_type
	                                                                        : SOCK_STREAM;
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0)
		return cs_restore_place(-1, f->fd, "reset socket");
	close(sv[1]);
	return cs_restore_place(sv[0], f->fd, "reset socket");
}

/* Where an unlinked file comes back: the directory it was in when that
 * still exists (its filesystem, its quota), else /tmp. */
static int tmpfile_in_dir(const struct cs_image_fd *f)
{
	char dir[CS_IMAGE_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", f->path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	int t = slash ? open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, f->file_mode) : -1;
	return t >= 0 ? t : open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, f->file_mode);
}

/* A new file without a name (O_TMPFILE) with the content, mode, access
 * mode, flags and offset of the unlinked one. */
static int tmp_file(const struct cs_image_fd *f)
{
	int t = tmpfile_in_dir(f);
	if (t < 0)
		return cs_restore_fail("fd %d (%s): O_TMPFILE: %s", f->fd, f->path,
		                       strerror(errno));
	for (uint32_t done = 0; done < f->file_data_len;) {
		ssize_t w = write(t, f->file_data + done, f->file_data_len - done);
		if (w <= 0) {
			close(t);
			return cs_restore_fail("fd %d (%s): writing its content: %s", f->fd,
			                       f->path, w < 0 ? strerror(errno) : "short write");
		}
		done += (uint32_t)w;
	}
	fchmod(t, f->file_mode); /* open() applied the umask */
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", t);
	int flags = (int)(f->open_flags &
	                  (O_ACCMODE | O_APPEND | O_NOATIME | O_DIRECT | O_SYNC | O_DSYNC)) |
	            O_CLOEXEC;
	int r = cs_restore_place(open(self, flags), f->fd, "unlinked file");
	close(t);
	if (!r && !(f->open_flags & O_APPEND) && lseek(f->fd, (off_t)f->offset, SEEK_SET) < 0)
		return cs_restore_fail("fd %d (%s): seeking to %llu: %s", f->fd, f->path,
		                       (unsigned long long)f->offset, strerror(errno));
	return r;
}

/* The object's memfd at its final number (place_helpers has run). */
static int placed_object(const struct cs_restore *r, uint64_t ino)
{
	int i = cs_restore_shmem_index(r, ino);
	return i < 0 ? -1 : r->helper_base + 2 + (int)r->chain.n + i;
}

static int fill(int fd, const uint8_t *p, uint32_t len)
{
	for (uint32_t done = 0; done < len;) {
		ssize_t w = pwrite(fd, p + done, len - done, (off_t)done);
		if (w <= 0)
			return -1;
		done += (uint32_t)w;
	}
	return ftruncate(fd, (off_t)len);
}

/* A mapped memfd is opened again through its helper fd (a new open file
 * description of that object); seals last, as they may forbid the writes. */
static int memfd_fd(const struct cs_restore *r, const struct cs_image_fd *f)
{
	char name[256], self[64];
	int obj = placed_object(r, f->pipe_id), t;
	cs_shmem_name(f->path, name, sizeof(name));
	snprintf(self, sizeof(self), "/proc/self/fd/%d", obj);
	t = obj >= 0 ? open(self, O_RDWR | O_CLOEXEC)
	             : memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (t < 0 || fill(t, f->file_data, f->file_data_len) || fchmod(t, f->file_mode) ||
	    (f->eventfd_flags && fcntl(t, F_ADD_SEALS, (int)f->eventfd_flags) < 0)) {
		int e = errno;
		if (t >= 0)
			close(t);
		return cs_restore_fail("fd %d (%s): making the memfd: %s", f->fd, f->path,
		                       strerror(e));
	}
	int err = cs_restore_place(t, f->fd, "memfd");
	if (!err && lseek(f->fd, (off_t)f->offset, SEEK_SET) < 0)
		return cs_restore_fail("fd %d (%s): seeking to %llu: %s", f->fd, f->path,
		                       (unsigned long long)f->offset, strerror(errno));
	return err;
}

/* A periodic timer that had expired with its ticks not read yet shows a
 * remaining time of 0 in fdinfo: 0 would disarm it, so it fires at once. */
static int timer_fd(const struct cs_image_fd *f)
{
	int t = timerfd_create(f->timer_clockid, TFD_CLOEXEC);
	uint64_t value = f->timer_value_ns ? f->timer_value_ns : f->timer_interval_ns ? 1 : 0;
	struct itimerspec its = {
	    .it_value = {(time_t)(value / 1000000000), (long)(value % 1000000000)},
	    .it_interval = {(time_t)(f->timer_interval_ns / 1000000000),
	                    (long)(f->timer_interval_ns % 1000000000)},
	};
	if (t >= 0 && timerfd_settime(t, 0, &its, NULL) < 0)
		return cs_restore_fail("fd %d: timerfd_settime: %s", f->fd, strerror(errno));
	return cs_restore_place(t, f->fd, "timerfd");
}

/* One watch at a time, from wd 1 up: a new instance hands out 1, 2, 3...
 * (the image has no gaps). The path must still be the watched inode. */
static int inotify_fd(const struct cs_image_fd *f)
{
	int in = inotify_init1(IN_CLOEXEC);
	if (in < 0)
		return cs_restore_place(in, f->fd, "inotify");
	const uint8_t *p = f->file_data, *end = p + f->file_data_len;
	while (p < end) { /* the parser checked the layout */
		int32_t wd;
		uint32_t mask, len;
		uint64_t ino;
		char path[CS_IMAGE_PATH_MAX];
		struct stat st;
		memcpy(&wd, p, 4), memcpy(&mask, p + 4, 4), memcpy(&ino, p + 8, 8);
		memcpy(&len, p + 16, 4);
		memcpy(path, p + 20, len);
		path[len] = 0;
		p += 20 + len;
		int got = stat(path, &st) == 0 && st.st_ino == ino
		              ? inotify_add_watch(in, path, mask)
		              : -2;
		if (got != wd) {
			close(in);
			return cs_restore_fail(
			    "fd %d: inotify watch %d on %s: %s (a check only a restore "
			    "can make)",
			    f->fd, wd, path,
			    got == -2 ? "the path names another file now"
			    : got < 0 ? strerror(errno)
			              : "it came back with another number");
		}
	}
	return cs_restore_place(in, f->fd, "inotify");
}

/* The kernel's 64-bit mask as is (glibc's sigaddset would drop its own
 * signals 32 and 33). */
static int signal_fd(const struct cs_image_fd *f)
{
	uint64_t mask = f->eventfd_count;
	int s = (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC);
	return cs_restore_place(s, f->fd, "signalfd");
}

static int event_fd(const struct cs_image_fd *f)
{
	int e = eventfd(0, EFD_CLOEXEC | (f->eventfd_flags & EFD_SEMAPHORE));
	if (e >= 0 && f->eventfd_count && write(e, &f->eventfd_count, 8) != 8)
		return cs_restore_fail("fd %d: eventfd count: %s", f->fd, strerror(errno));
	return cs_restore_place(e, f->fd, "eventfd");
}

static int is_read_end(const struct cs_image_fd *f)
{
	return (f->open_flags & O_ACCMODE) == O_RDONLY;
}

/* A new open file description of one end of the pipe p: O_NONBLOCK and
 * the other status flags belong to a description, so each end the program
 * opened separately gets its own, as it had. */
static int pipe_end(const int p[2], int read_end)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[read_end ? 0 : 1]);
	return open(path, (read_end ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_CLOEXEC);
}

/* Same pipe: the same kind (a FIFO's inode and a pipe's are numbered by
 * different filesystems) and the same inode. fds 0-2 are the tool's. */
static int same_pipe(const struct cs_image_fd *g, const struct cs_image_fd *first)
{
	return g->type == first->type && g->pipe_id == first->pipe_id && g->fd > 2;
}

/* The pipe's capacity and its pending bytes, written once per pipe. */
static int fill_pipe(const struct cs_image *img, size_t first, int wr)
{
	uint32_t size = 0;
	const struct cs_image_fd *data = NULL;
	for (size_t i = first; i < img->n_fds; i++) {
		const struct cs_image_fd *g = &img->fds[i];
		if (!same_pipe(g, &img->fds[first]))
			continue;
		if (g->pipe_size > size)
			size = g->pipe_size;
		if (g->pipe_data_len && !data)
			data = g;
	}
	if (data && data->pipe_data_len > size)
		size = data->pipe_data_len;
	if (size && fcntl(wr, F_GETPIPE_SZ) != (int)size && fcntl(wr, F_SETPIPE_SZ, (int)size) < 0)
		return cs_restore_fail("fd %d: pipe size %u: %s", img->fds[first].fd, size,
		                       strerror(errno));
	if (data && write(wr, data->pipe_data, data->pipe_data_len) != (ssize_t)data->pipe_data_len)
		return cs_restore_fail("fd %d: pending pipe bytes: %s", data->fd, strerror(errno));
	return 0;
}

/* Moves *fd to a number at or above scratch_min (closing the old one):
 * for a temporary fd kept open while others are placed. */
int cs_restore_above_scratch(int *fd)
{
	int hi = fcntl(*fd, F_DUPFD_CLOEXEC, scratch_min);
	int saved = errno;

	close(*fd);
	*fd = hi;
	errno = saved;
	return hi;
}

/* A new pipe, or the named FIFO opened for reading and writing (Linux
 * allows it): an fd that holds both ends open, so every end of the
 * program's opens without blocking. */
static int open_pipe(const struct cs_image_fd *f, int p[2])
{
	if (f->type == CS_FD_PIPE) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		/* pipe2 takes the lowest free numbers, which may be the very
		 * numbers its ends are placed on: closing p[] at the end would
		 * then close what was just placed. Keep them in scratch space. */
		return cs_restore_above_scratch(&p[0]) < 0 || cs_restore_above_scratch(&p[1]) < 0 ? -1 : 0;
	}
	p[0] = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (p[0] < 0 || cs_restore_above_scratch(&p[0]) < 0)
		return -1;
	p[1] = p[0];
	return 0;
}

/* Both ends of a pipe or FIFO, found by pipe_id. An end that was outside
 * the process is closed: its partner sees EOF or EPIPE. */
static int pipe_group(const struct cs_image *img, size_t first, char *done)
{
	int p[2];
	if (open_pipe(&img->fds[first], p) < 0)
		return cs_restore_fail("fd %d (%s): %s", img->fds[first].fd, img->fds[first].path,
		                       strerror(errno));
	int err = fill_pipe(img, first, p[1]);
	for (size_t i = first; i < img->n_fds && !err; i++) {
		const struct cs_image_fd *g = &img->fds[i];
		if (!same_pipe(g, &img->fds[first]))
			continue;
		done[i] = 1;
		if (g->share_fd >= 0)
			err = cs_restore_place(dup(g->share_fd), g->fd, "pipe");
		else
			err = cs_restore_place(pipe_end(p, is_read_end(g)), g->fd, "pipe");
		if (!err)
			err = cs_restore_finish(g);
	}
	close(p[0]);
	if (p[1] != p[0])
		close(p[1]);
	return err;
}

static int one_fd(const struct cs_image_fd *f)
{
	switch (f->type) {
	case CS_FD_REGULAR:
	case CS_FD_DIRECTORY:
	case CS_FD_CHARDEV:
		return open_path(f);
	case CS_FD_SOCKET_LISTEN:
	case CS_FD_SOCKET_DGRAM:
	case CS_FD_SOCKET_STREAM:
		return cs_restore_socket(f);
	case CS_FD_SOCKET_CONNECTED:
		return reset_socket(f);
	case CS_FD_TMPFILE:
		return tmp_file(f);
	case CS_FD_MEMFD:
		return memfd_fd(restoring, f);
	case CS_FD_EVENTFD:
		return event_fd(f);
	case CS_FD_SIGNALFD:
		return signal_fd(f);
	case CS_FD_INOTIFY:
		return inotify_fd(f);
	case CS_FD_TIMERFD:
		return timer_fd(f);
	case CS_FD_EPOLL:
		return cs_restore_place(epoll_create1(EPOLL_CLOEXEC), f->fd, "epoll");
	default:
		return cs_restore_fail("fd %d: cannot recreate a %s", f->fd,
		                       cs_image_fd_type_name(f->type));
	}
}

/* A registration whose number the program closed or reused: the file is
 * added through that number for a moment (whatever is there now is moved
 * aside and put back), so the registration carries the number it had. */
static int add_moved(int efd, const struct cs_image_epoll_entry *e, struct epoll_event *ev)
{
	int aside = fcntl(e->tfd, F_GETFD) >= 0 ? fcntl(e->tfd, F_DUPFD_CLOEXEC, scratch_min) : -1;
	int r = dup2(e->src_fd, e->tfd) < 0 ? -1 : epoll_ctl(efd, EPOLL_CTL_ADD, e->tfd, ev);
	int saved = errno;
	if (aside >= 0) {
		dup2(aside, e->tfd);
		close(aside);
	} else {
		close(e->tfd);
	}
	errno = saved;
	return r;
}

static int epoll_registrations(const struct cs_image_fd *f)
{
	for (uint32_t i = 0; i < f->n_epoll; i++) {
		const struct cs_image_epoll_entry *e = &f->epoll[i];
		struct epoll_event ev = {.events = e->events, .data.u64 = e->data};
		int r = e->src_fd == e->tfd ? epoll_ctl(f->fd, EPOLL_CTL_ADD, e->tfd, &ev)
		                            : add_moved(f->fd, e, &ev);
		if (r < 0)
			return cs_restore_fail(
			    "epoll fd %d: registering fd %d again%s: %s", f->fd, e->tfd,
			    e->src_fd == e->tfd ? "" : " (its file moved)", strerror(errno));
	}
	return 0;
}

static int take_lock(int fd, const struct cs_image_lock *l)
{
	struct flock fl = {.l_type = l->mode == CS_LOCK_WRITE ? F_WRLCK : F_RDLCK,
	                   .l_whence = SEEK_SET,
	                   .l_start = (off_t)l->start,
	                   .l_len = l->end == CS_LOCK_EOF ? 0 : (off_t)(l->end - l->start + 1)};
	switch (l->kind) {
	case CS_LOCK_FLOCK:
		return flock(fd, (l->mode == CS_LOCK_WRITE ? LOCK_EX : LOCK_SH) | LOCK_NB);
	case CS_LOCK_OFD:
		return fcntl(fd, F_OFD_SETLK, &fl);
	case CS_LOCK_LEASE:
		return fcntl(fd, F_SETLEASE, fl.l_type);
	default:
		return fcntl(fd, F_SETLK, &fl);
	}
}

/*
 * Locks and leases, once every fd is in place: closing any fd of a file
 * drops the process's POSIX locks on it, and no fd is closed after this
 * (the agent refused POSIX locks on files the restorer holds open to map).
 * A duplicate shares its original's flock, OFD lock and lease.
 */
static int take_locks(const struct cs_image *img, int skip_posix)
{
	static const char *const kinds[] = {"?", "POSIX", "flock", "OFD", "lease"};
	for (size_t i = 0; i < img->n_fds; i++) {
		const struct cs_image_fd *f = &img->fds[i];
		for (uint32_t k = 0; f->fd > 2 && k < f->n_locks; k++) {
			const struct cs_image_lock *l = &f->locks[k];
			if (f->share_fd >= 0 && l->kind != CS_LOCK_POSIX)
				continue;
			if (skip_posix && l->kind == CS_LOCK_POSIX)
				continue;
			if (take_lock(f->fd, l) < 0)
				return cs_restore_fail(
				    "fd %d (%s): taking its %s lock again (a check only "
				    "a restore can make: another process may hold "
				    "it now): %s",
				    f->fd, f->path, kinds[l->kind <= 4 ? l->kind : 0],
				    strerror(errno));
		}
	}
	return 0;
}

/* skip_posix: a donor makes them (standby.c), POSIX locks would be its own */
static int recreate_fds(const struct cs_image *img, int skip_posix)
{
	char *done = calloc(img->n_fds + 1, 1);
	int err = done ? 0 : cs_restore_fail("out of memory");
	for (size_t i = 0; i < img->n_fds && !err; i++) {
		const struct cs_image_fd *f = &img->fds[i];
		if (done[i] || f->fd <= 2 || f->type == CS_FD_AGENT)
			continue;
		if (f->type == CS_FD_PIPE || f->type == CS_FD_FIFO) {
			err = pipe_group(img, i, done);
			continue;
		}
		if (f->type == CS_FD_SOCKETPAIR) {
			err = cs_restore_socketpair(img, i, done);
			continue;
		}
		if (f->share_fd >= 0) { /* a dup: the same open file description */
			err = cs_restore_place(dup(f->share_fd), f->fd, "duplicate");
			continue;
		}
		err = one_fd(f);
		if (!err)
			err = cs_restore_finish(f);
	}
	for (size_t i = 0; i < img->n_fds && !err; i++)
		if (img->fds[i].type == CS_FD_EPOLL && img->fds[i].fd > 2 &&
		    img->fds[i].share_fd < 0)
			err = epoll_registrations(&img->fds[i]);
	if (!err)
		err = take_locks(img, skip_posix);
	free(done);
	return err;
}

/* Helper fds go to [helper_base, ...) in the order the plan names them. */
static int place_helpers(struct cs_restore *r)
{
	int n = cs_restore_helper_count(r) + 1, *src = calloc((size_t)n + 1, sizeof(int)), k = 0;
	if (!src)
		return cs_restore_fail("out of memory");
	src[k++] = r->status_wr;
	src[k++] = r->plan_fd;
	for (size_t i = 0; i < r->chain.n; i++)
		src[k++] = r->chain.imgs[i].fd;
	for (size_t i = 0; i < r->n_files; i++)
		src[k++] = r->files[i].fd;
	src[k++] = r->exe_fd;
	if (r->control_fd >= 0) /* a standby's control socket, right above the exe fd */
		src[k++] = r->control_fd, n++;
	for (int i = 0; i < n; i++)
		if (dup2(src[i], r->helper_base + i) < 0)
			return cs_restore_fail("placing helper fd %d at %d: %s", src[i],
			                       r->helper_base + i, strerror(errno));
	status_fd = r->helper_base;
	close_range(3, (unsigned)r->helper_base - 1, 0);
	if (r->control_fd >= 0)
		close_range((unsigned)(r->helper_base + n), ~0u, 0);
	scratch_min = r->helper_base + n;
	free(src);
	return 0;
}

/* Kept by the exec of the restorer (it belongs to the signal struct). Only
 * a restore can tell whether it may be lowered (CAP_SYS_RESOURCE). */
static int set_oom_score_adj(pid_t pid, int32_t v)
{
	char buf[16], path[64];
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
	int fd = open(pid ? path : "/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	buf[got > 0 ? got : 0] = 0;
	if (got > 0 && atoi(buf) == v) {
		close(fd);
		return 0;
	}
	int n = snprintf(buf, sizeof(buf), "%d", (int)v);
	if (fd >= 0 && pwrite(fd, buf, (size_t)n, 0) == n) {
		close(fd);
		return 0;
	}
	int e = errno;
	if (fd >= 0)
		close(fd);
	return cs_restore_fail("oom_score_adj %d (a check only a restore can make: lowering it "
	                       "needs CAP_SYS_RESOURCE): %s",
	                       (int)v, strerror(e));
}

/* The CPUs of the saved affinity that this host has: a backup host may
 * have fewer. None of them is a failure only a restore can see. */
static int set_affinity(pid_t pid, const struct cs_image_attrs *a)
{
	uint8_t here[CS_IMAGE_AFFINITY_MAX] = {0}, want[CS_IMAGE_AFFINITY_MAX] = {0};
	long len = syscall(SYS_sched_getaffinity, 0, sizeof(here), here);
	int any = 0;
	for (long i = 0; i < len && i < (long)a->affinity_len; i++)
		any |= (want[i] = a->affinity[i] & here[i]) != 0;
	if (!a->affinity_len || len <= 0)
		return 0;
	if (!any || syscall(SYS_sched_setaffinity, pid, (size_t)len, want) < 0)
		return cs_restore_fail("CPU affinity: %s (a check only a restore can make: none of "
		                       "the program's CPUs may be here)",
		                       any ? strerror(errno)
		                           : "no CPU of the saved mask is online");
	return 0;
}

/* Policy, priority and nice, kept by the exec and inherited by every
 * thread the restorer makes. Raising them needs CAP_SYS_NICE. */
static int set_scheduling(pid_t pid, const struct cs_image_attrs *a)
{
	struct sched_param sp = {.sched_priority = (int)a->sched_priority};
	if (sched_setscheduler(pid, (int)a->sched_policy, &sp) < 0)
		return cs_restore_fail("scheduling policy %#x priority %u (a check only a restore "
		                       "can make: real-time policies need CAP_SYS_NICE): %s",
		                       a->sched_policy, a->sched_priority, strerror(errno));
	if (setpriority(PRIO_PROCESS, (id_t)pid, a->nice) < 0)
		return cs_restore_fail(
		    "nice %d (a check only a restore can make: lowering it needs "
		    "CAP_SYS_NICE): %s",
		    (int)a->nice, strerror(errno));
	return set_affinity(pid, a);
}

static int exec_restorer(struct cs_restore *r)
{
	char fdarg[16];
	snprintf(fdarg, sizeof(fdarg), "%d", r->helper_base + 1);
	char *argv[] = {r->restorer, fdarg, NULL}, *envp[] = {NULL};
	execve(r->restorer, argv, envp);
	return cs_restore_fail("cannot execute %s: %s", r->restorer, strerror(errno));
}

int cs_restore_exec(struct cs_restore *r)
{
	const struct cs_image_process *p = &r->img->process;
	struct rlimit rl;
	status_fd = r->status_wr;
	restoring = r;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (place_helpers(r) < 0)
		return -1;
	if (r->control_fd >= 0)
		return exec_restorer(r); /* a standby: the program's fds come at promotion */
	if (recreate_fds(r->img, 0) < 0)
		return -1;
	if (r->detach) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0 && null != 0) {
			dup2(null, 0);
			close(null);
		}
	}
	if (chdir(p->cwd) < 0)
		return cs_restore_fail("chdir %s: %s", p->cwd, strerror(errno));
	umask(p->umask);
	if (r->img->has_attrs && (set_oom_score_adj(0, r->img->attrs.oom_score_adj) < 0 ||
	                          set_scheduling(0, &r->img->attrs) < 0))
		return -1;
	if (personality(p->personality) < 0)
		return cs_restore_fail("personality %#x: %s", p->personality, strerror(errno));
	return exec_restorer(r);
}

/*
 * A standby's donor (standby.c), a fork of the tool at promotion: makes
 * the program's fds at their numbers, for the standby to take with
 * pidfd_getfd, and gives the standby (host pid target) the attributes a
 * cold restore's child sets on itself. POSIX locks are left to the
 * standby: they would be the donor's. Errors go to report as "error ...".
 */
int cs_restore_donate(const struct cs_restore *r, int report, pid_t target, int helper_lo)
{
	if (dup2(report, helper_lo + 4) < 0)
		return -1;
	status_fd = helper_lo + 4;
	close_range(3, (unsigned)helper_lo + 3, 0);
	close_range((unsigned)helper_lo + 5, ~0u, 0);
	scratch_min = helper_lo + 8;
	if (recreate_fds(r->img, 1) < 0)
		return -1;
	if (r->img->has_attrs && (set_oom_score_adj(target, r->img->attrs.oom_score_adj) < 0 ||
	                          set_scheduling(target, &r->img->attrs) < 0))
		return -1;
	return 0;
}
