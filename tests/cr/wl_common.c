#include "wl_common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t verify_flag;
static uint64_t token;
static int64_t last_progress_ns;

static void on_usr1(int sig)
{
	(void)sig;
	verify_flag = 1;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void vsay(const char *fmt, va_list ap)
{
	char line[1024];
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	write_all(STDOUT_FILENO, line, (size_t)n);
}

void wl_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

void wl_init(const char *name)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0) {
		perror("sigaction");
		exit(2);
	}
	if (getrandom(&token, sizeof(token), 0) != sizeof(token))
		token = (uint64_t)wl_now_ns(CLOCK_MONOTONIC) ^ ((uint64_t)getpid() << 40);
	wl_say("ready %s token=%016llx pid=%d", name, (unsigned long long)token, (int)getpid());
}

int wl_verify_requested(void)
{
	return verify_flag != 0;
}

void wl_progress(uint64_t n)
{
	int64_t now = wl_now_ns(CLOCK_MONOTONIC);
	if (now - last_progress_ns < 100 * 1000000LL)
		return;
	last_progress_ns = now;
	wl_say("progress %llu token=%016llx", (unsigned long long)n, (unsigned long long)token);
}

void wl_finish(int ok, uint64_t progress, const char *fmt, ...)
{
	char detail[768], line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "verify %s progress=%llu token=%016llx %s", ok ? "ok" : "FAIL",
	         (unsigned long long)progress, (unsigned long long)token, detail);
	wl_say("%s", line);
	const char *path = getenv("CR_RESULT");
	if (path && *path) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			write_all(fd, line, strlen(line));
			write_all(fd, "\n", 1);
			close(fd);
		}
	}
	exit(ok ? 0 : 1);
}

static int failures;
static char first_failure[512];

void wl_expect(int ok, const char *fmt, ...)
{
	va_list ap;
	if (ok)
		return;
	if (failures++ == 0) {
		va_start(ap, fmt);
		vsnprintf(first_failure, sizeof(first_failure), fmt, ap);
		va_end(ap);
	}
}

int wl_failures(void)
{
	return failures;
}

const char *wl_first_failure(void)
{
	return first_failure;
}

void wl_die(const char *what)
{
	perror(what);
	exit(2);
}

void wl_fill(uint8_t *p, size_t n, uint64_t *seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)wl_rand(seed);
}

const char *wl_work_dir(void)
{
	static char dir[4096];
	const char *result = getenv("CR_RESULT");
	char *slash;
	snprintf(dir, sizeof(dir), "%s", result && *result ? result : "/tmp/x");
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return "/tmp";
	*slash = 0;
	return dir;
}

int64_t wl_now_ns(int clockid)
{
	struct timespec ts;
	clock_gettime(clockid, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void wl_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

uint64_t wl_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t wl_opt(int argc, char **argv, const char *name, uint64_t def)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return strtoull(argv[i + 1], NULL, 0);
	return def;
}
