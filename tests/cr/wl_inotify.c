/*
 * inotify: an instance with three watches on DIR (the directory of
 * $CR_RESULT): wd 1 DIR for IN_CREATE, wd 2 DIR/file for IN_MODIFY, wd 3
 * DIR/sub for IN_DELETE with IN_EXCL_UNLINK; the instance is O_NONBLOCK.
 *   --queued 1: an event is left unread, which checksync refuses at
 *               checkpoint (events cannot be read without consuming them)
 *   --gap 1:    watch 2 is removed, which checksync refuses (the restore
 *               hands out watch numbers from 1 with no gap)
 *
 * At verify nothing is queued, and creating DIR/new, writing DIR/file and
 * deleting DIR/sub/x give exactly one event each, with the right watch.
 */
#include "wl_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int in;
static char dir[4096], file[4200], sub[4200], subx[4300], fresh[4200];

static void drain(void)
{
	char buf[4096];
	while (read(in, buf, sizeof(buf)) > 0)
		;
}

static int queued_mode, gap_mode;

static void setup(int queued, int gap)
{
	snprintf(dir, sizeof(dir), "%s", wl_work_dir());
	snprintf(file, sizeof(file), "%s/file", dir);
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	snprintf(subx, sizeof(subx), "%s/sub/x", dir);
	snprintf(fresh, sizeof(fresh), "%s/new", dir);
	close(open(file, O_CREAT | O_WRONLY, 0600));
	mkdir(sub, 0700);
	close(open(subx, O_CREAT | O_WRONLY, 0600));
	in = inotify_init1(IN_NONBLOCK);
	if (in < 0 || inotify_add_watch(in, dir, IN_CREATE) != 1 ||
	    inotify_add_watch(in, file, IN_MODIFY) != 2 ||
	    inotify_add_watch(in, sub, IN_DELETE | IN_EXCL_UNLINK) != 3)
		wl_die("inotify");
	if ((queued_mode = queued))
		close(open(fresh, O_CREAT | O_WRONLY, 0600));
	if ((gap_mode = gap) && inotify_rm_watch(in, 2))
		wl_die("inotify_rm_watch");
	if (gap) /* the IN_IGNORED of the removed watch */
		drain();
}

/* The one event the action must give: its watch and mask. */
static void expect_event(int wd, uint32_t mask, const char *what)
{
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n = read(in, buf, sizeof(buf));
	const struct inotify_event *e = (const void *)buf;
	wl_expect(n > 0 && e->wd == wd && (e->mask & mask) && n == (ssize_t)(sizeof(*e) + e->len),
	          "%s: read %zd bytes, event wd %d mask %#x, want one event of wd %d mask %#x",
	          what, n, n > 0 ? e->wd : -1, n > 0 ? e->mask : 0, wd, mask);
}

static void verify(void)
{
	int queued = -1;
	if (queued_mode) { /* the event left unread, and DIR/new again */
		drain();
		unlink(fresh);
		drain();
	}
	ioctl(in, FIONREAD, &queued);
	wl_expect(queued == 0, "%d bytes of events queued before anything happened", queued);
	wl_expect(fcntl(in, F_GETFL) & O_NONBLOCK, "the instance is not O_NONBLOCK any more");
	close(open(fresh, O_CREAT | O_WRONLY, 0600));
	expect_event(1, IN_CREATE, "create DIR/new");
	int fd = open(file, O_WRONLY);
	if (fd < 0 || write(fd, "x", 1) != 1)
		wl_die("write");
	close(fd);
	if (!gap_mode) /* its watch was removed */
		expect_event(2, IN_MODIFY, "write DIR/file");
	unlink(subx);
	expect_event(3, IN_DELETE, "delete DIR/sub/x");
}

int main(int argc, char **argv)
{
	uint64_t n = 0;
	wl_init("inotify");
	setup((int)wl_opt(argc, argv, "--queued", 0), (int)wl_opt(argc, argv, "--gap", 0));
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify();
	wl_finish(!wl_failures(), n, "%s", wl_first_failure());
}
