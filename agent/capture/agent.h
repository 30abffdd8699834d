/*
 * libchecksync internals: the state shared by the agent's modules.
 *
 * Two rules shape everything here. (1) During a freeze every other thread is
 * parked inside a signal handler and may hold any lock (malloc's, stdio's),
 * so the freeze path only makes raw system calls and uses memory obtained
 * beforehand with mmap ("scratch"). (2) The image is written by a
 * copy-on-write child made with a raw clone(2); the child inherits the
 * scratch data computed in the parent and owns everything it maps itself.
 */
#ifndef CS_CAPTURE_AGENT_H
#define CS_CAPTURE_AGENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cs_agent_abi.h"
#include "image.h"

#define CS_PAGE              4096u
#define CS_FREEZE_SIGNAL     (SIGRTMIN + 28) /* 62 with glibc: rarely used by programs */
#define CS_MAX_THREADS       4096
#define CS_MAX_FDS           4096
#define CS_MAX_TIMERS        4096
#define CS_MAX_FILTERS       4096 /* seccomp filters, all threads together */
#define CS_MAX_AGENT_REGIONS 16
#define CS_ERR_MAX           256

/* A mapping from /proc/self/maps (paths live in a string pool). */
struct cs_vma {
	uint64_t start, end, pgoff;
	uint64_t dev, ino;
	uint32_t prot, flags; /* PROT_*, CS_MAP_* */
	uint32_t path_off;    /* into cs_maps.pool; 0 = no path */
	uint32_t whole;       /* tracked but its pages go whole into this image */
};

struct cs_maps {
	struct cs_vma *v;
	size_t n, cap;
	char *pool;
	size_t pool_len, pool_cap;
};

/* A page run [addr, addr + npages * 4096). */
struct cs_run {
	uint64_t addr;
	uint64_t npages;
};

struct cs_runs {
	struct cs_run *r;
	size_t n, cap;
	int plain; /* grown with plain mmap: the writer child must not touch agent state */
};

/* What a parked thread recorded about itself. */
struct cs_thread_rec {
	int32_t tid;
	uint32_t flags;
	uint64_t ucontext;
	uint64_t fs_base, gs_base, clear_child_tid;
	uint64_t robust_list, robust_len;
	uint64_t rseq_addr;
	uint32_t rseq_len, rseq_sig;
	uint64_t pending; /* rt_sigpending in the handler: own and shared queues */
	uint32_t rseq_ask; /* an rseq area not glibc's is registered: the supervisor reads it */
};

/* Results the writer child leaves for the parent (a MAP_SHARED page). */
struct cs_child_result {
	int32_t done;          /* 1 once filled in */
	int32_t err;           /* negative errno, 0 on success */
	uint64_t bytes;        /* image size */
	uint64_t pages;        /* pages written */
	uint64_t hash_entries; /* hash mode: entries in the new table */
	int32_t need_copy;     /* DONTFORK/WIPEONFORK pages to write: copy mode needed */
	uint64_t direct_bytes; /* of the image's bytes, those written with O_DIRECT */
	uint32_t go;           /* futex: the writer starts once the threads are released */
	char msg[CS_ERR_MAX];
	char unsup[4 * CS_ERR_MAX]; /* refusals the writer found, newline-separated */
};

/* One hash-mode entry: the 64-bit hash of a resident tracked page. */
struct cs_hash_ent {
	uint64_t addr, hash;
};

enum cs_tracking_mode { CS_MODE_UFFD = 1, CS_MODE_HASH = 2 };

/* How the writer gets a consistent view (CHECKSYNC_WRITER, for benchmarks). */
enum cs_writer_mode { CS_WRITER_AUTO = 0, CS_WRITER_FORK = 1, CS_WRITER_COPY = 2 };
#define CS_COPY_MAX (64u << 20)

struct cs_config {
	char dir[CS_IMAGE_PATH_MAX];
	uint32_t interval_ms;
	uint32_t base_every;
	int mode;                  /* enum cs_tracking_mode asked for */
	int writer;                /* enum cs_writer_mode */
	int compactor;             /* CHECKSYNC_COMPACTOR=1: someone else folds the chain */
	int buffered;              /* CHECKSYNC_DIRECT_IO=0: page bytes through the page cache */
	uint64_t first_generation; /* CHECKSYNC_FIRST_GENERATION, default 1 */
	uint32_t sync_timeout_ms; /* cs_sync's last resort waiting for the daemon */
	uint32_t test_prescan_delay_us; /* CHECKSYNC_TEST_PRESCAN_DELAY_US (tests only) */
};

/* The checkpoint being taken: filled during the freeze, read by the child. */
struct cs_capture {
	uint64_t generation, parent, base;
	int is_base;
	struct cs_maps maps;
	struct cs_runs resident; /* live tracked pages, parent side (hash mode: if PAGEMAP_SCAN) */
	struct cs_runs send;     /* uffd mode: pages whose bytes go into the image */
	uint64_t send_pages, resident_pages;
	/* copy mode: the send pages copied during the freeze, back to back
	 * in run order, as the data of the PAGES_ALIGNED section: the writer
	 * hands it to write(2) in one piece, with O_DIRECT where the file
	 * system takes it; the writer then shares memory with the process
	 * (no page tables copied) */
	int copy_mode;
	uint8_t *copy;
	size_t copy_cap, copy_len;
	uint32_t copy_crc; /* cs_crc32c of copy[0, copy_len), taken as it was copied */
	uint64_t brk;
	/* shared memory mappings (shmem.c): their live pages, copied during
	 * the freeze into shm_data in run order */
	struct cs_runs shm;
	uint8_t *shm_data;
	size_t shm_len, shm_cap;
	struct cs_thread_rec *threads;
	uint32_t n_threads;
	struct cs_image_fd *fds;
	uint32_t n_fds;
	struct cs_image_timer *timers; /* interval timers, then POSIX timers by id */
	uint32_t n_timers;
	struct cs_image_attrs attrs;
	struct cs_image_sigqueued *sigq; /* pending signals: shared queue, then by tid */
	uint32_t n_sigq;
	struct cs_image_seccomp *filters; /* seccomp filters by tid, oldest first */
	uint32_t n_filters;
	uint8_t *filter_pool; /* their programs */
	size_t filter_pool_len, filter_pool_cap;
	uint8_t *fd_pool; /* pipe bytes and epoll entries */
	size_t fd_pool_len, fd_pool_cap;
	char *unsup; /* newline-separated "what" strings */
	size_t unsup_len, unsup_cap;
	int64_t clocks[3];           /* realtime, monotonic, boottime */
	struct cs_image_creds creds; /* at the frozen instant (creds.c) */
	int dir_fd;
	pid_t ppid;
	char comm[16];
	int err;
	char errmsg[CS_ERR_MAX];
};

struct cs_agent {
	struct cs_config cfg;
	int active;
	int mode;              /* what actually runs */
	int have_pagemap_scan; /* PAGEMAP_SCAN works: resident scans skip holes */
	int uffd, pagemap_fd, lock_fd, listen_fd, wake_fd, dir_fd;
	int sup_fd; /* connection to the supervisor (supervisor.c), -1 until needed */
	/* wake_fd belongs to this process (guarded by the API mutex): after a
	 * restore its number is free until the agent opens a new one, and an
	 * application thread may meanwhile own a file of its own there. */
	int wake_ok;
	int tee_pipe[2]; /* scratch pipe for copying pending pipe bytes */
	pid_t pid, agent_tid;
	uint64_t next_generation, last_generation, chain_base, prev_base;
	uint64_t chain_deltas, chain_delta_bytes, base_bytes;
	uint64_t restored_from;
	pid_t child_pid;
	int client_fd[8];
	int force_base;
	uint64_t epoch; /* bumped at each restore: fds from before are gone */
	/* hash mode: two tables in MAP_SHARED memory, the child fills the spare */
	struct cs_hash_ent *hash_tab[2];
	size_t hash_cap; /* entries in each */
	uint64_t hash_n;
	int hash_cur;
	struct cs_child_result *result; /* MAP_SHARED */
	struct cs_capture cap;
	/* statistics */
	uint64_t direct_bytes_total; /* of bytes_total, written with O_DIRECT */
	uint64_t checkpoints, bytes_total, last_pause_ns, max_pause_ns, last_bytes, last_pages;
	uint64_t failures;
	uint32_t failed_in_row; /* periodic checkpoints back off while this grows */
	int copy_always; /* a writer met DONTFORK/WIPEONFORK pages: no forked writer */
	/* where the last pause went: stop, maps, dirty scan, fds, copy and
	 * clone, the PAGEMAP_SCAN part of the scan, the copy of the delta */
	uint64_t phase_ns[7];
	int last_copy_mode;
	uint64_t last_pause_cpu_ns; /* agent CPU time inside the pause (no scheduling noise) */
	/* Pauses of successful checkpoints since start or restore, counted at
	 * or below each of CS_AGENT_PAUSE_BOUNDS_US (cumulative), for the
	 * daemon's histogram. */
	uint64_t pause_le[CS_AGENT_PAUSE_BUCKETS], pause_count, pause_sum_ns;
	char last_error[CS_ERR_MAX];
};

extern struct cs_agent cs_agent;
extern struct cs_agent_restore_block cs_restore_block;

/* agent.c: the pause histogram of the status reply (cs_agent_abi.h). */
void cs_agent_count_pause(struct cs_agent *a, uint64_t pause_ns);

/* scratch.c: memory from mmap, remembered so maps parsing can mark it */
void *cs_scratch_alloc(size_t len, int shared);
void cs_scratch_free(void *p, size_t len);
int cs_scratch_is_agent(uint64_t start, uint64_t end);
int cs_scratch_grow(void **p, size_t *cap, size_t elem, size_t need);
void cs_scratch_forget_all(void);
void cs_scratch_mark_mapped(void);
void cs_maps_reset(void);
void cs_track_reset(void);
void cs_fds_reset(void);
void cs_capture_reset(struct cs_agent *a);
int cs_plain_grow(void **p, size_t *cap, size_t elem, size_t need);

/* util.c: formatting and parsing without stdio or malloc */
size_t cs_fmt_u64(char *buf, uint64_t v);
size_t cs_fmt_hex(char *buf, uint64_t v);
size_t cs_strlcpy(char *dst, const char *src, size_t cap);
size_t cs_strlcat(char *dst, const char *src, size_t cap);
int cs_parse_u64(const char **s, uint64_t *out, int base);
ssize_t cs_read_file(const char *path, char *buf, size_t cap);
int64_t cs_clock_ns(int clockid);
void cs_copy(void *dst, const void *src, size_t len);
int cs_set_err(char *dst, const char *a, const char *b, const char *c);
const char *cs_errname(int e);

/* maps.c */
int cs_maps_read(struct cs_maps *m);
const char *cs_vma_path(const struct cs_maps *m, const struct cs_vma *v);
/* The mapped file through /proc/self/map_files/START-END (it needs
 * CAP_CHECKPOINT_RESTORE): an fd, or -1 with errno. */
int cs_vma_open(const struct cs_vma *v);
/* "mapping START-END", as refusals name a mapping */
void cs_vma_name(char *out, size_t cap, const struct cs_vma *v);

/* track.c */
int cs_track_open(struct cs_agent *a);
void cs_track_give_pagemap(int fd);
void cs_track_give_uffd(int fd);
void cs_track_close(struct cs_agent *a);
void cs_track_prescan(struct cs_agent *a, const struct cs_maps *maps);
/* Pages the last prescan saw written, or the last delta when R0 was carried
 * from its scan (0 when neither). */
uint64_t cs_track_prescan_written(void);
/* How many prescans walked the page tables (the others started from the
 * last delta's scan). */
uint64_t cs_track_prescan_walks(void);
int cs_track_scan(struct cs_agent *a, struct cs_capture *c);
int cs_resident_scan(const struct cs_vma *v, int pagemap_fd, struct cs_runs *out);
int cs_resident_all(const struct cs_maps *maps, int pagemap_fd, struct cs_runs *one,
                    struct cs_runs *resident);
int cs_runs_add(struct cs_runs *r, uint64_t addr, uint64_t npages);
void cs_runs_normalize(struct cs_runs *r);
/* Set algebra on sorted, disjoint runs; each adds to out (to). */
int cs_runs_and(const struct cs_runs *x, const struct cs_runs *y, struct cs_runs *out);
int cs_runs_sub(const struct cs_runs *x, const struct cs_runs *d, struct cs_runs *out);
int cs_runs_append(struct cs_runs *to, const struct cs_runs *from);
uint64_t cs_runs_pages(const struct cs_runs *r);
int cs_runs_overlap(const struct cs_runs *r, uint64_t start, uint64_t end);

/* shmem.c: shared memory objects, copied in full during the freeze */
#define CS_SHMEM_MAX (64u << 20) /* bytes of all shared mappings together */
int cs_shmem_capture(struct cs_capture *c);
/* Adds the copied pages to runs (sorted and disjoint again). */
int cs_shmem_merge(const struct cs_capture *c, struct cs_runs *runs);
/* npages from addr into dst, shared memory pages from the freeze's copy
 * (the program writes on; a PROT_NONE one cannot be read in place). */
void cs_shmem_copy(const struct cs_capture *c, uint8_t *dst, uint64_t addr, uint32_t npages);
/* The same past the cache (for a device to read), the bytes summed on the
 * way: returns crc extended over them (cs_crc32c_copy). */
uint32_t cs_shmem_copy_summed(const struct cs_capture *c, uint8_t *dst, uint64_t addr,
                              uint32_t npages, uint32_t crc);

/* fds.c: runs in the parent during the freeze (file descriptions are shared) */
int cs_fds_capture(struct cs_agent *a, struct cs_capture *c);
int cs_fd_is_agent(const struct cs_agent *a, int fd);
void cs_unsup_add(struct cs_capture *c, const char *what);
/* Marks f UNSUPPORTED with reason and names it in the capture's refusals. */
void cs_fd_unsupported(struct cs_capture *c, struct cs_image_fd *f, const char *reason);
int cs_fd_pool_reserve(struct cs_capture *c, size_t more);
/* Identity of each captured fd's file, by index (fds of one inode may share
 * an open file description). */
struct cs_fd_ident {
	uint64_t dev, ino, size;
};
/* tmpfile.c: unlinked regular files; their content is read once the
 * duplicates are known */
#define CS_TMPFILE_TOTAL_MAX (16u << 20)
struct stat;
void cs_tmpfile_classify(struct cs_capture *c, struct cs_image_fd *f, const struct stat *st);
void cs_tmpfiles_content(struct cs_capture *c, const struct cs_fd_ident *ids);
/* inotify.c: an inotify fd's watches into file_data (a pool offset) */
void cs_inotify_capture(struct cs_capture *c, struct cs_image_fd *f, const char *info);
void cs_inotify_reset(void);
/* sockets.c: type, state, addresses and options of a socket fd */
void cs_socket_capture(struct cs_capture *c, struct cs_image_fd *f);
/* The receive queue of a SOCKETPAIR end into pipe_data (a pool offset). */
void cs_socket_queue(struct cs_capture *c, struct cs_image_fd *f);
void cs_sockets_done(void);  /* closes what the socket capture opened */
/* multicast.c: the groups a datagram socket joined, as sockopts */
void cs_socket_multicast(struct cs_capture *c, struct cs_image_fd *f);
void cs_sockets_reset(void); /* forgets the cached defaults of new sockets */

/* threads.c: one thread as /proc/self/task/T shows it */
struct cs_thread_look {
	char state;                /* 'R', 'S', 'D', 'T', 't', ... */
	uint64_t blocked, pending; /* SigBlk, SigPnd (the thread's own) */
	long sysno;                /* the call it sleeps in; -1: none, running or unknown */
	uint64_t args[6];
	uint64_t pc; /* just after its syscall instruction */
	int seccomp; /* 0 none, 1 strict, 2 filters */
	char comm[16];
};
int cs_thread_look(pid_t tid, struct cs_thread_look *t);
/* The number after "\n<key>" ("\nSigPnd:") in /proc/self/task/T/status
 * (T 0: /proc/self/status), in base; 0 if it cannot be read. */
uint64_t cs_status_field(pid_t tid, const char *key, int base);
void cs_thread_describe(char *out, pid_t tid, const struct cs_thread_look *t);

/* sleepers.c: calls a freeze must not end early (the kernel does not
 * restart them after a handler ran) are issued again by the handler */
int cs_sleep_init(void);
void cs_sleep_clear(void);
void cs_sleep_reset(void);
void cs_sleep_note(pid_t tid, const struct cs_thread_look *t);
void cs_sleep_rewind(pid_t tid, void *uc);
/* Calls continued to their deadline, and calls left to return EINTR
 * because their deadline was unknown (raw system calls, libc's own). */
void cs_sleep_counts(uint64_t *ret_continued, uint64_t *ret_cut);

/*
 * Per thread (initial-exec TLS, so in the image with the thread): what a
 * libc wrapper knows of the call it is in (sleepwrap.c), and the call the
 * freeze handler sent the thread back into (cs_sleep_resume, until its
 * deadline). Written by the thread itself and by its own signal handler.
 */
struct cs_sleep_slot {
	long wait_nr;          /* the system call the wrapped libc call makes; 0: none */
	int64_t wait_deadline; /* its deadline, CLOCK_MONOTONIC ns */
	long nr;               /* the call being continued; 0: none */
	int clock;             /* the clock of deadline */
	volatile int again;    /* a freeze interrupted the continued call: go on */
	int64_t deadline;
	uint64_t args[6]; /* the program's registers rdi, rsi, rdx, r10, r8, r9 */
	uint64_t pc;      /* where the program's call returns to */
};
extern __thread struct cs_sleep_slot cs_sleep_slot __attribute__((tls_model("initial-exec")));
/* sleep_resume.S: the program's thread resumes there; it continues the
 * call in the slot (cs_sleep_resume_c) and returns to the slot's pc with
 * the program's registers. cs_sleep_syscall_end follows the syscall
 * instruction of the continued call. */
void cs_sleep_resume(void);
extern char cs_sleep_syscall_end[];
long cs_sleep_syscall(const uint64_t *nr_args);
/* The registers cs_sleep_resume saved, and the pc it jumps back to. */
struct cs_resume_regs {
	uint64_t pc, rdi, rsi, rdx, r10, r8, r9, sp;
};
long cs_sleep_resume_c(struct cs_resume_regs *r);
/* sleepwrap.c: libc's functions found before any wrapper is called. */
void cs_sleepwrap_init(void);
/* The next definition of a function the agent wraps (dlsym RTLD_NEXT: libc,
 * or the preloaded agent's wrapper), raw when there is none (a static
 * program), kept in *slot. CS_WRAP_NEXT(fn) uses next_fn and raw_fn.
 * Hidden: RTLD_NEXT is relative to the caller's object, and a program that
 * links the agent and exports its symbols would otherwise answer for the
 * preloaded copy too (which then found itself as its own next: a loop). */
void *cs_wrap_next(void **slot, const char *name, void *raw) __attribute__((visibility("hidden")));
#define CS_WRAP_NEXT(fn)                                                                           \
	((__typeof__(next_##fn))(next_##fn                                                         \
	                             ? (void *)next_##fn                                           \
	                             : cs_wrap_next((void **)&next_##fn, #fn, (void *)raw_##fn)))
/* follow.c: the agent thread makes the capability changes the program's
 * threads make on themselves (capset, prctl), so glibc's set*id on every
 * thread succeeds on the agent's too. */
#define CS_FOLLOW_TOKEN 0x80000000u /* in the low half of a signal's token */
void cs_follow_init(void);
void cs_follow_run(void);
int cs_freeze_ask_agent(void); /* freeze.c: the signal with CS_FOLLOW_TOKEN */

/* creds.c: buf[cap] is scratch for /proc/self/status */
int cs_creds_capture(struct cs_image_creds *c, char *buf, size_t cap);

/* supervisor.c: stop a thread with its mask opened for sig, let it go */
int cs_sup_ready(struct cs_agent *a, char *why);
int cs_sup_stop(struct cs_agent *a, pid_t tid, int sig, uint64_t *ret_mask, char *why);
int cs_sup_cont(struct cs_agent *a, pid_t tid, char *why);
int cs_sup_own_dir(struct cs_agent *a, char *why);
int cs_sup_own(struct cs_agent *a, char *why);
/* The thread's rseq registration (PTRACE_GET_RSEQ_CONFIGURATION). */
int cs_sup_rseq(struct cs_agent *a, pid_t tid, uint64_t *ret_addr, uint32_t *ret_len,
                uint32_t *ret_sig, char *why);
/* freeze.c, during the freeze: the rseq areas the threads could not name */
void cs_rseq_capture(struct cs_agent *a, struct cs_capture *c);
/* The siginfos queued on tid (shared: the process's queue instead), in the
 * kernel's order: *ret_n of CS_IMAGE_SIGINFO bytes at *ret_infos, valid
 * until the next call. */
int cs_sup_sigqueue(struct cs_agent *a, pid_t tid, int shared, const uint8_t **ret_infos,
                    uint32_t *ret_n, char *why);
/* tid's seccomp filters as the supervisor sends them (cs_agent_abi.h):
 * *ret_len bytes at *ret_data holding *ret_n filters; valid until the
 * next call. */
int cs_sup_seccomp(struct cs_agent *a, pid_t tid, const uint8_t **ret_data, size_t *ret_len,
                   uint32_t *ret_n, char *why);

/* timers.c: runs in the parent during the freeze (timers are not inherited) */
int cs_timers_capture(struct cs_capture *c);
void cs_timers_reset(void);
/* sigqueue.c: signals pending at the frozen instant, read without taking
 * them (the supervisor's PTRACE_PEEKSIGINFO); after cs_timers_capture */
int cs_sigqueue_capture(struct cs_agent *a, struct cs_capture *c);
/* seccomp.c: every thread's seccomp filters (the supervisor's
 * PTRACE_SECCOMP_GET_FILTER), when any thread has some; after creds */
int cs_seccomp_capture(struct cs_agent *a, struct cs_capture *c);
void cs_seccomp_note(int mode); /* what a look at a thread saw */
/* attrs.c: runs in the parent during the freeze */
int cs_attrs_capture(struct cs_capture *c);
/* freeze.c */
int cs_freeze_install(void);
int cs_freeze_is_ours(const struct sigaction *sa);
/* Calls fn for every thread but the agent's, until it answers nonzero. */
int cs_for_each_thread(int (*fn)(pid_t tid, void *arg), void *arg);

/* sigtake.c: the freeze signal taken by other handlers (Go's) */
void cs_sig_keep_prev(const struct sigaction *sa);
void cs_sig_forward(int sig, siginfo_t *si, void *uc);
int cs_sig_to_main(int sig, const siginfo_t *si);
int cs_freeze_and_capture(struct cs_agent *a, uint64_t *pause_ns);
int cs_freeze_signal_ok(void);

/* The freeze signal taken by another handler and taken back (freeze.c). */
struct cs_sig_report {
	int signal;                /* CS_FREEZE_SIGNAL */
	uint64_t takeovers;        /* times another handler was found in the agent's place */
	uint64_t foreign;          /* the last one found: address; 0 = SIG_DFL, 1 = SIG_IGN */
	int64_t first_ns, last_ns; /* CLOCK_REALTIME when found; 0 = never */
	uint64_t forwarded;        /* signals the agent did not send, passed to that handler */
};
void cs_freeze_sig_report(struct cs_sig_report *out);
void cs_freeze_reset(void);
int cs_capture_frozen(struct cs_agent *a, struct cs_capture *c);

/* vmflags.c, in the writer: each captured mapping's madvise advice
 * (CS_MADV_*) into madv[maps.n]; -EAGAIN when a forked writer cannot read
 * pages it must write (result->need_copy is then set). */
struct dump;
int cs_vmflags_read(struct dump *d, uint32_t *madv);
/* In the agent: the wrappers of madvise and posix_madvise found their next
 * definitions (init, at start), the smaps cache exists before a writer
 * starts (prepare), and is forgotten after a restore (reset). */
void cs_vmflags_init(void);
void cs_vmflags_prepare(void);
void cs_vmflags_reset(void);
/* Writers since start or restore that read smaps, and that used what an
 * earlier one read. */
void cs_vmflags_counts(uint64_t *reads, uint64_t *hits);

/* dump.c: the writer child */
int cs_dump_child(struct cs_agent *a, struct cs_capture *c);
/* Longest page run one run head of PAGES_ALIGNED carries. */
#define CS_RUN_MAX_PAGES (1u << 20)
/* Copy-mode writers share the agent's memory and reuse buffers that stay
 * mapped (and faulted in) between checkpoints; called during the freeze.
 * cs_dump_reset forgets them after a restore. */
int cs_dump_keep_buffers(void);
void cs_dump_reset(void);

/* procinfo.c */
int cs_fill_process(struct cs_agent *a, struct cs_image_process *p);
int cs_fill_header(struct cs_agent *a, struct cs_capture *c, struct cs_image_header *h);
int cs_build_id(int fd, uint8_t *out, uint32_t *out_len);
void cs_auxv_keep(void);

/* checkpoint.c */
int cs_take_checkpoint(struct cs_agent *a, uint64_t *ret_generation);
/* After a restore, before the checkpoint that answers API requests up to
 * serving (agent.c run_checkpoint). */
void cs_after_restore(struct cs_agent *a, uint64_t serving);

/* agent.c: a checkpoint for a requester; *restored says the process was
 * restored meanwhile (the requester's fd is gone) */
int cs_agent_run_checkpoint(uint64_t *gen, int *restored);

/* sync.c: cs_sync's wait for the daemon (DIR/sync.sock). 1: no daemon
 * runs this process; 0: the daemon acknowledged generation; -errno. */
int cs_sync_wait_daemon(const char *dir, uint64_t generation, uint32_t timeout_ms);
int cs_sync_parse_reply(const char *reply, uint64_t generation);

/* control.c */
int cs_control_open(struct cs_agent *a);
void cs_control_serve(struct cs_agent *a, int fd);

#endif
