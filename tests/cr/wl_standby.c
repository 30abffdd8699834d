/*
 * standby: a program for the warm standby tests (tests/cr/standby.py,
 * issue 13). In rounds it changes at random
 *
 *   - a heap of --mib MiB (default 64): random 8-byte writes and a few pages
 *     given back with MADV_DONTNEED, under a position-weighted running sum
 *     (as wl-bigheap);
 *   - up to 8 extra mappings: mmap, munmap, mprotect (r, rw, none), mremap
 *     to grow or shrink them, MADV_DONTDUMP given and taken back, writes;
 *   - the fds FD_BASE..FD_BASE+15: regular files opened (with or without
 *     O_APPEND) and written, pipes (O_NONBLOCK or not) with bytes pending,
 *     eventfds (semaphore or not) written, dup()s of any of them, closes;
 *
 * then, before each checkpoint, appends to the record file (standby.record
 * in the directory of $CR_RESULT, outside the chain directory; append +
 * fsync) what it expects:
 *
 *   round R heap=H maps=M fds=D     H: heap checksum, M: a hash of every
 *                                   extra mapping (address, size, protection,
 *                                   MADV_DONTDUMP advice, bytes), D: the fd
 *                                   table as the kernel shows it
 *                                   (/proc/self/fd, fdinfo, kcmp)
 *
 * asks for a checkpoint with cs_checkpoint() and appends "round R gen G"
 * for the generation it got (and prints "ckpt round=R gen=G").
 *
 * A counter thread adds one to `counter` every 2 ms and writes it to
 * standby.counter next to the record ("counter N\n" at offset 0): it moves
 * only while the program's threads run. The ready line is followed by
 * "counter_addr=0x..." so a test can also read it from /proc/PID/mem.
 *
 * After a restore (cs_stats().restored_from = G, seen when the
 * cs_checkpoint() the image was taken in returns) the program recomputes H,
 * M and D, compares them with the record of the round whose generation is
 * G (or, when the record has no generation G yet, with the last round,
 * whose checkpoint was in flight when the primary died), checks that every
 * extra mapping has its protection in /proc/self/maps (and its advice in
 * smaps) and that every pipe holds exactly the bytes written to it and not
 * yet read, prints "restored gen=G round=R verdict=ok|FAIL <why>", keeps
 * running (counter moving) for --stay-ms (default 0; SIGUSR1 ends it
 * early), then ends with "verify ok|FAIL ... restored_from=G" and exit
 * status 0 or 1. With --go-on N, the first N restores that verify go on
 * with the rounds instead (a primary restored in place).
 *
 * Options: --mib N, --seed S, --round-ms N (sleep between rounds, default
 * 20), --writes N (heap words per round, default 4096), --rounds N (0:
 * until killed or SIGUSR1), --stay-ms N, --die-at-round N (SIGKILL itself
 * right after round N's checkpoint, before its "gen" line), --append-offsets 1 (also compare
 * the offset of O_APPEND files, which `checksync restore` leaves at 0 today:
 * agent/tool/fds.c open_path() skips the lseek). Run it with on-demand checkpoints
 * only (`checksync run --interval-ms 0`): every generation is a round's.
 */
#include "wl_common.h"

#include <checksync.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE             4096u
#define WORDS_PER_PAGE   (PAGE / sizeof(uint64_t))
#define N_REGIONS        8
#define MAX_REGION_PAGES 48
#define FD_BASE          600
#define N_FDS            16
#define N_PIPES          N_FDS
#define PIPE_MAX_PENDING 32768
#define FD_RECORD        (FD_BASE - 1)
#define FD_COUNTER       (FD_BASE - 2)
#define DESC_MAX         4096

struct region {
	uint8_t *addr;
	size_t pages;
	int prot;
	int dontdump; /* MADV_DONTDUMP given: advice the restore must keep */
};

/* Bytes written to and read from one pipe; byte i is pipe_byte(id, i). */
struct pipe_state {
	uint64_t written, read;
};

enum fd_kind { FK_NONE, FK_FILE, FK_PIPE, FK_EVENTFD };

struct fd_slot {
	enum fd_kind kind;
	int pipe; /* index in pipes[] for FK_PIPE */
};

static struct {
	uint64_t *heap;
	size_t n_words, n_pages;
	uint64_t heap_sum, rng, round;
	struct region regions[N_REGIONS];
	struct pipe_state pipes[N_PIPES];
	struct fd_slot fds[N_FDS];
	const char *record_path;
	uint64_t stay_ms, die_at_round;
	uint64_t go_on, seen_restore; /* --go-on; the restore last checked */
	int append_offsets;
} st;

static volatile uint64_t counter;

static int (*checkpoint_fn)(uint64_t *);
static int (*stats_fn)(struct cs_stats *, size_t);

static uint64_t weigh(uint64_t word, size_t index)
{
	uint64_t z = word ^ (index * 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ull;
	return z ^ (z >> 32);
}

static uint64_t rnd(uint64_t n)
{
	return n ? wl_rand(&st.rng) % n : 0;
}

static uint8_t pipe_byte(int id, uint64_t i)
{
	uint64_t s = ((uint64_t)id << 48) ^ i;
	return (uint8_t)wl_rand(&s);
}

/* FNV-1a, for hashes that only need to differ when the input does. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* ---- heap ---------------------------------------------------------------- */

static void heap_write(size_t index, uint64_t value)
{
	st.heap_sum += weigh(value, index) - weigh(st.heap[index], index);
	st.heap[index] = value;
}

static void heap_discard(size_t page)
{
	uint64_t *p = st.heap + page * WORDS_PER_PAGE;
	for (size_t i = 0; i < WORDS_PER_PAGE; i++)
		st.heap_sum +=
		    weigh(0, page * WORDS_PER_PAGE + i) - weigh(p[i], page * WORDS_PER_PAGE + i);
	madvise(p, PAGE, MADV_DONTNEED);
}

static void heap_round(size_t writes)
{
	for (size_t i = 0; i < writes; i++)
		heap_write(rnd(st.n_words), wl_rand(&st.rng));
	for (int i = rnd(5); i > 0; i--)
		heap_discard(rnd(st.n_pages));
}

static uint64_t heap_checksum(void)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < st.n_words; i++)
		sum += weigh(st.heap[i], i);
	return sum;
}

static void heap_init(size_t mib, uint64_t seed)
{
	st.n_words = mib * 1024 * 1024 / sizeof(uint64_t);
	st.n_pages = st.n_words / WORDS_PER_PAGE;
	st.heap = mmap(NULL, st.n_words * sizeof(uint64_t), PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (st.heap == MAP_FAILED)
		wl_die("mmap heap");
	uint64_t s = seed;
	for (size_t i = 0; i < st.n_words; i++) {
		st.heap[i] = (i % WORDS_PER_PAGE == 0)
		                 ? wl_rand(&s)
		                 : st.heap[i - 1] * 6364136223846793005ull + i;
		st.heap_sum += weigh(st.heap[i], i);
	}
}

/* ---- extra mappings ------------------------------------------------------ */

static const int prots[] = {PROT_READ, PROT_READ | PROT_WRITE, PROT_NONE};

static void region_scribble(struct region *r)
{
	if (!(r->prot & PROT_WRITE))
		return;
	for (int i = 1 + rnd(4); i > 0; i--) {
		size_t page = rnd(r->pages);
		wl_fill(r->addr + page * PAGE + rnd(PAGE - 64), 64, &st.rng);
	}
}

static void region_map(struct region *r)
{
	size_t pages = 1 + rnd(MAX_REGION_PAGES / 2);
	void *p =
	    mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		wl_die("mmap region");
	r->addr = p;
	r->pages = pages;
	r->prot = PROT_READ | PROT_WRITE;
	wl_fill(r->addr, pages * PAGE, &st.rng);
}

static void region_resize(struct region *r)
{
	size_t pages = 1 + rnd(MAX_REGION_PAGES);
	void *p = mremap(r->addr, r->pages * PAGE, pages * PAGE, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		wl_die("mremap region");
	r->addr = p;
	r->pages = pages;
}

static void region_op(struct region *r)
{
	if (!r->addr) {
		region_map(r);
		return;
	}
	switch (rnd(6)) {
	case 0:
		munmap(r->addr, r->pages * PAGE);
		memset(r, 0, sizeof(*r));
		break;
	case 3:
		r->dontdump = !r->dontdump;
		if (madvise(r->addr, r->pages * PAGE, r->dontdump ? MADV_DONTDUMP : MADV_DODUMP) <
		    0)
			wl_die("madvise region");
		break;
	case 1:
		r->prot = prots[rnd(3)];
		if (mprotect(r->addr, r->pages * PAGE, r->prot) < 0)
			wl_die("mprotect region");
		break;
	case 2:
		region_resize(r);
		break;
	default:
		region_scribble(r);
	}
}

/* Address, size, protection and bytes of every extra mapping (an
 * unreadable one is made readable for the moment of reading). */
static uint64_t regions_hash(void)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (int i = 0; i < N_REGIONS; i++) {
		struct region *r = &st.regions[i];
		uint64_t head[4] = {(uintptr_t)r->addr, r->pages, (uint64_t)r->prot,
		                    (uint64_t)r->dontdump};
		h = fnv(h, head, sizeof(head));
		if (!r->addr)
			continue;
		if (!(r->prot & PROT_READ))
			mprotect(r->addr, r->pages * PAGE, PROT_READ);
		h = fnv(h, r->addr, r->pages * PAGE);
		if (!(r->prot & PROT_READ))
			mprotect(r->addr, r->pages * PAGE, r->prot);
	}
	return h;
}

/* The protection /proc/self/maps shows for address a ("rw-p"), or "" if
 * no mapping holds it. */
static void maps_prot_at(uintptr_t a, char out[5])
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	out[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && a >= lo && a < hi) {
			memcpy(out, perms, 5);
			break;
		}
	}
	fclose(f);
}

/* 1 if the mapping holding a has VmFlags dd (MADV_DONTDUMP) in smaps, 0
 * if not, -1 if no mapping holds it. */
static int smaps_dontdump_at(uintptr_t a)
{
	char line[512];
	int found = 0, dd = -1;
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	while (dd < 0 && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			found = a >= lo && a < hi;
		else if (found && !strncmp(line, "VmFlags:", 8))
			dd = strstr(line, " dd") != NULL;
	}
	fclose(f);
	return dd;
}

/* Every page of every extra mapping is mapped with its protection, and
 * each has its MADV_DONTDUMP advice or not. */
static void check_maps(void)
{
	for (int i = 0; i < N_REGIONS; i++) {
		struct region *r = &st.regions[i];
		int dd = r->addr ? smaps_dontdump_at((uintptr_t)r->addr) : r->dontdump;
		wl_expect(dd == r->dontdump, "mapping %d at %p: VmFlags dd %d, want %d", i,
		          (void *)r->addr, dd, r->dontdump);
		char want[5] = {r->prot & PROT_READ ? 'r' : '-', r->prot & PROT_WRITE ? 'w' : '-',
		                '-', 'p', 0};
		for (size_t p = 0; r->addr && p < r->pages; p++) {
			char got[5];
			maps_prot_at((uintptr_t)r->addr + p * PAGE, got);
			if (strcmp(got, want)) {
				wl_expect(0, "mapping %d page %zu at %p is '%s' in maps, want %s",
				          i, p, (void *)(r->addr + p * PAGE), got, want);
				break;
			}
		}
	}
}

/* ---- fds ----------------------------------------------------------------- */

static int slot_free(void)
{
	int start = (int)rnd(N_FDS);
	for (int i = 0; i < N_FDS; i++)
		if (st.fds[(start + i) % N_FDS].kind == FK_NONE)
			return (start + i) % N_FDS;
	return -1;
}

static int slot_open(void)
{
	int start = (int)rnd(N_FDS);
	for (int i = 0; i < N_FDS; i++)
		if (st.fds[(start + i) % N_FDS].kind != FK_NONE)
			return (start + i) % N_FDS;
	return -1;
}

/* Moves fd to slot s's number, close-on-exec at random. */
static void place(int fd, int s, enum fd_kind kind, int pipe)
{
	if (dup3(fd, FD_BASE + s, rnd(2) ? O_CLOEXEC : 0) < 0)
		wl_die("dup3");
	close(fd);
	st.fds[s].kind = kind;
	st.fds[s].pipe = pipe;
}

static void open_file(int s)
{
	char path[4200];
	int flags = O_RDWR | O_CREAT | (rnd(2) ? O_APPEND : 0);
	snprintf(path, sizeof(path), "%s/standby-f%d", wl_work_dir(), (int)rnd(4));
	int fd = open(path, flags, 0600);
	if (fd < 0)
		wl_die("open file");
	uint8_t buf[512];
	wl_fill(buf, sizeof(buf), &st.rng);
	if (write(fd, buf, 1 + rnd(sizeof(buf))) < 0)
		wl_die("write file");
	if (!(flags & O_APPEND))
		lseek(fd, (off_t)rnd(4096), SEEK_SET);
	place(fd, s, FK_FILE, 0);
}

static int pipe_new(void)
{
	for (int i = 0; i < N_PIPES; i++) {
		int busy = 0;
		for (int s = 0; s < N_FDS && !busy; s++)
			busy = st.fds[s].kind == FK_PIPE && st.fds[s].pipe == i;
		if (!busy) {
			memset(&st.pipes[i], 0, sizeof(st.pipes[i]));
			return i;
		}
	}
	return -1;
}

static void open_pipe(int s)
{
	int p[2], id = pipe_new(), s2;
	if (id < 0)
		return;
	if (pipe2(p, rnd(2) ? O_NONBLOCK : 0) < 0)
		wl_die("pipe2");
	place(p[0], s, FK_PIPE, id);
	s2 = slot_free();
	if (s2 >= 0)
		place(p[1], s2, FK_PIPE, id);
	else
		close(p[1]); /* a pipe with a read end only */
}

static void open_eventfd(int s)
{
	int fd = eventfd((unsigned)rnd(1000),
	                 (rnd(2) ? EFD_SEMAPHORE : 0) | (rnd(2) ? EFD_NONBLOCK : 0));
	if (fd < 0)
		wl_die("eventfd");
	place(fd, s, FK_EVENTFD, 0);
}

static void pipe_io(int s)
{
	int fd = FD_BASE + s, acc = fcntl(fd, F_GETFL) & O_ACCMODE;
	struct pipe_state *p = &st.pipes[st.fds[s].pipe];
	uint8_t buf[4096];
	size_t n = 1 + rnd(sizeof(buf));
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK); /* one description: its ends' flags */
	if (acc == O_WRONLY && p->written - p->read + n <= PIPE_MAX_PENDING) {
		for (size_t i = 0; i < n; i++)
			buf[i] = pipe_byte(st.fds[s].pipe, p->written + i);
		ssize_t w = write(fd, buf, n);
		p->written += w > 0 ? (uint64_t)w : 0;
	} else if (acc == O_RDONLY) {
		ssize_t r = read(fd, buf, n);
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pipe_byte(st.fds[s].pipe, p->read + (uint64_t)i))
				wl_finish(0, st.round,
				          "pipe %d byte %" PRIu64 " differs before any restore",
				          st.fds[s].pipe, p->read + (uint64_t)i);
		p->read += r > 0 ? (uint64_t)r : 0;
	}
	fcntl(fd, F_SETFL, fl);
}

static void fd_use(int s)
{
	int fd = FD_BASE + s;
	uint64_t one = 1 + rnd(50);
	switch (st.fds[s].kind) {
	case FK_FILE:
		if (write(fd, &one, sizeof(one)) < 0)
			wl_die("write file");
		break;
	case FK_PIPE:
		pipe_io(s);
		break;
	case FK_EVENTFD:
		if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			wl_die("write eventfd");
		break;
	default:
		break;
	}
}

static void fd_op(void)
{
	int s = slot_free(), o = slot_open();
	switch (rnd(8)) {
	case 0:
		if (s >= 0)
			open_file(s);
		break;
	case 1:
		if (s >= 0)
			open_pipe(s);
		break;
	case 2:
		if (s >= 0)
			open_eventfd(s);
		break;
	case 3:
		if (s >= 0 && o >= 0)
			place(dup(FD_BASE + o), s, st.fds[o].kind, st.fds[o].pipe);
		break;
	case 4:
		if (o >= 0) {
			close(FD_BASE + o);
			st.fds[o].kind = FK_NONE;
		}
		break;
	default:
		if (o >= 0)
			fd_use(o);
	}
}

/* ---- what the kernel shows of the fds ----------------------------------- */

static int lowest_same(int n, int use_kcmp, ino_t ino)
{
	for (int m = FD_BASE; m < n; m++) {
		struct stat sb;
		if (use_kcmp && syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, m, n) == 0)
			return m - FD_BASE;
		if (!use_kcmp && fstat(m, &sb) == 0 && sb.st_ino == ino)
			return m - FD_BASE;
	}
	return n - FD_BASE;
}

/* Bytes in a pipe nobody can read any more are not its state: a restore
 * need not (and does not) bring them back. */
static int has_read_end(ino_t ino)
{
	struct stat sb;
	for (int m = FD_BASE; m < FD_BASE + N_FDS; m++)
		if (fstat(m, &sb) == 0 && sb.st_ino == ino &&
		    (fcntl(m, F_GETFL) & O_ACCMODE) == O_RDONLY)
			return 1;
	return 0;
}

static void fdinfo_field(int n, const char *key, char *out, size_t cap)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", n);
	snprintf(out, cap, "-");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[len > 0 ? len : 0] = 0;
	char *p = strstr(buf, key);
	if (p && sscanf(p + strlen(key), " %63s", out) != 1)
		snprintf(out, cap, "-");
}

/* What kind of file fd n is, and its state (offset, pending bytes, count). */
static void describe_one(int n, char *out, size_t cap)
{
	char path[64], target[512] = "", extra[160], v1[64], v2[64];
	struct stat sb;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", n);
	ssize_t len = readlink(path, target, sizeof(target) - 1);
	target[len > 0 ? len : 0] = 0;
	const char *kind = target[0] == '/' ? strrchr(target, '/') + 1 : target;
	int fl = fcntl(n, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK);
	int share = lowest_same(n, 1, 0), avail = -1;
	snprintf(extra, sizeof(extra), "-");
	if (!strncmp(target, "pipe:", 5) && fstat(n, &sb) == 0) {
		kind = "pipe";
		if (has_read_end(sb.st_ino))
			ioctl(n, FIONREAD, &avail);
		snprintf(extra, sizeof(extra), "p%d+%d", lowest_same(n, 0, sb.st_ino), avail);
	} else if (strstr(target, "[eventfd]")) {
		kind = "evfd";
		fdinfo_field(n, "eventfd-count:", v1, sizeof(v1));
		fdinfo_field(n, "eventfd-semaphore:", v2, sizeof(v2));
		snprintf(extra, sizeof(extra), "c%s/s%s", v1, v2);
	} else if (target[0] == '/' && (fl & O_APPEND) && !st.append_offsets) {
		snprintf(extra, sizeof(extra), "oA"); /* see --append-offsets */
	} else if (target[0] == '/') {
		snprintf(extra, sizeof(extra), "o%lld", (long long)lseek(n, 0, SEEK_CUR));
	}
	snprintf(out, cap, "%d:%s:%o:%d:s%d:%s", n - FD_BASE, kind, fl, fcntl(n, F_GETFD), share,
	         extra);
}

/* Every fd of FD_BASE..FD_BASE+N_FDS-1 the kernel has, comma-separated. */
static void describe_fds(char *out, size_t cap)
{
	size_t used = 0;
	out[0] = 0;
	for (int n = FD_BASE; n < FD_BASE + N_FDS; n++) {
		char one[256];
		if (fcntl(n, F_GETFD) < 0)
			continue;
		describe_one(n, one, sizeof(one));
		used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? "," : "", one);
		if (used >= cap)
			wl_die("fd description too long");
	}
	if (!used)
		snprintf(out, cap, "none");
}

/* The bytes pending in pipe fd, copied with tee(2), which leaves them in
 * it (a restored primary goes on with its pipes as they were): *len of
 * them into buf, -1 if tee fails. */
static int pipe_peek(int fd, uint8_t *buf, size_t *len)
{
	int t[2];
	if (pipe2(t, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	ssize_t n = tee(fd, t[1], PIPE_MAX_PENDING, SPLICE_F_NONBLOCK);
	ssize_t r = n > 0 ? read(t[0], buf, (size_t)n) : 0;
	close(t[0]);
	close(t[1]);
	*len = r > 0 ? (size_t)r : 0;
	return n < 0 && errno != EAGAIN ? -1 : 0;
}

/* Each pipe with a read end holds exactly the bytes written to it and not
 * read. */
static void check_pipes(void)
{
	static uint8_t buf[PIPE_MAX_PENDING];
	int done[N_PIPES] = {0};
	for (int s = 0; s < N_FDS; s++) {
		int fd = FD_BASE + s, id = st.fds[s].pipe;
		size_t n;
		if (st.fds[s].kind != FK_PIPE || done[id] ||
		    (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
			continue;
		done[id] = 1;
		if (pipe_peek(fd, buf, &n) < 0) {
			wl_expect(0, "pipe %d: tee: %s", id, strerror(errno));
			continue;
		}
		uint64_t at = st.pipes[id].read;
		for (size_t i = 0; i < n; i++, at++)
			if (buf[i] != pipe_byte(id, at)) {
				wl_expect(0, "pipe %d byte %" PRIu64 " differs", id, at);
				break;
			}
		wl_expect(n == st.pipes[id].written - st.pipes[id].read,
		          "pipe %d held %zu bytes, %" PRIu64 " were written and not read", id, n,
		          st.pipes[id].written - st.pipes[id].read);
	}
}

/* ---- the record file ----------------------------------------------------- */

static void record(const char *line)
{
	size_t len = strlen(line);
	if (write(FD_RECORD, line, len) != (ssize_t)len || fsync(FD_RECORD) < 0)
		wl_die("write record");
}

static void record_expected(void)
{
	static char fds[DESC_MAX], line[DESC_MAX + 128];
	describe_fds(fds, sizeof(fds));
	snprintf(line, sizeof(line),
	         "round %" PRIu64 " heap=%016" PRIx64 " maps=%016" PRIx64 " fds=%s\n", st.round,
	         st.heap_sum, regions_hash(), fds);
	record(line);
}

static char *read_record(void)
{
	int fd = open(st.record_path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0)
		return NULL;
	char *buf = malloc((size_t)sb.st_size + 1);
	ssize_t n = buf ? read(fd, buf, (size_t)sb.st_size) : -1;
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

/* The round generation gen was taken in: the one recorded with it, else the
 * last round, if its checkpoint was never answered (the primary died
 * first; *pending = 1). 0 if neither. *expect: that round's line. */
static uint64_t round_of(char *text, uint64_t gen, int *pending, char **expect)
{
	uint64_t last = 0, r, g;
	char *save = NULL, *last_expect = NULL;
	*expect = NULL;
	*pending = 0;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (sscanf(l, "round %" SCNu64 " gen %" SCNu64, &r, &g) == 2) {
			if (g == gen) {
				*expect = r == last ? last_expect : NULL;
				return r;
			}
			last_expect = NULL;
		} else if (sscanf(l, "round %" SCNu64, &r) == 1) {
			last = r;
			last_expect = l;
		}
	}
	*pending = 1;
	*expect = last_expect;
	return last_expect ? last : 0;
}

/* ---- after a restore ----------------------------------------------------- */

/* Compares what the process holds now with the record's line for its round. */
static void compare(const char *expect)
{
	static char fds[DESC_MAX];
	uint64_t heap, maps;
	const char *want_fds = strstr(expect, " fds=");
	if (sscanf(expect, "round %*u heap=%" SCNx64 " maps=%" SCNx64, &heap, &maps) != 2 ||
	    !want_fds) {
		wl_expect(0, "record line unreadable: %.80s", expect);
		return;
	}
	want_fds += 5;
	uint64_t got_heap = heap_checksum(), got_maps = regions_hash();
	describe_fds(fds, sizeof(fds));
	wl_expect(got_heap == heap, "heap checksum %016" PRIx64 ", recorded %016" PRIx64, got_heap,
	          heap);
	wl_expect(got_maps == maps, "mappings hash %016" PRIx64 ", recorded %016" PRIx64, got_maps,
	          maps);
	if (strcmp(fds, want_fds)) {
		size_t i = 0;
		while (fds[i] && fds[i] == want_fds[i])
			i++;
		size_t from = i > 40 ? i - 40 : 0;
		wl_expect(0, "fd table differs at char %zu: now '%.80s', recorded '%.80s'", i,
		          fds + from, want_fds + from);
	}
	check_maps();
	check_pipes();
}

static void restored(uint64_t gen)
{
	char *text = read_record(), *expect = NULL;
	int pending = 0;
	uint64_t round = text ? round_of(text, gen, &pending, &expect) : 0;
	if (!expect)
		wl_expect(0, "the record %s has no round for generation %" PRIu64, st.record_path,
		          gen);
	else if (round != st.round)
		wl_expect(0,
		          "memory is of round %" PRIu64 ", generation %" PRIu64
		          " was recorded for round %" PRIu64,
		          st.round, gen, round);
	else
		compare(expect);
	free(text);
	int ok = wl_failures() == 0;
	wl_say("restored gen=%" PRIu64 " round=%" PRIu64 "%s verdict=%s %s", gen, round,
	       pending ? " unanswered" : "", ok ? "ok" : "FAIL", wl_first_failure());
	st.seen_restore = gen;
	if (ok && st.go_on > 0) {
		st.go_on--;
		return;
	}
	int64_t end = wl_now_ns(CLOCK_MONOTONIC) + (int64_t)st.stay_ms * 1000000;
	while (!wl_verify_requested() && wl_now_ns(CLOCK_MONOTONIC) < end)
		wl_sleep_ms(10);
	wl_finish(ok, st.round, "restored_from=%" PRIu64 " round=%" PRIu64 "%s %s", gen, round,
	          pending ? " unanswered" : "", ok ? "" : wl_first_failure());
}

/* ---- the counter thread and the rounds ---------------------------------- */

static void *count(void *arg)
{
	(void)arg;
	for (;;) {
		char line[40];
		counter++;
		int n = snprintf(line, sizeof(line), "counter %20" PRIu64 "\n", counter);
		if (pwrite(FD_COUNTER, line, (size_t)n, 0) != n)
			wl_die("write counter");
		wl_sleep_ms(2);
	}
	return NULL;
}

static void open_at(const char *path, int flags, int fd)
{
	int got = open(path, flags | O_CLOEXEC, 0600);
	if (got < 0 || dup3(got, fd, O_CLOEXEC) < 0)
		wl_die(path);
	close(got);
}

static uint64_t restored_from(void)
{
	struct cs_stats s;
	memset(&s, 0, sizeof(s));
	return stats_fn(&s, sizeof(s)) == 0 ? s.restored_from : 0;
}

/* cs_checkpoint(), again when a freeze gave up (a thread of ours did not
 * park within the agent's 50 ms: a loaded machine) and took nothing. */
static int checkpoint(uint64_t *gen)
{
	int rc;
	for (int tries = 1;; tries++) {
		rc = checkpoint_fn(gen);
		if ((rc != -ETIMEDOUT && rc != -EBUSY) || tries == 20 ||
		    restored_from() != st.seen_restore)
			return rc;
		wl_say("ckpt-retry round=%" PRIu64 " rc=%d", st.round, rc);
		wl_sleep_ms(10);
	}
}

static void one_round(size_t writes)
{
	char line[128];
	uint64_t gen = 0;
	st.round++;
	heap_round(writes);
	for (int i = 1 + rnd(3); i > 0; i--)
		region_op(&st.regions[rnd(N_REGIONS)]);
	for (int i = 1 + rnd(4); i > 0; i--)
		fd_op();
	record_expected();
	int rc = checkpoint(&gen);
	uint64_t from = restored_from();
	if (from && from != st.seen_restore) {
		restored(from);
		if (rc < 0) /* --go-on: the base after the restore failed, not ours */
			rc = checkpoint(&gen);
	}
	if (rc < 0)
		wl_finish(0, st.round, "cs_checkpoint: %s", strerror(-rc));
	if (st.round == st.die_at_round)
		raise(SIGKILL); /* the generation is durable, its record line not written */
	snprintf(line, sizeof(line), "round %" PRIu64 " gen %" PRIu64 "\n", st.round, gen);
	record(line);
	wl_say("ckpt round=%" PRIu64 " gen=%" PRIu64, st.round, gen);
}

static void find_agent(void)
{
	checkpoint_fn = (int (*)(uint64_t *))dlsym(RTLD_DEFAULT, "cs_checkpoint");
	stats_fn = (int (*)(struct cs_stats *, size_t))dlsym(RTLD_DEFAULT, "cs_stats_size");
	if (!checkpoint_fn || !stats_fn) {
		wl_say("standby: no cs_checkpoint in the process (not run by checksync?)");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	char path[4200];
	size_t mib = (size_t)wl_opt(argc, argv, "--mib", 64);
	uint64_t seed = wl_opt(argc, argv, "--seed", 1), rounds = wl_opt(argc, argv, "--rounds", 0);
	size_t writes = (size_t)wl_opt(argc, argv, "--writes", 4096);
	unsigned round_ms = (unsigned)wl_opt(argc, argv, "--round-ms", 20);
	st.stay_ms = wl_opt(argc, argv, "--stay-ms", 0);
	st.die_at_round = wl_opt(argc, argv, "--die-at-round", 0);
	st.go_on = wl_opt(argc, argv, "--go-on", 0);
	st.append_offsets = (int)wl_opt(argc, argv, "--append-offsets", 0);
	signal(SIGPIPE, SIG_IGN); /* a pipe whose read ends are closed: EPIPE */
	find_agent();
	heap_init(mib, seed);
	st.rng = seed ^ 0x5eed;
	snprintf(path, sizeof(path), "%s/standby.record", wl_work_dir());
	st.record_path = strdup(path);
	open_at(st.record_path, O_WRONLY | O_CREAT | O_APPEND, FD_RECORD);
	snprintf(path, sizeof(path), "%s/standby.counter", wl_work_dir());
	open_at(path, O_WRONLY | O_CREAT, FD_COUNTER);
	wl_init("standby");
	wl_say("counter_addr=%p mib=%zu", (void *)&counter, mib);
	pthread_t t;
	if (pthread_create(&t, NULL, count, NULL))
		wl_die("pthread_create");
	while (!wl_verify_requested() && (!rounds || st.round < rounds)) {
		one_round(writes);
		wl_progress(st.round);
		wl_sleep_ms(round_ms);
	}
	uint64_t sum = heap_checksum();
	wl_finish(sum == st.heap_sum, st.round, "heap=%016" PRIx64 " running=%016" PRIx64, sum,
	          st.heap_sum);
}
