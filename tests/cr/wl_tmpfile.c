/*
 * tmpfile: open files without a name, as programs keep temporary files.
 *
 *   st    stdio's tmpfile(), 100-300 KiB written, positioned in the middle
 *   rw    created in DIR with mode 0640, written, unlinked, offset 1234;
 *         a dup() of it (one open file description: a shared offset)
 *   log   O_WRONLY | O_APPEND, unlinked, "abc" in it
 *   otmp  open(DIR, O_TMPFILE | O_RDWR, 0600), 5000 bytes
 *   O_PATH fds (no offset, no status flags) of a named file and of DIR
 *   --big-mib N: one more unlinked file of N MiB, which checksync refuses
 *         at checkpoint above its limit
 *   --twice 1: rw opened a second time through /proc/self/fd (another open
 *         file description of the same file), which checksync refuses
 *
 * DIR is the directory of $CR_RESULT. At verify each file must have its
 * content, size, offset, mode, access mode and O_APPEND, still no name
 * (st_nlink 0), the dup must share its offset, and writes must land.
 */
#include "wl_common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static FILE *st;
static int rw, rw_dup, logfd, otmp, path_file, path_dir;
static ino_t plain_ino, dir_ino;
static uint8_t st_bytes[300 << 10], rw_bytes[20000], otmp_bytes[5000];
static size_t st_len;

static void put(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		wl_die("write");
}

static int unlinked(const char *dir, const char *name, int flags, mode_t mode)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, flags | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || fchmod(fd, mode) || unlink(path))
		wl_die(path);
	return fd;
}

static void big(const char *dir, uint64_t mib)
{
	int fd = unlinked(dir, "big", O_RDWR, 0600);
	if (ftruncate(fd, (off_t)(mib << 20)))
		wl_die("ftruncate");
}

static void setup(const char *dir, uint64_t seed)
{
	st = tmpfile();
	st_len = (100 << 10) + wl_rand(&seed) % (200 << 10);
	wl_fill(st_bytes, st_len, &seed);
	if (!st || fwrite(st_bytes, 1, st_len, st) != st_len || fflush(st) ||
	    fseek(st, (long)st_len / 2, SEEK_SET))
		wl_die("tmpfile");
	wl_fill(rw_bytes, sizeof(rw_bytes), &seed);
	rw = unlinked(dir, "rw", O_RDWR, 0640);
	put(rw, rw_bytes, sizeof(rw_bytes));
	lseek(rw, 1234, SEEK_SET);
	rw_dup = dup(rw);
	logfd = unlinked(dir, "log", O_WRONLY | O_APPEND, 0600);
	put(logfd, "abc", 3);
	otmp = open(dir, O_TMPFILE | O_RDWR, 0600);
	wl_fill(otmp_bytes, sizeof(otmp_bytes), &seed);
	if (otmp < 0)
		wl_die("O_TMPFILE");
	put(otmp, otmp_bytes, sizeof(otmp_bytes));
	char plain[4200];
	struct stat s;
	snprintf(plain, sizeof(plain), "%s/plain", dir);
	close(open(plain, O_CREAT | O_WRONLY, 0600));
	path_file = open(plain, O_PATH);
	path_dir = open(dir, O_PATH | O_DIRECTORY);
	if (path_file < 0 || path_dir < 0 || fstat(path_file, &s))
		wl_die("O_PATH");
	plain_ino = s.st_ino;
	fstat(path_dir, &s);
	dir_ino = s.st_ino;
}

static void check_opath(int fd, ino_t ino, const char *name)
{
	struct stat s = {0};
	fstat(fd, &s);
	wl_expect(fcntl(fd, F_GETFL) & O_PATH, "%s: not O_PATH any more", name);
	wl_expect(s.st_ino == ino, "%s: inode %lu, want %lu", name, (unsigned long)s.st_ino,
	          (unsigned long)ino);
}

static void check_content(int fd, const uint8_t *want, size_t len, const char *name)
{
	static uint8_t got[sizeof(st_bytes) + 1];
	struct stat s = {0};
	fstat(fd, &s);
	wl_expect(s.st_nlink == 0, "%s: has a name again (st_nlink %lu)", name,
	          (unsigned long)s.st_nlink);
	wl_expect((size_t)s.st_size == len, "%s: %lld bytes, want %zu", name, (long long)s.st_size,
	          len);
	ssize_t n = pread(fd, got, sizeof(got), 0);
	wl_expect(n == (ssize_t)len && !memcmp(got, want, len), "%s: content differs (%zd bytes)",
	          name, n);
}

static void verify(void)
{
	struct stat s = {0};
	check_content(fileno(st), st_bytes, st_len, "tmpfile()");
	wl_expect(ftell(st) == (long)st_len / 2, "tmpfile(): position %ld, want %zu", ftell(st),
	          st_len / 2);
	check_content(rw, rw_bytes, sizeof(rw_bytes), "rw");
	wl_expect(lseek(rw, 0, SEEK_CUR) == 1234, "rw: offset %lld, want 1234",
	          (long long)lseek(rw, 0, SEEK_CUR));
	fstat(rw, &s);
	wl_expect((s.st_mode & 07777) == 0640, "rw: mode %o, want 640", s.st_mode & 07777);
	wl_expect((fcntl(rw, F_GETFL) & O_ACCMODE) == O_RDWR, "rw: not O_RDWR");
	lseek(rw_dup, 99, SEEK_SET);
	wl_expect(lseek(rw, 0, SEEK_CUR) == 99, "rw: its dup no longer shares the offset");
	wl_expect(syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, rw, rw_dup) == 0,
	          "rw: the dup is another open file description");
	int fl = fcntl(logfd, F_GETFL);
	wl_expect((fl & O_ACCMODE) == O_WRONLY && (fl & O_APPEND), "log: flags %#x", fl);
	put(logfd, "def", 3);
	fstat(logfd, &s);
	wl_expect(s.st_size == 6, "log: %lld bytes after an append, want 6", (long long)s.st_size);
	check_content(otmp, otmp_bytes, sizeof(otmp_bytes), "O_TMPFILE");
	check_opath(path_file, plain_ino, "O_PATH file");
	check_opath(path_dir, dir_ino, "O_PATH directory");
	wl_expect(lseek(otmp, 0, SEEK_CUR) == (off_t)sizeof(otmp_bytes), "O_TMPFILE: offset %lld",
	          (long long)lseek(otmp, 0, SEEK_CUR));
}

int main(int argc, char **argv)
{
	uint64_t n = 0, seed = wl_opt(argc, argv, "--seed", 1);
	const char *dir = wl_work_dir();
	wl_init("tmpfile");
	setup(dir, seed);
	if (wl_opt(argc, argv, "--twice", 0)) {
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", rw);
		if (open(self, O_RDONLY) < 0)
			wl_die(self);
	}
	if (wl_opt(argc, argv, "--big-mib", 0))
		big(dir, wl_opt(argc, argv, "--big-mib", 0));
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify();
	wl_finish(!wl_failures(), n, "tmpfile=%zu %s", st_len, wl_first_failure());
}
