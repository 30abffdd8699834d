/*
 * locks: file locks and leases, held across the restore.
 *
 *   DIR/flock   flock LOCK_EX, through an fd and its dup
 *   DIR/posix   POSIX read lock on bytes 10-29, write lock from 100 to EOF
 *   DIR/ofd     OFD write lock on bytes 0-4
 *   DIR/lease   read lease, opened O_RDONLY
 *   --mapped 1: one more file, mapped and POSIX-locked, which checksync
 *               refuses at checkpoint (its restore would drop the lock)
 *
 * DIR is the directory of $CR_RESULT. At verify a child process (which
 * holds none of them) must find each lock in its way: flock LOCK_NB fails,
 * F_GETLK reports the POSIX and OFD locks with their ranges and nothing
 * outside them; the lease reads back with F_GETLEASE.
 */
#include "wl_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[4096];
static int fl, fl_dup, px, ofd, lease;

static int file(const char *name, int flags)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, flags | O_CREAT, 0600);
	if (fd < 0)
		wl_die(path);
	return fd;
}

static void lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	if (fcntl(fd, cmd, &l))
		wl_die("fcntl lock");
}

static void setup(int mapped)
{
	fl = file("flock", O_RDWR);
	fl_dup = dup(fl);
	if (flock(fl, LOCK_EX | LOCK_NB))
		wl_die("flock");
	px = file("posix", O_RDWR);
	lock(px, F_SETLK, F_RDLCK, 10, 20);
	lock(px, F_SETLK, F_WRLCK, 100, 0);
	ofd = file("ofd", O_RDWR);
	lock(ofd, F_OFD_SETLK, F_WRLCK, 0, 5);
	close(file("lease", O_RDONLY));
	lease = file("lease", O_RDONLY);
	if (fcntl(lease, F_SETLEASE, F_RDLCK))
		wl_die("F_SETLEASE");
	if (mapped) {
		int m = file("mapped", O_RDWR);
		if (ftruncate(m, 4096) ||
		    mmap(NULL, 4096, PROT_READ, MAP_SHARED, m, 0) == MAP_FAILED)
			wl_die("mapped");
		lock(m, F_SETLK, F_WRLCK, 0, 0);
	}
}

/* What another process finds: F_GETLK for a write lock on one byte. */
static int blocker(int fd, int cmd, off_t at)
{
	struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};
	if (fcntl(fd, cmd, &l))
		return -1;
	return l.l_type;
}

/* Runs in a child: exits with the number of the first failed check. */
static int child_checks(void)
{
	int f = file("flock", O_RDWR), p = file("posix", O_RDWR), o = file("ofd", O_RDWR);
	if (flock(f, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		return 1;
	if (blocker(p, F_GETLK, 15) != F_RDLCK || blocker(p, F_GETLK, 9) != F_UNLCK)
		return 2;
	if (blocker(p, F_GETLK, 50) != F_UNLCK || blocker(p, F_GETLK, 1 << 20) != F_WRLCK)
		return 3;
	if (blocker(o, F_OFD_GETLK, 4) != F_WRLCK || blocker(o, F_OFD_GETLK, 5) != F_UNLCK)
		return 4;
	return 0;
}

static void verify(void)
{
	static const char *const what[] = {
	    "", "flock: another process can take it", "POSIX read lock 10-29 is gone or moved",
	    "POSIX write lock 100-EOF is gone or moved", "OFD lock 0-4 is gone or moved"};
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_checks());
	int st = 0;
	waitpid(pid, &st, 0);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 9;
	wl_expect(code == 0, "%s", code < 5 ? what[code] : "the checking child died");
	wl_expect(fcntl(lease, F_GETLEASE) == F_RDLCK, "lease: F_GETLEASE %d, want F_RDLCK",
	          fcntl(lease, F_GETLEASE));
}

int main(int argc, char **argv)
{
	uint64_t n = 0;
	snprintf(dir, sizeof(dir), "%s", wl_work_dir());
	wl_init("locks");
	setup((int)wl_opt(argc, argv, "--mapped", 0));
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify();
	wl_finish(!wl_failures(), n, "%s", wl_first_failure());
}
