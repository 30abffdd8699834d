/*
 * pipes: the state of pipes exactly as the program left it.
 *
 *   A  10-40 pending bytes; its read end dup()'d (one open file description
 *      for two fds) and made O_NONBLOCK through the duplicate.
 *   B  no bytes; a second read end opened through /proc/self/fd (its own
 *      open file description): only that one is O_NONBLOCK.
 *   C  grown to 256 KiB with 100-200 KiB pending (more than a default pipe
 *      holds).
 *   D  shrunk to one page.
 *   E  a named FIFO in DIR (the directory of $CR_RESULT): a read end
 *      (O_NONBLOCK) and its dup, a write end, 17 pending bytes.
 *
 *   F  one pending byte; an epoll set watches its read end by a number the
 *      program then closed and reused for an eventfd (the registration
 *      stays: the file is still open at f[0]).
 *
 * --epoll-lost 1: one more registration whose file only a child process
 *   holds, which checksync refuses at checkpoint (no fd of the restored
 *   process can stand for it).
 *
 * At verify: each pipe holds exactly its bytes, once (A read through its
 * duplicate must not find them twice), the flags are per description as
 * set, the duplicates still share their description (kcmp), the separate
 * ends do not, and each pipe has its size.
 */
#include "wl_common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define C_SIZE (256 << 10)

static int f_pipe[2], ep, ep_num;
static int a[2], a_dup, b[2], b_other, c[2], d[2], e_rd, e_rd_dup, e_wr;
static char fifo[4200];
static const uint8_t e_bytes[17] = "seventeen bytes!";
static uint8_t a_bytes[64], c_bytes[200 << 10];
static size_t a_len, c_len;

static int same_description(int x, int y)
{
	return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, x, y) == 0;
}

static int nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

static void setup_fifo(void)
{
	snprintf(fifo, sizeof(fifo), "%s/fifo", wl_work_dir());
	unlink(fifo);
	if (mkfifo(fifo, 0600))
		exit(2);
	e_rd = open(fifo, O_RDONLY | O_NONBLOCK);
	e_wr = open(fifo, O_WRONLY);
	e_rd_dup = dup(e_rd);
	if (e_rd < 0 || e_wr < 0 || write(e_wr, e_bytes, sizeof(e_bytes)) != sizeof(e_bytes))
		exit(2);
}

/* F: registered through a number that now holds an eventfd. */
static void setup_epoll(int lost)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xf00d};
	if (pipe(f_pipe) || write(f_pipe[1], "f", 1) != 1 || (ep = epoll_create1(0)) < 0)
		wl_die("F");
	ep_num = dup(f_pipe[0]);
	if (ep_num < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ep_num, &ev) || close(ep_num) ||
	    eventfd(5, 0) != ep_num)
		wl_die("F: registration by a reused number");
	if (lost) {
		int q[2];
		if (pipe(q) || epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &ev))
			wl_die("lost");
		if (fork() == 0)
			for (;;)
				pause();
		close(q[0]);
		close(q[1]);
	}
}

static void check_epoll(void)
{
	struct epoll_event ev = {0};
	uint64_t count = 0;
	wl_expect(epoll_wait(ep, &ev, 1, 0) == 1 && ev.data.u64 == 0xf00d,
	          "F: epoll does not report its read end (registered by fd %d)", ep_num);
	wl_expect(read(ep_num, &count, 8) == 8 && count == 5,
	          "F: fd %d no longer holds the eventfd (count %llu)", ep_num,
	          (unsigned long long)count);
	int r = epoll_ctl(ep, EPOLL_CTL_DEL, ep_num, &ev), e = errno;
	wl_expect(r < 0 && e == ENOENT,
	          "F: deleting fd %d (the eventfd) from the set: %s, want ENOENT", ep_num,
	          r < 0 ? strerror(e) : "it was there");
}

static void setup(uint64_t seed)
{
	char path[64];
	if (pipe(a) || pipe(b) || pipe(c) || pipe(d))
		exit(2);
	a_len = 10 + wl_rand(&seed) % 31;
	wl_fill(a_bytes, a_len, &seed);
	if (write(a[1], a_bytes, a_len) != (ssize_t)a_len)
		exit(2);
	a_dup = dup(a[0]);
	fcntl(a_dup, F_SETFL, O_NONBLOCK);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", b[0]);
	b_other = open(path, O_RDONLY | O_NONBLOCK);
	if (a_dup < 0 || b_other < 0 || fcntl(c[1], F_SETPIPE_SZ, C_SIZE) < 0 ||
	    fcntl(d[1], F_SETPIPE_SZ, 4096) < 0)
		exit(2);
	c_len = (100 << 10) + wl_rand(&seed) % (100 << 10);
	wl_fill(c_bytes, c_len, &seed);
	if (write(c[1], c_bytes, c_len) != (ssize_t)c_len)
		exit(2);
}

/* Reads everything fd holds without blocking; the bytes must be want. */
static void drain(int fd, const uint8_t *want, size_t len, const char *name)
{
	static uint8_t got[sizeof(c_bytes) + 4096];
	size_t n = 0;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		ssize_t r = read(fd, got + n, sizeof(got) - n);
		if (r <= 0) {
			wl_expect(r < 0 && errno == EAGAIN, "pipe %s: read ended with %zd (%s)",
			          name, r, r < 0 ? strerror(errno) : "EOF");
			break;
		}
		n += (size_t)r;
	}
	wl_expect(n == len, "pipe %s holds %zu bytes, want %zu", name, n, len);
	wl_expect(n != len || memcmp(got, want, len) == 0, "pipe %s: bytes differ", name);
}

static void check_fifo(void)
{
	struct stat at_path, rd, wr;
	stat(fifo, &at_path);
	fstat(e_rd, &rd);
	fstat(e_wr, &wr);
	wl_expect(S_ISFIFO(rd.st_mode) && rd.st_ino == at_path.st_ino &&
	              wr.st_ino == at_path.st_ino,
	          "E: the fds are not the FIFO at %s any more", fifo);
	wl_expect(same_description(e_rd, e_rd_dup), "E: the dup no longer shares its description");
	wl_expect(nonblocking(e_rd) && !nonblocking(e_wr), "E: flags (%d, %d), want (1, 0)",
	          nonblocking(e_rd), nonblocking(e_wr));
	drain(e_rd, e_bytes, sizeof(e_bytes), "E");
	wl_expect(write(e_wr, "x", 1) == 1, "E: write end: %s", strerror(errno));
	drain(e_rd_dup, (const uint8_t *)"x", 1, "E (after a write)");
	unlink(fifo);
}

static void verify(void)
{
	wl_expect(same_description(a[0], a_dup), "A: the dup no longer shares its description");
	wl_expect(nonblocking(a[0]) && nonblocking(a_dup), "A: O_NONBLOCK not shared by the dup");
	wl_expect(!nonblocking(a[1]), "A: write end became O_NONBLOCK");
	wl_expect(!same_description(b[0], b_other), "B: the two read ends share a description");
	wl_expect(!nonblocking(b[0]) && nonblocking(b_other),
	          "B: O_NONBLOCK leaked (%d, %d), want (0, 1)", nonblocking(b[0]),
	          nonblocking(b_other));
	wl_expect(fcntl(c[0], F_GETPIPE_SZ) == C_SIZE, "C: size %d, want %d",
	          fcntl(c[0], F_GETPIPE_SZ), C_SIZE);
	wl_expect(fcntl(d[0], F_GETPIPE_SZ) == 4096, "D: size %d, want 4096",
	          fcntl(d[0], F_GETPIPE_SZ));
	drain(a_dup, a_bytes, a_len, "A");
	drain(a[0], NULL, 0, "A (again, through the other fd)");
	drain(b_other, NULL, 0, "B");
	drain(c[0], c_bytes, c_len, "C");
	check_fifo();
	check_epoll();
}

int main(int argc, char **argv)
{
	uint64_t seed = wl_opt(argc, argv, "--seed", 1), n = 0;
	wl_init("pipes");
	setup(seed);
	setup_fifo();
	setup_epoll((int)wl_opt(argc, argv, "--epoll-lost", 0));
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify();
	wl_finish(!wl_failures(), n, "a=%zu c=%zu %s", a_len, c_len, wl_first_failure());
}
