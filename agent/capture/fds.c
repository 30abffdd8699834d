/*
 * File descriptors, captured in the parent during the freeze: the writer
 * child has its own fd table but shares every open file description with
 * the parent (offsets, eventfd counters, epoll interest lists, pipe
 * buffers), which the application changes as soon as it is released.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent.h"

void cs_unsup_add(struct cs_capture *c, const char *what)
{
	size_t len = strlen(what);
	if (cs_scratch_grow((void **)&c->unsup, &c->unsup_cap, 1, c->unsup_len + len + 2))
		return;
	if (c->unsup_len)
		c->unsup[c->unsup_len++] = '\n';
	memcpy(c->unsup + c->unsup_len, what, len);
	c->unsup_len += len;
	c->unsup[c->unsup_len] = 0;
}

int cs_fd_is_agent(const struct cs_agent *a, int fd)
{
	if (fd < 0)
		return 0;
	if (fd == a->uffd || fd == a->pagemap_fd || fd == a->lock_fd || fd == a->listen_fd ||
	    fd == a->wake_fd || fd == a->dir_fd || fd == a->sup_fd || fd == a->tee_pipe[0] ||
	    fd == a->tee_pipe[1])
		return 1;
	for (size_t i = 0; i < sizeof(a->client_fd) / sizeof(a->client_fd[0]); i++)
		if (a->client_fd[i] == fd)
			return 1;
	return 0;
}

static char *info_buf; /* fdinfo text */
static size_t info_cap;

/* by index: the candidates for a shared open file description are the
 * fds of the same inode */
static struct cs_fd_ident *idents;

void cs_fds_reset(void)
{
	info_buf = NULL;
	info_cap = 0;
	idents = NULL;
	cs_inotify_reset();
}

void cs_fd_unsupported(struct cs_capture *c, struct cs_image_fd *f, const char *reason)
{
	char what[CS_ERR_MAX], num[24];
	f->type = CS_FD_UNSUPPORTED;
	/* Data read before the refusal stays in the pool unreferenced: an
	 * UNSUPPORTED record carries none (the decoder rejects it if it does,
	 * and then a restore could not even name the refusal). */
	f->pipe_data_len = 0;
	f->n_epoll = 0;
	f->file_data_len = 0;
	f->filter_len = 0;
	cs_strlcpy(f->reason, reason, sizeof(f->reason));
	cs_strlcpy(what, "fd ", sizeof(what));
	cs_fmt_u64(num, (uint64_t)f->fd);
	cs_strlcat(what, num, sizeof(what));
	cs_strlcat(what, ": ", sizeof(what));
	cs_strlcat(what, f->path, sizeof(what));
	cs_strlcat(what, " (", sizeof(what));
	cs_strlcat(what, reason, sizeof(what));
	cs_strlcat(what, ")", sizeof(what));
	cs_unsup_add(c, what);
}

int cs_fd_pool_reserve(struct cs_capture *c, size_t more)
{
	return cs_scratch_grow((void **)&c->fd_pool, &c->fd_pool_cap, 1, c->fd_pool_len + more);
}

/* Pending bytes of a pipe's read end, copied without consuming them. */
static void pipe_data(struct cs_agent *a, struct cs_capture *c, struct cs_image_fd *f)
{
	if (a->tee_pipe[0] < 0 || (f->open_flags & O_ACCMODE) == O_WRONLY)
		return;
	ssize_t n = tee(f->fd, a->tee_pipe[1], CS_IMAGE_PIPE_DATA_MAX, SPLICE_F_NONBLOCK);
	if (n <= 0)
		return;
	if (cs_fd_pool_reserve(c, (size_t)n)) {
		cs_fd_unsupported(c, f, "no memory for pending pipe bytes");
		return;
	}
	size_t got = 0;
	while (got < (size_t)n) {
		ssize_t r =
		    read(a->tee_pipe[0], c->fd_pool + c->fd_pool_len + got, (size_t)n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	f->pipe_data = (const uint8_t *)(uintptr_t)c->fd_pool_len; /* an offset until the end */
	f->pipe_data_len = (uint32_t)got;
	c->fd_pool_len += got;
}

static const char *field(const char *buf, const char *name)
{
	const char *p = strstr(buf, name);
	return p ? p + strlen(name) : NULL;
}

static uint64_t field_u64(const char *buf, const char *name, int base)
{
	const char *p = field(buf, name);
	uint64_t v = 0;
	if (!p)
		return 0;
	while (*p == ' ' || *p == '\t' || *p == '(')
		p++;
	cs_parse_u64(&p, &v, base);
	return v;
}

static void fdinfo_path(char *buf, int fd)
{
	char num[24];
	cs_strlcpy(buf, "/proc/self/fdinfo/", 64);
	cs_fmt_u64(num, (uint64_t)fd);
	cs_strlcat(buf, num, 64);
}

/* "it_value: (sec, nsec)" */
static uint64_t timespec_field(const char *buf, const char *name)
{
	const char *p = field(buf, name);
	uint64_t s = 0, ns = 0;
	if (!p)
		return 0;
	while (*p == ' ' || *p == '(')
		p++;
	if (cs_parse_u64(&p, &s, 10))
		return 0;
	while (*p == ',' || *p == ' ')
		p++;
	cs_parse_u64(&p, &ns, 10);
	return s * 1000000000ull + ns;
}

static void epoll_entries(struct cs_capture *c, struct cs_image_fd *f, const char *info)
{
	size_t start = c->fd_pool_len;
	uint32_t n = 0;
	for (const char *p = info; (p = strstr(p, "tfd:")) && n < CS_IMAGE_EPOLL_MAX;) {
		struct cs_image_epoll_entry e;
		uint64_t v;
		p += 4;
		while (*p == ' ')
			p++;
		if (cs_parse_u64(&p, &v, 10))
			continue;
		e.tfd = (int32_t)v;
		e.events = (uint32_t)field_u64(p, "events:", 16);
		e.data = field_u64(p, "data:", 16);
		e.src_fd = e.tfd; /* epoll_check finds another if the number moved on */
		if (cs_fd_pool_reserve(c, sizeof(e))) {
			cs_fd_unsupported(c, f, "no memory for epoll entries");
			return;
		}
		memcpy(c->fd_pool + c->fd_pool_len, &e, sizeof(e));
		c->fd_pool_len += sizeof(e);
		n++;
	}
	f->epoll = (const void *)(uintptr_t)start;
	f->n_epoll = n;
}

/* A file the process maps, by device and inode: the restorer holds an fd
 * of it while it maps it, and closing that fd drops the process's POSIX
 * locks on the file. */
static int mapped(const struct cs_capture *c, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < c->maps.n; i++)
		if (c->maps.v[i].ino == ino && c->maps.v[i].dev == dev)
			return 1;
	return 0;
}

static const char *skip_word(const char *p)
{
	while (*p && *p != ' ' && *p != '\n')
		p++;
	while (*p == ' ')
		p++;
	return p;
}

/* One "lock:" line of fdinfo: "1: POSIX  ADVISORY  WRITE 42 fe:00:123 10 29",
 * "1: FLOCK  ADVISORY  READ ...", "1: OFDLCK ADVISORY  WRITE -1 ... 0 EOF",
 * "1: LEASE  ACTIVE    READ ..."; "1: -> ..." is a waiter, not a holder. */
static const char *parse_lock(const char *p, struct cs_image_lock *l)
{
	static const char *const kinds[] = {"POSIX ", "FLOCK ", "OFDLCK ", "LEASE "};
	p = skip_word(p); /* "1:" */
	if (!strncmp(p, "->", 2))
		return "";
	l->kind = 0;
	for (uint32_t k = 0; k < 4; k++)
		if (!strncmp(p, kinds[k], strlen(kinds[k])))
			l->kind = CS_LOCK_POSIX + k;
	if (!l->kind)
		return "a kind of file lock the agent does not know";
	p = skip_word(p);
	if (l->kind == CS_LOCK_LEASE && strncmp(p, "ACTIVE ", 7))
		return "a lease being broken";
	p = skip_word(p);
	l->mode = !strncmp(p, "READ ", 5)    ? CS_LOCK_READ
	          : !strncmp(p, "WRITE ", 6) ? CS_LOCK_WRITE
	                                     : 0;
	if (!l->mode)
		return "a file lock of an unknown mode";
	p = skip_word(skip_word(skip_word(p))); /* mode, pid, dev:ino */
	if (cs_parse_u64(&p, &l->start, 10))
		return "a file lock with an unreadable range";
	while (*p == ' ')
		p++;
	l->end = CS_LOCK_EOF;
	if (strncmp(p, "EOF", 3) && cs_parse_u64(&p, &l->end, 10))
		return "a file lock with an unreadable range";
	return NULL;
}

/* Locks and leases held through a file fd, from its fdinfo. */
static void file_locks(struct cs_capture *c, struct cs_image_fd *f, const struct cs_fd_ident *id)
{
	char path[64];
	const char *why = NULL;
	fdinfo_path(path, f->fd);
	if (cs_scratch_grow((void **)&info_buf, &info_cap, 1, 1u << 20))
		why = "no memory for fdinfo";
	else if (cs_read_file(path, info_buf, info_cap) < 0)
		why = "fdinfo unreadable";
	for (const char *p = info_buf; !why && (p = strstr(p, "lock:\t")) != NULL; p++) {
		struct cs_image_lock l;
		why = parse_lock(p + 6, &l);
		if (why && !*why) {
			why = NULL;
			continue;
		}
		if (!why && f->n_locks == CS_IMAGE_LOCKS_MAX)
			why = "more file locks than an image holds";
		if (!why && l.kind == CS_LOCK_POSIX && mapped(c, id->dev, id->ino))
			why = "a POSIX lock on a file the process also maps (the restore would "
			      "drop it)";
		if (!why)
			f->locks[f->n_locks++] = l;
	}
	if (why)
		cs_fd_unsupported(c, f, why);
}

/* eventfd, timerfd, signalfd, epoll: their state is in fdinfo. */
static void anon_inode(struct cs_capture *c, struct cs_image_fd *f)
{
	char path[64];
	if (cs_scratch_grow((void **)&info_buf, &info_cap, 1, 1u << 20)) {
		cs_fd_unsupported(c, f, "no memory for fdinfo");
		return;
	}
	fdinfo_path(path, f->fd);
	char *info = info_buf;
	if (cs_read_file(path, info, info_cap) < 0) {
		cs_fd_unsupported(c, f, "fdinfo unreadable");
		return;
	}
	if (strstr(f->path, "[eventfd]")) {
		f->type = CS_FD_EVENTFD;
		f->eventfd_count = field_u64(info, "eventfd-count:", 16);
		f->eventfd_flags = (f->open_flags & O_NONBLOCK) ? O_NONBLOCK : 0;
		if (field_u64(info, "eventfd-semaphore:", 10))
			f->eventfd_flags |= 1; /* EFD_SEMAPHORE */
	} else if (strstr(f->path, "[timerfd]")) {
		f->type = CS_FD_TIMERFD;
		f->timer_clockid = (int32_t)field_u64(info, "clockid:", 10);
		f->timer_flags = (uint32_t)field_u64(info, "settime flags:", 8);
		f->timer_value_ns = timespec_field(info, "it_value:");
		f->timer_interval_ns = timespec_field(info, "it_interval:");
	} else if (strstr(f->path, "[signalfd]")) {
		f->type = CS_FD_SIGNALFD;
		f->eventfd_count = field_u64(info, "sigmask:", 16);
	} else if (strstr(f->path, "inotify")) {
		cs_inotify_capture(c, f, info);
	} else if (strstr(f->path, "[eventpoll]")) {
		f->type = CS_FD_EPOLL;
		epoll_entries(c, f, info);
	} else {
		cs_fd_unsupported(c, f, "unsupported kind of anonymous inode");
	}
}

/* /dev/ptmx and /dev/tty (major 5, minors 2 and 0), the pts slaves
 * (majors 136-143): a terminal's other end is another process or the
 * kernel's line discipline, neither of which a restore can bring back.
 * stdio (fds 0-2) is exempt: a restore gives the program the restoring
 * tool's own. */
static int is_terminal(dev_t rdev)
{
	unsigned maj = major(rdev), min = minor(rdev);
	return (maj == 5 && (min == 0 || min == 2)) || (maj >= 136 && maj <= 143);
}

static void classify(struct cs_capture *c, struct cs_image_fd *f, struct cs_fd_ident *id)
{
	char path[64];
	struct stat st;
	cs_strlcpy(path, "/proc/self/fd/", sizeof(path));
	cs_fmt_u64(path + strlen(path), (uint64_t)f->fd);
	ssize_t n = readlink(path, f->path, sizeof(f->path) - 1);
	f->path[n > 0 ? n : 0] = 0;
	f->fd_flags = (uint32_t)fcntl(f->fd, F_GETFD);
	f->open_flags = (uint32_t)fcntl(f->fd, F_GETFL);
	if (fstat(f->fd, &st)) {
		cs_fd_unsupported(c, f, "fstat failed");
		return;
	}
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = (uint64_t)st.st_size;
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISCHR(st.st_mode)) {
		f->type = S_ISREG(st.st_mode)   ? CS_FD_REGULAR
		          : S_ISDIR(st.st_mode) ? CS_FD_DIRECTORY
		                                : CS_FD_CHARDEV;
		off_t off = lseek(f->fd, 0, SEEK_CUR);
		f->offset = off > 0 ? (uint64_t)off : 0;
		file_locks(c, f, id);
		if (S_ISCHR(st.st_mode) && f->fd > 2 && is_terminal(st.st_rdev))
			cs_fd_unsupported(
			    c, f,
			    "a pseudo-terminal or the controlling terminal: its other end "
			    "and line state are not restored");
		else if (S_ISREG(st.st_mode) && strstr(f->path, " (deleted)"))
			cs_tmpfile_classify(c, f, &st);
		else if (strstr(f->path, " (deleted)"))
			cs_fd_unsupported(c, f, "the file was deleted");
		else if (f->path[0] != '/')
			cs_fd_unsupported(c, f, "not reachable by path");
	} else if (S_ISFIFO(st.st_mode)) {
		f->type = strncmp(f->path, "pipe:", 5) ? CS_FD_FIFO : CS_FD_PIPE;
		f->pipe_id = st.st_ino;
		int size = fcntl(f->fd, F_GETPIPE_SZ);
		f->pipe_size = size > 0 ? (uint32_t)size : 0;
		if (f->type == CS_FD_FIFO && strstr(f->path, " (deleted)"))
			cs_fd_unsupported(c, f, "named FIFO whose path was removed");
		else if (f->type == CS_FD_FIFO && f->path[0] != '/')
			cs_fd_unsupported(c, f, "not reachable by path");
	} else if (S_ISSOCK(st.st_mode)) {
		cs_socket_capture(c, f);
	} else if (!strncmp(f->path, "anon_inode:", 11)) {
		anon_inode(c, f);
	} else {
		cs_fd_unsupported(c, f, "unsupported file type");
	}
}

static int list_fds(struct cs_agent *a, struct cs_capture *c)
{
	char buf[4096];
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	long n;
	while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			unsigned short reclen;
			memcpy(&reclen, buf + off + 16, sizeof(reclen));
			const char *p = buf + off + 19;
			off += reclen;
			uint64_t fd;
			if (cs_parse_u64(&p, &fd, 10) || (int)fd == dfd)
				continue;
			if (c->n_fds >= CS_MAX_FDS) {
				close(dfd);
				return -EMFILE;
			}
			/* insertion sort: the image wants fds in ascending order */
			uint32_t i = c->n_fds++;
			while (i && c->fds[i - 1].fd > (int32_t)fd) {
				c->fds[i].fd = c->fds[i - 1].fd;
				i--;
			}
			c->fds[i].fd = (int32_t)fd;
		}
	}
	close(dfd);
	(void)a;
	return n < 0 ? -errno : 0;
}

/* kcmp(KCMP_FILE): 0 when both fds hold the same open file description. */
static int same_description(int a, int b)
{
	pid_t pid = getpid();
	return syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b) == 0;
}

/* Whether a restore makes f: fds 0-2 are the restoring tool's own, the
 * agent's are made by the restored agent, a refused one is never made. */
static int made_by_restore(const struct cs_image_fd *f)
{
	return f->fd > 2 && f->type != CS_FD_AGENT && f->type != CS_FD_UNSUPPORTED;
}

/*
 * share_fd: the lowest fd that holds the same open file description (a
 * dup), so a restore shares offset and flags as the program did. Only fds
 * of the same inode can share one; fds 0-2 are the restoring tool's own, so
 * they neither share nor are shared.
 */
static void find_shared(struct cs_capture *c)
{
	for (uint32_t i = 0; i < c->n_fds; i++) {
		struct cs_image_fd *f = &c->fds[i];
		if (!made_by_restore(f))
			continue;
		for (uint32_t j = 0; j < i; j++) {
			const struct cs_image_fd *g = &c->fds[j];
			if (g->fd > 2 && g->share_fd < 0 && g->type == f->type &&
			    idents[j].dev == idents[i].dev && idents[j].ino == idents[i].ino &&
			    same_description(g->fd, f->fd)) {
				f->share_fd = g->fd;
				break;
			}
		}
	}
}

/* kcmp(KCMP_EPOLL_TFD): 0 when fd holds the file registered in epoll efd
 * under tfd (the toff-th registration with that number). */
static int watches(int fd, int efd, int32_t tfd, uint32_t toff)
{
	struct {
		uint32_t efd, tfd, toff;
	} slot = {(uint32_t)efd, (uint32_t)tfd, toff};
	pid_t pid = getpid();
	long r = syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, fd, &slot);
	return r == 0 || (r < 0 && errno == ENOSYS); /* no kcmp: trust the number */
}

/* Whether fd is listed (list_fds sorts them) and made by the restore. */
static int restored_fd(const struct cs_capture *c, int32_t fd)
{
	uint32_t lo = 0, hi = c->n_fds;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (c->fds[mid].fd < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n_fds && c->fds[lo].fd == fd && made_by_restore(&c->fds[lo]);
}

/*
 * A registration is keyed by the file and the fd number it was added with;
 * a program may close that number (or reuse it) while the file stays open
 * at another fd. The restore registers such a file through the number it
 * was added with for a moment, so src_fd names the fd that holds it now.
 */
static int epoll_sources(const struct cs_capture *c, const struct cs_image_fd *f,
                         struct cs_image_epoll_entry *e, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		uint32_t toff = 0;
		for (uint32_t j = 0; j < k; j++)
			toff += e[j].tfd == e[k].tfd;
		/* the number alone is not enough: an fd missing from the list
		 * (or the agent's) would leave the restore nothing to add */
		if (restored_fd(c, e[k].tfd) && watches(e[k].tfd, f->fd, e[k].tfd, toff))
			continue;
		e[k].src_fd = -1;
		for (uint32_t i = 0; i < c->n_fds && e[k].src_fd < 0; i++)
			if (made_by_restore(&c->fds[i]) &&
			    watches(c->fds[i].fd, f->fd, e[k].tfd, toff))
				e[k].src_fd = c->fds[i].fd;
		if (e[k].src_fd < 0)
			return e[k].tfd;
	}
	return -1;
}

/* Each registration of each epoll fd, against the fds captured. */
static void epoll_check(struct cs_capture *c)
{
	for (uint32_t i = 0; i < c->n_fds; i++) {
		struct cs_image_fd *f = &c->fds[i];
		if (f->type != CS_FD_EPOLL || f->share_fd >= 0 || !f->n_epoll)
			continue;
		/* f->epoll is still an offset into the pool */
		struct cs_image_epoll_entry *e = (void *)(c->fd_pool + (uintptr_t)f->epoll);
		int32_t lost = epoll_sources(c, f, e, f->n_epoll);
		if (lost >= 0) {
			char what[CS_ERR_MAX], num[24];
			cs_strlcpy(what, "registered fd ", sizeof(what));
			cs_fmt_u64(num, (uint64_t)lost);
			cs_strlcat(what, num, sizeof(what));
			cs_strlcat(what,
			           ": the file it watches is not open at any fd the restore makes",
			           sizeof(what));
			cs_fd_unsupported(c, f, what);
		}
	}
}

/* A socketpair end whose peer is a socket outside the process cannot be
 * rebuilt as a pair: it comes back as a connection that was reset. The
 * queue of each end that is rebuilt is saved with its first fd. */
static void socketpairs(struct cs_capture *c)
{
	for (uint32_t i = 0; i < c->n_fds; i++) {
		struct cs_image_fd *f = &c->fds[i];
		if (f->type != CS_FD_SOCKETPAIR)
			continue;
		uint32_t j = 0;
		while (f->peer_id && j < c->n_fds &&
		       !(c->fds[j].type == CS_FD_SOCKETPAIR && c->fds[j].pipe_id == f->peer_id))
			j++;
		if (f->peer_id && j == c->n_fds) {
			f->type = CS_FD_SOCKET_CONNECTED;
			f->peer_id = 0;
			f->n_sockopts = 0;
		}
	}
	for (uint32_t i = 0; i < c->n_fds; i++)
		if (c->fds[i].type == CS_FD_SOCKETPAIR && c->fds[i].share_fd < 0 &&
		    c->fds[i].fd > 2)
			cs_socket_queue(c, &c->fds[i]);
}

/* A pipe's pending bytes go into the image once, with its lowest read end
 * that is not a duplicate: the restore writes them once per pipe. */
static void pipes_data(struct cs_agent *a, struct cs_capture *c)
{
	for (uint32_t i = 0; i < c->n_fds; i++) {
		struct cs_image_fd *f = &c->fds[i];
		if ((f->type != CS_FD_PIPE && f->type != CS_FD_FIFO) || f->fd <= 2 ||
		    f->share_fd >= 0 || (f->open_flags & O_ACCMODE) == O_WRONLY)
			continue;
		uint32_t j = 0;
		while (j < i && !(c->fds[j].type == f->type && c->fds[j].fd > 2 &&
		                  c->fds[j].pipe_id == f->pipe_id &&
		                  (c->fds[j].open_flags & O_ACCMODE) != O_WRONLY))
			j++;
		if (j == i)
			pipe_data(a, c, f);
	}
}

int cs_fds_capture(struct cs_agent *a, struct cs_capture *c)
{
	if (!c->fds) {
		c->fds = cs_scratch_alloc(CS_MAX_FDS * sizeof(*c->fds), 0);
		if (!c->fds)
			return -ENOMEM;
	}
	if (!idents && !(idents = cs_scratch_alloc(CS_MAX_FDS * sizeof(*idents), 0)))
		return -ENOMEM;
	c->n_fds = 0;
	c->fd_pool_len = 0;
	int r = list_fds(a, c);
	if (r)
		return r;
	for (uint32_t i = 0; i < c->n_fds; i++) {
		struct cs_image_fd *f = &c->fds[i];
		int32_t fd = f->fd;
		memset(f, 0, sizeof(*f));
		memset(&idents[i], 0, sizeof(idents[i]));
		f->fd = fd;
		f->share_fd = -1;
		if (cs_fd_is_agent(a, fd)) {
			f->type = CS_FD_AGENT;
			continue;
		}
		classify(c, f, &idents[i]);
	}
	cs_sockets_done();
	find_shared(c);
	epoll_check(c);
	pipes_data(a, c);
	socketpairs(c);
	cs_tmpfiles_content(c, idents);
	/* The pool may have moved while it grew: offsets become pointers now. */
	for (uint32_t i = 0; i < c->n_fds; i++) {
		struct cs_image_fd *f = &c->fds[i];
		if (f->pipe_data_len)
			f->pipe_data = c->fd_pool + (uintptr_t)f->pipe_data;
		else
			f->pipe_data = NULL;
		if (f->n_epoll)
			f->epoll = (const void *)(c->fd_pool + (uintptr_t)f->epoll);
		else
			f->epoll = NULL;
		if (f->file_data_len)
			f->file_data = c->fd_pool + (uintptr_t)f->file_data;
		else
			f->file_data = NULL;
		f->filter = f->filter_len ? c->fd_pool + (uintptr_t)f->filter : NULL;
	}
	return 0;
}
