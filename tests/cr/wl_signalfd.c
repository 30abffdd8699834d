/*
 * signalfd: a signalfd for SIGUSR2 and SIGRTMIN+3 (both blocked), another
 * for SIGWINCH made O_NONBLOCK.
 *
 * At verify the signalfds must still be signalfds with their masks
 * (fdinfo sigmask), flags as set, and deliver: SIGUSR2 and SIGRTMIN+3
 * raised now are read from the first one, with their numbers.
 */
#include "wl_common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int sfd, sfd_nb;
static sigset_t both, winch;

static unsigned long long fdinfo_mask(int fd)
{
	char path[64], buf[4096] = "";
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int f = open(path, O_RDONLY);
	if (f < 0 || read(f, buf, sizeof(buf) - 1) < 0)
		return 0;
	close(f);
	const char *p = strstr(buf, "sigmask:");
	return p ? strtoull(p + 8, NULL, 16) : 0;
}

static void setup(void)
{
	sigemptyset(&both);
	sigaddset(&both, SIGUSR2);
	sigaddset(&both, SIGRTMIN + 3);
	sigemptyset(&winch);
	sigaddset(&winch, SIGWINCH);
	sigprocmask(SIG_BLOCK, &both, NULL);
	sfd = signalfd(-1, &both, 0);
	sfd_nb = signalfd(-1, &winch, SFD_NONBLOCK);
	if (sfd < 0 || sfd_nb < 0)
		exit(2);
}

static int read_signo(int fd)
{
	struct signalfd_siginfo si;
	return read(fd, &si, sizeof(si)) == sizeof(si) ? (int)si.ssi_signo : -errno;
}

static void verify(void)
{
	unsigned long long want = (1ull << (SIGUSR2 - 1)) | (1ull << (SIGRTMIN + 3 - 1));
	wl_expect(fdinfo_mask(sfd) == want, "signalfd: mask %#llx, want %#llx", fdinfo_mask(sfd),
	          want);
	wl_expect(fdinfo_mask(sfd_nb) == 1ull << (SIGWINCH - 1), "second signalfd: mask %#llx",
	          fdinfo_mask(sfd_nb));
	wl_expect(!(fcntl(sfd, F_GETFL) & O_NONBLOCK) && (fcntl(sfd_nb, F_GETFL) & O_NONBLOCK),
	          "signalfd flags changed");
	raise(SIGUSR2);
	raise(SIGRTMIN + 3);
	int a = read_signo(sfd), b = read_signo(sfd);
	wl_expect(a == SIGUSR2 && b == SIGRTMIN + 3, "signalfd read %d then %d, want %d then %d", a,
	          b, SIGUSR2, SIGRTMIN + 3);
	wl_expect(read_signo(sfd_nb) == -EAGAIN, "second signalfd: not empty and non-blocking");
}

int main(void)
{
	uint64_t n = 0;
	wl_init("signalfd");
	setup();
	while (!wl_verify_requested()) {
		wl_sleep_ms(20);
		wl_progress(++n);
	}
	verify();
	wl_finish(!wl_failures(), n, "%s", wl_first_failure());
}
