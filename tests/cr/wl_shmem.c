/*
 * shmem: shared memory that is not a file on disk.
 *
 *   anon   MAP_SHARED | MAP_ANONYMOUS, 64 KiB of random bytes, and a second
 *          mapping of the same memory (mremap with old size 0)
 *   zero   MAP_SHARED of /dev/zero, 16 KiB, the fd closed
 *   memfd  memfd_create("cr-shm"), 10 pages + 100 bytes, mapped twice: all of
 *          it plus a page past its end (never touched: SIGBUS), and pages
 *          1-2 again; the fd closed unless --fd 1
 *   sparse 8 MiB of MAP_SHARED | MAP_ANONYMOUS with one page written: the
 *          checkpoints must not fill in the rest (mincore, checked as it
 *          runs: a capture that reads the holes allocates them)
 *   hidden a page of MAP_SHARED | MAP_ANONYMOUS made PROT_NONE after writing
 *   --fd 1 the memfd also stays open as an fd, with F_SEAL_SHRINK | F_SEAL_GROW
 *   --sealed-map 1: a second memfd sealed with F_SEAL_WRITE, mapped
 *          read-only and open as an fd, which checksync refuses
 *   --big-mib N: N MiB more of MAP_SHARED | MAP_ANONYMOUS, which checksync
 *          refuses at checkpoint above its limit
 *
 * The main loop counts without sleeping and stores its count in anon's
 * first word and in private memory, so a checkpoint must take both at the
 * same instant; each round checks that they agree (a restore that took the
 * shared word later than the private one fails its first round). At verify:
 * the contents, that the two mappings of anon and of the memfd still share
 * memory, the memfd's size, and for --fd that the fd is the mapped object
 * with its name and seals.
 */
#include "wl_common.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ANON_LEN  (64u << 10)
#define ZERO_LEN  (16u << 10)
#define PAGE      4096u
#define MEMFD_LEN (10 * PAGE + 100)

#define SPARSE_LEN (8u << 20)
#define SPARSE_AT  (4u << 20)

static uint8_t *anon, *anon2, *zero, *mfd, *mfd2, *sparse, *hidden;
static uint8_t want_hidden[PAGE];
static uint8_t want_anon[ANON_LEN], want_zero[ZERO_LEN], want_mfd[MEMFD_LEN];
static int memfd = -1;
static volatile uint64_t count; /* private: the loop's own count */

static void *map(size_t len, int fd, off_t off)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | (fd < 0 ? MAP_ANONYMOUS : 0),
	               fd, off);
	if (p == MAP_FAILED)
		wl_die("mmap");
	return p;
}

static void setup(uint64_t seed, int keep_fd)
{
	anon = map(ANON_LEN, -1, 0);
	wl_fill(want_anon, ANON_LEN, &seed);
	memset(want_anon, 0, 8); /* the count */
	memcpy(anon, want_anon, ANON_LEN);
	anon2 = mremap(anon, 0, ANON_LEN, MREMAP_MAYMOVE);
	if (anon2 == MAP_FAILED)
		wl_die("mremap");
	int z = open("/dev/zero", O_RDWR);
	if (z < 0)
		wl_die("/dev/zero");
	zero = map(ZERO_LEN, z, 0);
	close(z);
	wl_fill(want_zero, ZERO_LEN, &seed);
	memcpy(zero, want_zero, ZERO_LEN);
	memfd = memfd_create("cr-shm", MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, MEMFD_LEN))
		wl_die("memfd");
	mfd = map(12 * PAGE, memfd, 0); /* the last page lies past the end */
	mfd2 = map(2 * PAGE, memfd, PAGE);
	wl_fill(want_mfd, MEMFD_LEN, &seed);
	memcpy(mfd, want_mfd, MEMFD_LEN);
	if (keep_fd) {
		if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
			wl_die("F_ADD_SEALS");
		lseek(memfd, 777, SEEK_SET);
	} else {
		close(memfd);
		memfd = -1;
	}
}

static void setup_sparse(uint64_t seed)
{
	sparse = map(SPARSE_LEN, -1, 0);
	memset(sparse + SPARSE_AT, 0x5a, PAGE);
	hidden = map(PAGE, -1, 0);
	wl_fill(want_hidden, PAGE, &seed);
	memcpy(hidden, want_hidden, PAGE);
	if (mprotect(hidden, PAGE, PROT_NONE))
		wl_die("mprotect");
}

/* Pages of the sparse region the kernel holds: 1 unless something read
 * (and so allocated) its holes. */
static unsigned sparse_resident(void)
{
	static unsigned char vec[SPARSE_LEN / PAGE];
	unsigned n = 0;
	if (mincore(sparse, SPARSE_LEN, vec))
		wl_die("mincore");
	for (size_t i = 0; i < sizeof(vec); i++)
		n += vec[i] & 1;
	return n;
}

static void check_sparse(void)
{
	unsigned n = sparse_resident();
	if (n != 1 && !wl_failures())
		wl_expect(0, "sparse: %u pages resident, want 1 (its holes were filled in)", n);
}

/* Writes through one mapping are seen through the other. */
static void check_shared(uint8_t *a, uint8_t *b, const char *name)
{
	uint8_t old = a[100];
	a[100] = (uint8_t)(old + 1);
	wl_expect(b[100] == (uint8_t)(old + 1), "%s: its two mappings no longer share memory",
	          name);
	a[100] = old;
}

static void sealed_map(void)
{
	int fd = memfd_create("cr-sealed", MFD_ALLOW_SEALING);
	if (fd < 0 || write(fd, "sealed", 6) != 6)
		wl_die("memfd");
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE))
		wl_die("F_SEAL_WRITE");
	if (mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
		wl_die("mmap");
}

/* A memfd sealed against growing and shrinking, mapped, its fd closed. */
static void sealed_mapped_only(void)
{
	int fd = memfd_create("cr-sealed-map", MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, PAGE) ||
	    mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED)
		wl_die("memfd");
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		wl_die("F_ADD_SEALS");
	close(fd);
}

static off_t mapped_size(const void *p, size_t len)
{
	char path[80];
	struct stat s = {0};
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
	         (unsigned long)p + len);
	return stat(path, &s) ? -1 : s.st_size;
}

static void check_fd(void)
{
	char link[64], name[256] = "";
	struct stat s = {0}, m = {0};
	snprintf(link, sizeof(link), "/proc/self/fd/%d", memfd);
	ssize_t n = readlink(link, name, sizeof(name) - 1);
	name[n > 0 ? n : 0] = 0;
	wl_expect(!strcmp(name, "/memfd:cr-shm (deleted)"), "memfd fd: names %s", name);
	int seals = fcntl(memfd, F_GET_SEALS);
	wl_expect(seals == (F_SEAL_SHRINK | F_SEAL_GROW), "memfd fd: seals %#x, want %#x", seals,
	          F_SEAL_SHRINK | F_SEAL_GROW);
	wl_expect(lseek(memfd, 0, SEEK_CUR) == 777, "memfd fd: offset %lld, want 777",
	          (long long)lseek(memfd, 0, SEEK_CUR));
	fstat(memfd, &s);
	snprintf(link, sizeof(link), "/proc/self/map_files/%lx-%lx", (unsigned long)mfd,
	         (unsigned long)mfd + 12 * PAGE);
	stat(link, &m);
	wl_expect(s.st_ino == m.st_ino, "memfd fd: another object than the mapped one");
	uint8_t b = 0;
	wl_expect(pread(memfd, &b, 1, 5000) == 1 && b == mfd[5000],
	          "memfd fd: reads other bytes than the mapping");
}

static void verify(void)
{
	wl_expect(!memcmp(anon + 8, want_anon + 8, ANON_LEN - 8), "anon: content differs");
	wl_expect(!memcmp(zero, want_zero, ZERO_LEN), "/dev/zero: content differs");
	wl_expect(!memcmp(mfd, want_mfd, MEMFD_LEN), "memfd: content differs");
	wl_expect(!memcmp(mfd2, want_mfd + PAGE, 2 * PAGE), "memfd: second mapping differs");
	check_shared(anon, anon2, "anon");
	check_shared(mfd2, mfd + PAGE, "memfd");
	off_t size = mapped_size(mfd, 12 * PAGE);
	wl_expect(size == MEMFD_LEN, "memfd: %lld bytes, want %u", (long long)size, MEMFD_LEN);
	if (memfd >= 0)
		check_fd();
	check_sparse();
	wl_expect(sparse[SPARSE_AT] == 0x5a && sparse[SPARSE_AT + PAGE - 1] == 0x5a,
	          "sparse: its written page differs");
	wl_expect(!mprotect(hidden, PAGE, PROT_READ) && !memcmp(hidden, want_hidden, PAGE),
	          "PROT_NONE page: content differs");
}

int main(int argc, char **argv)
{
	uint64_t n = 0, seed = wl_opt(argc, argv, "--seed", 1);
	uint64_t big = wl_opt(argc, argv, "--big-mib", 0);
	wl_init("shmem");
	setup(seed, (int)wl_opt(argc, argv, "--fd", 0));
	setup_sparse(seed);
	if (wl_opt(argc, argv, "--sealed-map", 0))
		sealed_map();
	if (wl_opt(argc, argv, "--sealed-mapped-only", 0))
		sealed_mapped_only();
	if (big)
		memset(map(big << 20, -1, 0), 1, big << 20);
	while (!wl_verify_requested()) {
		/* shared first: a freeze between the two stores sees count + 1;
		 * checked here, as the first thing a restored process does */
		uint64_t shared = *(volatile uint64_t *)anon;
		if (shared != count && shared != count + 1 && !wl_failures())
			wl_expect(0,
			          "anon: shared count %llu, private %llu: not taken at one instant",
			          (unsigned long long)shared, (unsigned long long)count);
		*(volatile uint64_t *)anon = count + 1;
		count = count + 1;
		if (count % 1000000 == 0) {
			check_sparse();
			wl_progress(++n);
			usleep(1000);
		}
	}
	verify();
	wl_finish(!wl_failures(), n, "count=%llu %s", (unsigned long long)count,
	          wl_first_failure());
}
