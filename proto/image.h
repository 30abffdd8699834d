/*
 * The checkpoint image format (docs/image-format.md has every byte).
 *
 * An image is a sequence of sections. Each section is
 *
 *     u32 type | u32 flags | u64 payload_len | payload | u32 crc32c
 *
 * little-endian, where the CRC covers type, flags, payload_len and payload.
 * The first section is HEADER, the last is END; an image without END is
 * incomplete (a writer died) and is never restored. HEADER and PROCESS hold
 * one record each, without a count; the other metadata sections hold
 * a u32 record count followed by records encoded field by field; the PAGES
 * section holds page runs (u64 addr, u32 npages, u32 reserved, then the
 * pages). A base image holds every live page; a delta image holds the full
 * metadata and only the pages written since its parent. The same bytes
 * travel inside CKPT_PAGES frames: on disk and on the wire it is one format.
 *
 * Writing never allocates (the agent writes from a copy-on-write child of a
 * multi-threaded process, where malloc may be locked). Reading allocates
 * only after every length has been checked against the bytes present.
 */
#ifndef CS_PROTO_IMAGE_H
#define CS_PROTO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define CS_IMAGE_MAGIC          "CSYNCIMG" /* 8 bytes, first in the HEADER payload */
#define CS_IMAGE_FORMAT_VERSION 3
#define CS_IMAGE_PAGE_SIZE      4096u
#define CS_IMAGE_PATH_MAX       4096
#define CS_IMAGE_BUILD_ID_MAX   32
#define CS_IMAGE_ADDR_MAX       128 /* sockaddr bytes */
#define CS_IMAGE_AUXV_MAX       1024
#define CS_IMAGE_RLIMITS        16
#define CS_IMAGE_SIGNALS        64
#define CS_IMAGE_PIPE_DATA_MAX  (1u << 20)
#define CS_IMAGE_EPOLL_MAX      65536
#define CS_IMAGE_FILE_DATA_MAX  (8u << 20) /* content of one unlinked file */
#define CS_IMAGE_SOCKOPTS_MAX   32
#define CS_IMAGE_SOCKOPT_LEN    16 /* bytes of one option's value */
#define CS_IMAGE_TIMERS_MAX     65536
#define CS_IMAGE_LOCKS_MAX      64 /* file locks per fd */
#define CS_IMAGE_AFFINITY_MAX   128 /* CPU mask bytes: 1024 CPUs */
/* An inotify watch inside an INOTIFY fd's file_data: i32 wd, u32 mask,
 * u64 inode, then the path as str(4095). */
#define CS_IMAGE_WATCH_FIXED    16u
#define CS_IMAGE_FILTER_MAX     (4096u * 8) /* a classic socket filter: BPF_MAXINSNS of 8 bytes */
#define CS_IMAGE_SIGINFO        128 /* the kernel's siginfo_t on x86_64 */
#define CS_IMAGE_SIGQUEUE_MAX   65536 /* pending signals, all queues together */

enum cs_image_section_type {
	CS_SECT_HEADER = 1,
	CS_SECT_PROCESS = 2,
	CS_SECT_MAPPINGS = 3,
	CS_SECT_THREADS = 4,
	CS_SECT_FDS = 5,
	CS_SECT_SIGNALS = 6,
	CS_SECT_RESIDENT = 7,    /* which pages are live (data here or in an ancestor) */
	CS_SECT_PAGES = 8,       /* page runs with their data */
	CS_SECT_UNSUPPORTED = 9, /* what could not be captured, by name */
	CS_SECT_CREDS = 10,      /* credentials: uids, gids, groups, capabilities */
	CS_SECT_TIMERS = 11,     /* interval timers and POSIX timers (version 2) */
	CS_SECT_ATTRS = 12,      /* per-process attributes (version 2) */
	CS_SECT_SIGQUEUE = 13,   /* signals pending at the frozen instant (version 3) */
	CS_SECT_SECCOMP = 14,    /* seccomp filters per thread (version 3) */
	CS_SECT_END = 15,
	/* page runs, then all their bytes from a file offset that is a multiple
	 * of 4096, so a writer can put them with O_DIRECT (version 3) */
	CS_SECT_PAGES_ALIGNED = 16,
};
/* "HEADER", "PAGES", ...; NULL for a type this version does not know. */
const char *cs_image_section_name(uint32_t type);

/* PAGES and PAGES_ALIGNED: the sections that hold page bytes. */
static inline int cs_image_is_pages_section(uint32_t type)
{
	return type == CS_SECT_PAGES || type == CS_SECT_PAGES_ALIGNED;
}

/* Section flags. A reader skips a section of a type it does not know if it
 * is SKIPPABLE and rejects the image otherwise; the other bits are reserved
 * (written 0, rejected if set). Known sections are written with flags 0. */
#define CS_SECT_F_SKIPPABLE 0x1u

enum cs_image_arch { CS_ARCH_X86_64 = 1 };

enum cs_image_tracking {
	CS_TRACK_FULL = 0,     /* base image: every live page */
	CS_TRACK_UFFD_WP = 1,  /* delta from userfaultfd async write-protect + PAGEMAP_SCAN */
	CS_TRACK_HASH = 2,     /* delta from comparing page hashes with the parent */
};

#define CS_IMAGE_F_DELTA 0x1u /* pages are only those written since the parent */

struct cs_image_header {
	uint32_t arch;      /* enum cs_image_arch */
	uint32_t page_size;
	uint32_t flags;     /* CS_IMAGE_F_* */
	uint32_t tracking;  /* enum cs_image_tracking */
	uint64_t generation;
	uint64_t parent_generation; /* 0 for a base */
	uint64_t base_generation;   /* the base at the root of this chain */
	uint64_t xsave_features;    /* XCR0: the FPU state layout of the signal frames */
	uint32_t xsave_size;        /* CPUID(0xD,0).EBX */
	char kernel_release[65];    /* uname -r */
	uint8_t exe_build_id[CS_IMAGE_BUILD_ID_MAX];
	uint32_t exe_build_id_len;
	int64_t clock_realtime_ns; /* clock readings at capture, as the process saw them */
	int64_t clock_monotonic_ns;
	int64_t clock_boottime_ns;
};

enum cs_image_agent_addr {
	CS_AGENT_BLOCK,          /* struct cs_agent_restore_block (agent/include/cs_agent_abi.h) */
	CS_AGENT_TRAMPOLINE,     /* cs_trampoline_thread */
	CS_AGENT_TRAMPOLINE_LAST,/* cs_trampoline_last */
	CS_AGENT_ADDRS
};

struct cs_image_rlimit {
	uint64_t cur, max;
};

struct cs_image_process {
	int32_t pid;  /* tgid in the process's own PID namespace */
	int32_t ppid;
	uint32_t umask;
	uint32_t personality;
	/* mm layout from /proc/self/stat and brk(0), for PR_SET_MM_MAP */
	uint64_t start_code, end_code, start_data, end_data;
	uint64_t start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint32_t auxv_len; /* bytes */
	uint8_t auxv[CS_IMAGE_AUXV_MAX];
	struct cs_image_rlimit rlimits[CS_IMAGE_RLIMITS];
	uint64_t agent_addr[CS_AGENT_ADDRS];
	uint32_t vdso_crc; /* CRC-32C of the [vdso] bytes: same kernel build or refuse */
	char comm[16];
	char cwd[CS_IMAGE_PATH_MAX];
	char exe_path[CS_IMAGE_PATH_MAX];
};

/* Mapping kinds and attributes. */
#define CS_MAP_PRIVATE     0x0001u
#define CS_MAP_SHARED      0x0002u
#define CS_MAP_ANON        0x0004u
#define CS_MAP_FILE        0x0008u
#define CS_MAP_STACK       0x0010u /* [stack] of the main thread */
#define CS_MAP_HEAP        0x0020u /* [heap]: brk area */
#define CS_MAP_VDSO        0x0040u
#define CS_MAP_VVAR        0x0080u
#define CS_MAP_VVAR_VCLOCK 0x0100u
#define CS_MAP_VSYSCALL    0x0200u
#define CS_MAP_AGENT       0x0400u /* agent scratch memory: recreated empty, never copied */
#define CS_MAP_GROWSDOWN   0x0800u
#define CS_MAP_TRACKED     0x1000u /* private writable: its live pages are in the images */
/* Shared memory object (memfd, MAP_SHARED anonymous, /dev/zero), with
 * SHARED: its pages are in every image in full, ino names the object
 * (mappings with the same ino share one object after a restore). */
#define CS_MAP_SHMEM       0x2000u

/* Advice a program gave a mapping (madvise), as /proc/PID/smaps VmFlags
 * shows it; the restorer gives it again (version 3). */
#define CS_MADV_DONTFORK   0x01u /* dc: MADV_DONTFORK */
#define CS_MADV_WIPEONFORK 0x02u /* wf: MADV_WIPEONFORK */
#define CS_MADV_DONTDUMP   0x04u /* dd: MADV_DONTDUMP */
#define CS_MADV_HUGEPAGE   0x08u /* hg: MADV_HUGEPAGE */
#define CS_MADV_NOHUGEPAGE 0x10u /* nh: MADV_NOHUGEPAGE */
#define CS_MADV_MERGEABLE  0x20u /* mg: MADV_MERGEABLE */
#define CS_MADV_SEQUENTIAL 0x40u /* sr: MADV_SEQUENTIAL */
#define CS_MADV_RANDOM     0x80u /* rr: MADV_RANDOM */
#define CS_MADV_ALL        0xffu

struct cs_image_mapping {
	uint64_t start, end; /* [start, end) */
	uint32_t prot;       /* PROT_READ | PROT_WRITE | PROT_EXEC */
	uint32_t flags;      /* CS_MAP_* */
	uint64_t pgoff;      /* file offset in bytes */
	/* file identity, checked before the file is mapped again */
	uint64_t dev, ino, file_size;
	int64_t mtime_ns;
	uint8_t build_id[CS_IMAGE_BUILD_ID_MAX];
	uint32_t build_id_len;
	char path[CS_IMAGE_PATH_MAX]; /* empty for anonymous memory */
	uint32_t madvise;             /* CS_MADV_* (version 3) */
};

#define CS_THREAD_MAIN  0x1u
#define CS_THREAD_AGENT 0x2u

struct cs_image_thread {
	int32_t tid; /* in the process's PID namespace */
	uint32_t flags;
	/* Address of the thread's struct ucontext inside its rt_sigframe: the
	 * stack pointer at rt_sigreturn. Registers, FPU state, signal mask and
	 * sigaltstack are all in that frame, which is in the image's memory. */
	uint64_t ucontext_addr;
	uint64_t fs_base, gs_base;
	uint64_t clear_child_tid; /* PR_GET_TID_ADDRESS */
	uint64_t robust_list, robust_list_len;
	uint64_t rseq_addr;
	uint32_t rseq_len, rseq_sig;
};

enum cs_image_fd_type {
	CS_FD_REGULAR = 1,
	CS_FD_DIRECTORY = 2,
	CS_FD_CHARDEV = 3,  /* /dev/null, a tty: reopened by path */
	CS_FD_PIPE = 4,     /* both ends are found by pipe_id */
	CS_FD_SOCKET_LISTEN = 5,
	CS_FD_SOCKET_DGRAM = 6,     /* bound datagram socket */
	CS_FD_SOCKET_CONNECTED = 7, /* comes back as a socket that reports a reset */
	CS_FD_EVENTFD = 8,
	CS_FD_TIMERFD = 9,
	CS_FD_EPOLL = 10,
	CS_FD_AGENT = 11,       /* the agent's own: recreated by the agent, not the restorer */
	CS_FD_UNSUPPORTED = 12, /* reason says what; restore refuses unless told to drop it */
	CS_FD_SOCKET_STREAM = 13, /* stream/seqpacket socket never connected: bound again if bound */
	CS_FD_TMPFILE = 14,       /* regular file without a name: content in file_data */
	CS_FD_FIFO = 15,          /* named FIFO: reopened by path, like a pipe otherwise */
	CS_FD_SIGNALFD = 16,      /* its signal mask in eventfd_count */
	CS_FD_SOCKETPAIR = 17,    /* unix socket whose peer is in the image (peer_id) or gone (0) */
	CS_FD_INOTIFY = 18,       /* its watches in file_data (docs/image-format.md) */
	CS_FD_MEMFD = 19,         /* memfd: content in file_data, pipe_id its inode (the ino of
	                           * SHMEM mappings of it), eventfd_flags its seals */
};
/* "REGULAR", "PIPE", ...; NULL for an unknown type. */
const char *cs_image_fd_type_name(uint32_t type);

struct cs_image_epoll_entry {
	int32_t tfd; /* the fd number the file was registered with */
	uint32_t events;
	uint64_t data;
	int32_t src_fd; /* the fd that holds the watched file now: tfd, unless the
			 * program closed or reused that number since */
};

/* One socket option, as getsockopt returned it. */
struct cs_image_sockopt {
	int32_t level, name;
	uint32_t len; /* <= CS_IMAGE_SOCKOPT_LEN */
	uint8_t val[CS_IMAGE_SOCKOPT_LEN];
};

/* A file lock or lease the process holds through an fd. */
enum cs_image_lock_kind {
	CS_LOCK_POSIX = 1, /* fcntl F_SETLK: the process's, per file */
	CS_LOCK_FLOCK = 2, /* flock: the open file description's */
	CS_LOCK_OFD = 3,   /* fcntl F_OFD_SETLK: the open file description's */
	CS_LOCK_LEASE = 4, /* fcntl F_SETLEASE */
};
#define CS_LOCK_READ  1
#define CS_LOCK_WRITE 2
#define CS_LOCK_EOF   UINT64_MAX /* end: to the end of the file, however long */

struct cs_image_lock {
	uint32_t kind; /* enum cs_image_lock_kind */
	uint32_t mode; /* CS_LOCK_READ or CS_LOCK_WRITE */
	uint64_t start, end; /* byte range, end inclusive; 0, EOF for whole-file kinds */
};

struct cs_image_fd {
	int32_t fd;
	uint32_t type;       /* enum cs_image_fd_type */
	uint32_t open_flags; /* O_* from fdinfo flags */
	uint32_t fd_flags;   /* FD_CLOEXEC */
	uint64_t offset;
	char path[CS_IMAGE_PATH_MAX]; /* file path, socket path, or readlink text */
	/* sockets */
	int32_t family, sock_type, protocol, backlog;
	uint32_t local_len, remote_len;
	uint8_t local_addr[CS_IMAGE_ADDR_MAX];
	uint8_t remote_addr[CS_IMAGE_ADDR_MAX];
	uint32_t sock_options; /* CS_SOCK_* */
	/* pipes; SOCKETPAIR: pipe_id is the socket's inode, pipe_data its
	 * receive queue (datagram and seqpacket: u32 length + bytes per message) */
	uint64_t pipe_id;       /* inode: both ends share it */
	uint32_t pipe_data_len; /* pending bytes (read end only) */
	const uint8_t *pipe_data;
	/* eventfd; signalfd: its mask (bit n-1 for signal n) */
	uint64_t eventfd_count;
	uint32_t eventfd_flags; /* EFD_SEMAPHORE, EFD_NONBLOCK */
	/* timerfd: remaining time, relative, so it survives the clock shift */
	int32_t timer_clockid;
	uint32_t timer_flags;
	uint64_t timer_value_ns, timer_interval_ns;
	/* epoll */
	uint32_t n_epoll;
	const struct cs_image_epoll_entry *epoll;
	char reason[256]; /* CS_FD_UNSUPPORTED: why */
	/* version 2 */
	uint32_t pipe_size; /* pipes: F_GETPIPE_SZ */
	int32_t share_fd;   /* a lower fd with the same open file description, or -1 */
	uint32_t file_mode; /* TMPFILE: st_mode & 07777 */
	uint32_t file_data_len;
	const uint8_t *file_data; /* TMPFILE: the whole content; INOTIFY: its watches */
	uint32_t n_sockopts;
	struct cs_image_sockopt sockopts[CS_IMAGE_SOCKOPTS_MAX];
	uint32_t n_locks;
	struct cs_image_lock locks[CS_IMAGE_LOCKS_MAX];
	uint64_t peer_id;  /* SOCKETPAIR: the peer socket's inode, 0 if it is gone */
	uint32_t shutdown; /* SOCKETPAIR: 1 receiving shut down, 2 sending shut down */
	/* sockets: the classic filter attached (struct sock_filter, 8 bytes each) */
	uint32_t filter_locked; /* SO_LOCK_FILTER */
	uint32_t filter_len;    /* bytes, a multiple of 8 */
	const uint8_t *filter;
};

/* Per-process attributes (ATTRS section, one record). */
struct cs_image_attrs {
	int32_t oom_score_adj;    /* -1000..1000 */
	uint32_t child_subreaper; /* PR_GET_CHILD_SUBREAPER: 0 or 1 */
	uint32_t thp_disable;     /* PR_GET_THP_DISABLE: 0 or 1 */
	uint32_t dumpable;        /* PR_GET_DUMPABLE: 0, 1 or 2 */
	uint32_t membarrier;      /* MEMBARRIER_CMD_GET_REGISTRATIONS: registered commands */
	/* scheduling, the same for every thread (the agent refuses otherwise) */
	int32_t nice;             /* -20..19 */
	uint32_t sched_policy;    /* SCHED_OTHER 0 .. SCHED_IDLE 5, | SCHED_RESET_ON_FORK */
	uint32_t sched_priority;  /* 0..99 */
	uint32_t affinity_len;    /* bytes of the CPU mask */
	uint8_t affinity[CS_IMAGE_AFFINITY_MAX];
};
#define CS_SCHED_RESET_ON_FORK 0x40000000u
/* The membarrier registrations the format carries: the kernel's bits of
 * MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, _PRIVATE_EXPEDITED,
 * _PRIVATE_EXPEDITED_SYNC_CORE and _PRIVATE_EXPEDITED_RSEQ. */
#define CS_MEMBARRIER_REGISTERED ((1u << 2) | (1u << 4) | (1u << 6) | (1u << 8))

/* Timers of the process (TIMERS section). */
enum cs_image_timer_kind {
	CS_TIMER_REAL = 1,    /* setitimer(ITIMER_REAL) */
	CS_TIMER_VIRTUAL = 2, /* setitimer(ITIMER_VIRTUAL) */
	CS_TIMER_PROF = 3,    /* setitimer(ITIMER_PROF) */
	CS_TIMER_POSIX = 4,   /* timer_create */
};
/* sigev_notify values the format carries (the kernel's numbers) */
#define CS_TIMER_NOTIFY_SIGNAL    0
#define CS_TIMER_NOTIFY_NONE      1
#define CS_TIMER_NOTIFY_THREAD_ID 4

struct cs_image_timer {
	uint32_t kind;       /* enum cs_image_timer_kind */
	int32_t id;          /* POSIX: the timer id the program holds; 0 otherwise */
	int32_t clockid;     /* POSIX */
	uint32_t notify;     /* POSIX: CS_TIMER_NOTIFY_* */
	uint32_t signo;      /* POSIX: sigev_signo */
	int32_t notify_tid;  /* POSIX, THREAD_ID: the thread */
	uint64_t sigval;     /* POSIX: sigev_value */
	uint64_t value_ns;   /* time to the next expiry, relative; 0 = disarmed */
	uint64_t interval_ns;
};

/* A signal pending at the frozen instant (SIGQUEUE section), with its
 * siginfo as the kernel holds it. tid 0 is the process's shared queue. */
struct cs_image_sigqueued {
	int32_t tid;    /* the thread whose own queue holds it; 0: the shared queue */
	uint32_t signo; /* 1..64, equal to the siginfo's si_signo */
	uint8_t info[CS_IMAGE_SIGINFO];
};

/* One seccomp filter of a thread (SECCOMP section), in the order the
 * thread's filters were installed, oldest first. */
#define CS_SECCOMP_FLAG_LOG        0x2u /* SECCOMP_FILTER_FLAG_LOG */
#define CS_SECCOMP_FLAG_SPEC_ALLOW 0x4u /* SECCOMP_FILTER_FLAG_SPEC_ALLOW */
#define CS_IMAGE_SECCOMP_MAX       65536 /* filters, all threads together */
struct cs_image_seccomp {
	int32_t tid;
	uint32_t flags;       /* CS_SECCOMP_FLAG_* */
	uint32_t len;         /* bytes: struct sock_filter of 8 each, >= 1 */
	const uint8_t *prog;  /* owned by the image */
};

struct cs_image_sigaction {
	uint32_t signo;
	uint32_t reserved;
	uint64_t handler, flags, restorer, mask;
};

struct cs_image_run {
	uint64_t addr;
	uint32_t npages;
};

/* A run of page data inside an image file: where its bytes are. */
struct cs_image_page_run {
	uint64_t addr;
	uint32_t npages;
	uint64_t file_offset; /* of the first page's bytes in the image */
};

/* The process's credentials (its main thread's) and the prctl state that
 * goes with them. A reader that does not know CREDS refuses the image: it
 * must not run the program with its own credentials instead. */
#define CS_IMAGE_GROUPS_MAX 1024
/* cs_image_fd.sock_options */
#define CS_SOCK_REUSEADDR 0x1u
#define CS_SOCK_REUSEPORT 0x2u
#define CS_SOCK_V6ONLY    0x4u /* IPV6_V6ONLY (AF_INET6) */

struct cs_image_creds {
	uint32_t uid[4]; /* real, effective, saved, filesystem */
	uint32_t gid[4];
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t securebits;
	uint32_t no_new_privs;
	uint32_t dumpable; /* PR_GET_DUMPABLE */
	uint32_t seccomp;  /* 0 none, 1 strict, 2 filter */
	uint32_t n_groups;
	uint32_t groups[CS_IMAGE_GROUPS_MAX];
};

struct cs_image_unsupported {
	char what[256]; /* "fd 7: socket:[1234] AF_NETLINK", "mapping 7f..-7f.. shared writable /dev/shm/x" */
};

/* ---- Writing ------------------------------------------------------------ */

/* Output: must write all len bytes or return -errno. */
typedef int (*cs_image_write_fn)(void *ctx, const void *buf, size_t len);

struct cs_image_writer {
	cs_image_write_fn write;
	void *ctx;
	uint64_t offset; /* bytes written so far */
	uint32_t sections;
	/* private */
	uint32_t type, crc;
	uint64_t remaining;
	int open;
};

void cs_image_writer_init(struct cs_image_writer *w, cs_image_write_fn write, void *ctx);
/* A section of exactly payload_len bytes, written in any number of pieces. */
int cs_image_section_begin(struct cs_image_writer *w, uint32_t type, uint64_t payload_len);
int cs_image_section_begin_flags(struct cs_image_writer *w, uint32_t type, uint32_t flags,
				 uint64_t payload_len);
int cs_image_section_write(struct cs_image_writer *w, const void *buf, size_t len);
/* The same for a piece whose CRC-32C the caller computed already (while the
 * bytes were still in its cache): crc is cs_crc32c(0, buf, len). */
int cs_image_section_write_summed(struct cs_image_writer *w, const void *buf, size_t len,
                                  uint32_t crc);
int cs_image_section_end(struct cs_image_writer *w); /* -EPROTO if the length is off */
/* The END section (section count and total bytes): the image is complete. */
int cs_image_write_end(struct cs_image_writer *w);
/* Any misuse (a write past payload_len, begin inside a section, a short
 * section) returns -EPROTO; after it or a failed write every call returns
 * that error, so a broken image is never finished with an END. */

/* A caller-owned byte buffer records are encoded into. */
struct cs_buf {
	uint8_t *data;
	size_t len, cap;
};

/*
 * Record encoders append one record to b and return 0, or -ENOSPC leaving b
 * unchanged (-EINVAL, b unchanged, for a string without NUL in its field or
 * a length above its maximum). A metadata section's payload is u32 count + records:
 * cs_image_put_count reserves the count and cs_image_set_count fills it in.
 * Order the reader enforces: mappings sorted by start and disjoint; fds
 * strictly ascending (a share_fd names an fd before it); timers by strictly
 * ascending (kind, id); sigactions by strictly ascending signo (1..64);
 * pending signals by ascending tid, each queue in the kernel's order;
 * RESIDENT runs, and page runs across all PAGES sections of an image,
 * ascending and disjoint.
 */
int cs_image_put_header(struct cs_buf *b, const struct cs_image_header *h);
int cs_image_put_process(struct cs_buf *b, const struct cs_image_process *p);
int cs_image_put_count(struct cs_buf *b, size_t *ret_pos);
void cs_image_set_count(struct cs_buf *b, size_t pos, uint32_t count);
int cs_image_put_mapping(struct cs_buf *b, const struct cs_image_mapping *m);
int cs_image_put_thread(struct cs_buf *b, const struct cs_image_thread *t);
int cs_image_put_fd(struct cs_buf *b, const struct cs_image_fd *f);
int cs_image_put_sigaction(struct cs_buf *b, const struct cs_image_sigaction *s);
int cs_image_put_run(struct cs_buf *b, const struct cs_image_run *r);
int cs_image_put_unsupported(struct cs_buf *b, const struct cs_image_unsupported *u);
int cs_image_put_creds(struct cs_buf *b, const struct cs_image_creds *c);
int cs_image_put_timer(struct cs_buf *b, const struct cs_image_timer *t);
int cs_image_put_attrs(struct cs_buf *b, const struct cs_image_attrs *a);
int cs_image_put_sigqueued(struct cs_buf *b, const struct cs_image_sigqueued *q);
int cs_image_put_seccomp(struct cs_buf *b, const struct cs_image_seccomp *f);
/* The 16-byte head of a page run inside PAGES; the npages * page_size bytes follow. */
int cs_image_put_page_run_head(struct cs_buf *b, uint64_t addr, uint32_t npages);
#define CS_IMAGE_PAGE_RUN_HEAD 16u
/*
 * PAGES_ALIGNED: u32 count, u32 data_off, count run heads (as in PAGES),
 * zeros up to data_off, then the bytes of every run in order. For a section
 * whose head starts at file offset section_off (the writer's offset before
 * it begins the section): the data_off that puts the first page's bytes on
 * a 4096-byte boundary of the file.
 */
uint32_t cs_image_aligned_data_off(uint64_t section_off, uint32_t count);
int cs_image_put_aligned_pages_head(struct cs_buf *b, uint32_t count, uint32_t data_off);

/* Convenience: write a whole metadata section whose payload is in b. */
int cs_image_write_section(struct cs_image_writer *w, uint32_t type, const struct cs_buf *b);

/* ---- Reading ------------------------------------------------------------ */

enum cs_image_err {
	CS_IMG_OK = 0,
	CS_IMG_TRUNCATED,     /* ends inside a section (a length runs past the end), or no END */
	CS_IMG_BAD_MAGIC,
	CS_IMG_BAD_VERSION,
	CS_IMG_BAD_CRC,
	CS_IMG_BAD_SECTION,   /* unknown type, bad order, duplicate, impossible length, bad END */
	CS_IMG_BAD_RECORD,    /* a record's field is out of range or inconsistent */
	CS_IMG_NO_MEMORY,
};
const char *cs_image_err_name(int code); /* "BAD_CRC", ...; NULL if unknown */

struct cs_image_error {
	int code;          /* enum cs_image_err */
	uint32_t section;  /* type of the damaged section, 0 if before any */
	uint64_t offset;   /* byte offset in the image where the damage was found: the
			    * section's start for framing and CRC errors, the field's
			    * start for record errors */
	char msg[200];     /* human sentence: "PAGES section at offset 8192: CRC mismatch" */
};

/* A decoded image. Arrays and strings are owned by it; page bytes are not
 * copied: page_runs give their offsets in the parsed buffer/file. */
struct cs_image {
	struct cs_image_header header;
	struct cs_image_process process;
	struct cs_image_mapping *mappings;
	size_t n_mappings;
	struct cs_image_thread *threads;
	size_t n_threads;
	struct cs_image_fd *fds; /* pipe_data and epoll point into memory owned by the image */
	size_t n_fds;
	struct cs_image_sigaction *sigactions;
	size_t n_sigactions;
	struct cs_image_run *resident;
	size_t n_resident;
	struct cs_image_page_run *page_runs;
	size_t n_page_runs;
	struct cs_image_unsupported *unsupported;
	size_t n_unsupported;
	int has_creds; /* a CREDS section was present */
	struct cs_image_creds creds;
	struct cs_image_timer *timers; /* sorted by (kind, id) */
	size_t n_timers;
	struct cs_image_attrs attrs;
	int has_attrs; /* an ATTRS section was present */
	struct cs_image_sigqueued *sigqueue; /* by tid (0 first), each queue in order */
	size_t n_sigqueue;
	struct cs_image_seccomp *seccomp; /* by tid, each thread's oldest first */
	size_t n_seccomp;
	uint64_t total_len; /* bytes up to and including END */
};

#define CS_IMAGE_PARSE_SKIP_PAGE_CRC 0x1u /* metadata only: do not read page bytes */

/*
 * Parses and verifies a whole image held in buf (typically an mmap of the
 * file). Returns 0 and *out, or a negative errno with *err filled in
 * (-EBADMSG for damage, -ENOMEM). Never reads outside [buf, buf + len).
 */
int cs_image_parse(const void *buf, size_t len, unsigned parse_flags, struct cs_image **out,
		   struct cs_image_error *err);
void cs_image_free(struct cs_image *img);
/*
 * Reads only the HEADER section at the start of buf (the first bytes of an
 * image file: its head, CRC and record), for a reader that needs the
 * generation, parent and kind without the rest. Same errors as
 * cs_image_parse; -EBADMSG with CS_IMG_TRUNCATED if buf ends inside it.
 */
int cs_image_read_header(const void *buf, size_t len, struct cs_image_header *out,
			 struct cs_image_error *err);

/*
 * Lookups for resolving a chain (docs/image-format.md, "Chains"); both are
 * binary searches, as the parser has checked that runs are sorted.
 * cs_image_find_page: the run of img's PAGES holding the page at addr (its
 * bytes are at run->file_offset + (addr - run->addr)), or NULL.
 * cs_image_page_resident: whether img's RESIDENT holds the page at addr.
 */
const struct cs_image_page_run *cs_image_find_page(const struct cs_image *img, uint64_t addr);
int cs_image_page_resident(const struct cs_image *img, uint64_t addr);

/* Image files in a checkpoint directory: DIR/gen-<20 digits>.img, written as
 * .tmp, fsync'd, renamed, directory fsync'd. */
#define CS_IMAGE_NAME_FMT "gen-%020llu.img"
/* Returns the name's length (28), or -ENOSPC if cap < 29. Signal-safe. */
int cs_image_filename(char *buf, size_t cap, uint64_t generation);
/* The other way: 0 and the generation (>= 1) for "gen-<20 digits>.img"
 * (*ret_is_tmp = 0) or "gen-<20 digits>.img.tmp" (*ret_is_tmp = 1), a
 * writer's unfinished file; -EINVAL for any other name. Signal-safe. */
int cs_image_name_parse(const char *name, uint64_t *ret_generation, int *ret_is_tmp);

#endif
