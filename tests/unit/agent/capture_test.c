/*
 * libchecksync capture, from inside a real process: run by capture_test.py
 * with CHECKSYNC_DIR set, in uffd and in hash mode. Each check prints what
 * it saw and the test fails on the first wrong answer.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksync.h"
#include "image.h"

#define HEAP (64u << 20)
#define K 100

static const char *dir;
static int failures;

#define CHECK(cond, ...)                                                                    \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                \
			fprintf(stderr, __VA_ARGS__);                                       \
			fputc('\n', stderr);                                                \
			failures++;                                                         \
		}                                                                           \
	} while (0)

static struct cs_image *load(uint64_t gen)
{
	char name[64], path[4200];
	cs_image_filename(name, sizeof(name), gen);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	fstat(fd, &st);
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	struct cs_image *img = NULL;
	struct cs_image_error err;
	int r = cs_image_parse(p, (size_t)st.st_size, 0, &img, &err);
	munmap(p, (size_t)st.st_size);
	if (r) {
		fprintf(stderr, "parse %s: %s\n", path, err.msg);
		return NULL;
	}
	return img;
}

static uint64_t page_count(const struct cs_image *img)
{
	uint64_t n = 0;
	for (size_t i = 0; i < img->n_page_runs; i++)
		n += img->page_runs[i].npages;
	return n;
}

static int resident_has(const struct cs_image *img, uint64_t addr)
{
	for (size_t i = 0; i < img->n_resident; i++)
		if (addr >= img->resident[i].addr &&
		    addr < img->resident[i].addr + (uint64_t)img->resident[i].npages * 4096)
			return 1;
	return 0;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static volatile int stop;

static void *sleeper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	while (!stop)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void *spinner(void *arg)
{
	volatile uint64_t *counter = arg;
	while (!stop)
		(*counter)++;
	return NULL;
}

static void check_threads(const struct cs_image *img, size_t want)
{
	CHECK(img->n_threads == want, "THREADS has %zu, want %zu", img->n_threads, want);
	int agents = 0, mains = 0;
	for (size_t i = 0; i < img->n_threads; i++) {
		agents += !!(img->threads[i].flags & CS_THREAD_AGENT);
		mains += !!(img->threads[i].flags & CS_THREAD_MAIN);
		CHECK(img->threads[i].ucontext_addr && img->threads[i].fs_base,
		      "thread %d has no ucontext or fs base", img->threads[i].tid);
		for (size_t j = 0; j < i; j++)
			CHECK(img->threads[i].ucontext_addr != img->threads[j].ucontext_addr &&
				      img->threads[i].tid != img->threads[j].tid,
			      "threads %zu and %zu share a ucontext or tid", i, j);
	}
	CHECK(agents == 1 && mains == 1, "%d agent and %d main threads", agents, mains);
}

/* Base, then K written pages give a delta of about K pages. */
static void test_delta(uint8_t *heap, const char *mode)
{
	uint64_t g1, g2;
	int r = cs_checkpoint(&g1);
	CHECK(r == 0, "first checkpoint: %d", r);
	struct cs_image *base = load(g1);
	CHECK(base, "base image %llu unreadable", (unsigned long long)g1);
	if (!base)
		return;
	CHECK(!(base->header.flags & CS_IMAGE_F_DELTA), "first image is a delta");
	CHECK(page_count(base) >= HEAP / 4096, "base holds %llu pages, heap alone is %u",
	      (unsigned long long)page_count(base), HEAP / 4096);
	CHECK(resident_has(base, (uint64_t)heap + HEAP / 2), "heap page not in RESIDENT");
	check_threads(base, 5);
	for (int i = 0; i < K; i++)
		heap[(size_t)i * 37 * 4096 % HEAP] ^= 0x5a;
	r = cs_checkpoint(&g2);
	CHECK(r == 0 && g2 > g1, "second checkpoint: %d, generation %llu after %llu", r,
	      (unsigned long long)g2, (unsigned long long)g1);
	struct cs_image *delta = load(g2);
	CHECK(delta, "delta image unreadable");
	if (delta) {
		uint64_t n = page_count(delta);
		printf("%s: base %llu pages, delta after %d writes %llu pages\n", mode,
		       (unsigned long long)page_count(base), K, (unsigned long long)n);
		CHECK(delta->header.flags & CS_IMAGE_F_DELTA, "second image is not a delta");
		CHECK(delta->header.parent_generation == g1, "delta parent %llu",
		      (unsigned long long)delta->header.parent_generation);
		uint32_t want = !strcmp(mode, "hash") ? CS_TRACK_HASH : CS_TRACK_UFFD_WP;
		CHECK(delta->header.tracking == want, "tracking %u, want %u",
		      delta->header.tracking, want);
		CHECK(n >= K && n < K + 1000, "delta holds %llu pages for %d written",
		      (unsigned long long)n, K);
		check_threads(delta, 5);
		cs_image_free(delta);
	}
	cs_image_free(base);
}

static void test_unsupported(void)
{
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	CHECK(nl >= 0, "netlink socket: %s", strerror(errno));
	uint64_t g;
	int r = cs_checkpoint(&g);
	struct cs_stats st;
	cs_stats(&st);
	CHECK(r == -ENOTSUP, "checkpoint with a netlink fd returned %d (%s)", r, st.last_error);
	CHECK(strstr(st.last_error, "netlink"), "error does not name the netlink fd: %s",
	      st.last_error);
	struct cs_image *img = load(g);
	CHECK(img, "image with unsupported fd unreadable");
	int named = 0;
	for (size_t i = 0; img && i < img->n_unsupported; i++)
		named |= !!strstr(img->unsupported[i].what, "netlink");
	CHECK(named, "UNSUPPORTED does not name the netlink socket");
	for (size_t i = 0; img && i < img->n_fds; i++)
		if (img->fds[i].fd == nl)
			CHECK(img->fds[i].type == CS_FD_UNSUPPORTED, "netlink fd has type %u",
			      img->fds[i].type);
	cs_image_free(img);
	close(nl);

	/* A shared writable mapping of a file is named too; cs_sync shares the
	 * path. (Shared memory that is no file is captured: test_shmem.) */
	char path[] = "/tmp/capture-test-shared-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0 && ftruncate(fd, 4096) == 0, "temporary file: %s", strerror(errno));
	void *shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	r = cs_sync(&g);
	cs_stats(&st);
	CHECK(r == -ENOTSUP && strstr(st.last_error, "shared writable"),
	      "shared writable mapping: %d (%s)", r, st.last_error);
	munmap(shm, 4096);
	close(fd);
	unlink(path);
}

static int pages_have(const struct cs_image *img, uint64_t addr)
{
	for (size_t i = 0; i < img->n_page_runs; i++)
		if (addr >= img->page_runs[i].addr &&
		    addr < img->page_runs[i].addr + (uint64_t)img->page_runs[i].npages * 4096)
			return 1;
	return 0;
}

/* MAP_SHARED | MAP_ANONYMOUS memory: flag SHMEM, its written pages in
 * the image (a delta too: they are not tracked), zero pages not. */
static void test_shmem(void)
{
	uint8_t *p =
	    mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(p, 7, 4096);
	p[2 * 4096] = 1;
	for (int round = 0; round < 2; round++) {
		uint64_t g;
		int r = cs_checkpoint(&g);
		CHECK(r == 0, "checkpoint with shared anonymous memory: %d", r);
		struct cs_image *img = load(g);
		int flagged = 0;
		for (size_t i = 0; img && i < img->n_mappings; i++)
			if (img->mappings[i].start == (uint64_t)p)
				flagged = !!(img->mappings[i].flags & CS_MAP_SHMEM);
		CHECK(flagged, "round %d: the shared mapping is not SHMEM", round);
		CHECK(img && pages_have(img, (uint64_t)p) && pages_have(img, (uint64_t)p + 8192) &&
		          !pages_have(img, (uint64_t)p + 4096) &&
		          !resident_has(img, (uint64_t)p + 4096),
		      "round %d: shared pages missing from the image, or its zero page in it",
		      round);
		cs_image_free(img);
	}
	munmap(p, 3 * 4096);
}

/* Pages written and then made unreadable are still live data. */
static void test_prot_none(void)
{
	uint8_t *p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(p, 7, 4 * 4096);
	mprotect(p, 4 * 4096, PROT_NONE);
	uint64_t g;
	int r = cs_checkpoint(&g);
	CHECK(r == 0, "checkpoint with a PROT_NONE mapping: %d", r);
	struct cs_image *img = load(g);
	CHECK(img && resident_has(img, (uint64_t)p) && pages_have(img, (uint64_t)p + 3 * 4096),
	      "written PROT_NONE pages missing from the image");
	cs_image_free(img);
	munmap(p, 4 * 4096);
}

/* Kills the agent's image writer (the only child of this process) when it
 * appears. */
static volatile int killer_on, killed;

static void *killer(void *arg)
{
	(void)arg;
	while (killer_on && !killed) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			char path[300], buf[64];
			snprintf(path, sizeof(path), "/proc/self/task/%s/children", e->d_name);
			FILE *f = fopen(path, "r");
			if (!f)
				continue;
			int pid;
			if (fgets(buf, sizeof(buf), f) && sscanf(buf, "%d", &pid) == 1 &&
			    kill(pid, SIGKILL) == 0)
				killed = 1;
			fclose(f);
		}
		if (d)
			closedir(d);
	}
	return NULL;
}

static int exists(uint64_t gen, const char *suffix)
{
	char name[64], path[4200];
	cs_image_filename(name, sizeof(name), gen);
	snprintf(path, sizeof(path), "%s/%s%s", dir, name, suffix);
	return access(path, F_OK) == 0;
}

/* A writer killed half way leaves the previous generation complete and no
 * trace of its own; the next checkpoint is a base. */
static void test_killed_writer(uint8_t *heap)
{
	uint64_t good, g = 0;
	int r = cs_checkpoint(&good);
	CHECK(r == 0, "checkpoint before the kill: %d", r);
	pthread_t t;
	killer_on = 1;
	killed = 0;
	pthread_create(&t, NULL, killer, NULL);
	for (int i = 0; i < 10 && !killed; i++) {
		memset(heap, i, HEAP); /* a big image: the writer lives long enough */
		r = cs_checkpoint(&g);
		if (!killed)
			good = g;
	}
	killer_on = 0;
	pthread_join(t, NULL);
	CHECK(killed, "the writer was never caught alive");
	if (!killed)
		return;
	struct cs_stats st;
	cs_stats(&st);
	printf("killed writer: checkpoint returned %d (%s)\n", r, st.last_error);
	CHECK(r < 0, "checkpoint with a killed writer returned %d", r);
	struct cs_image *img = load(good);
	CHECK(img, "generation %llu before the kill is not complete", (unsigned long long)good);
	cs_image_free(img);
	CHECK(!exists(good + 1, "") && !exists(good + 1, ".tmp"),
	      "the killed generation %llu left a file", (unsigned long long)good + 1);
	r = cs_checkpoint(&g);
	CHECK(r == 0, "checkpoint after the kill: %d", r);
	img = load(g);
	CHECK(img && !(img->header.flags & CS_IMAGE_F_DELTA), "checkpoint after a failure is not a base");
	cs_image_free(img);
}

int main(int argc, char **argv)
{
	dir = getenv("CHECKSYNC_DIR");
	const char *mode = argc > 1 ? argv[1] : "uffd";
	CHECK(cs_enabled(), "agent not running");
	if (!cs_enabled())
		return 1;
	uint8_t *heap = mmap(NULL, HEAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(heap, 1, HEAP);
	pthread_t t[3];
	static volatile uint64_t counter;
	pthread_create(&t[0], NULL, sleeper, NULL);
	pthread_create(&t[1], NULL, sleeper, NULL);
	pthread_create(&t[2], NULL, spinner, (void *)&counter);
	test_delta(heap, mode);
	test_unsupported();
	test_shmem();
	test_prot_none();
	test_killed_writer(heap);
	struct cs_stats st;
	CHECK(cs_stats(&st) == 0, "cs_stats");
	CHECK(st.tracking == (!strcmp(mode, "hash") ? CS_TRACKING_HASH : CS_TRACKING_UFFD),
	      "tracking %d", st.tracking);
	printf("%s: %llu checkpoints, last pause %llu us, max pause %llu us\n", mode,
	       (unsigned long long)st.checkpoints, (unsigned long long)st.last_pause_ns / 1000,
	       (unsigned long long)st.max_pause_ns / 1000);
	pthread_mutex_lock(&mu);
	stop = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
