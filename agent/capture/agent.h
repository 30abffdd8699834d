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
};

/* Results the writer child leaves for the parent (a MAP_SHARED page). */
struct cs_child_result {
	int32_t done;          /* 1 once filled in */
	int32_t err;           /* negative errno, 0 on success */
	uint64_t bytes;        /* image size */
	uint64_t pages;        /* pages written */
	uint64_t hash_entries; /* hash mode: entries in the new table */
	uint32_t go;           /* futex: the writer starts once the threads are released */
	char msg[CS_ERR_MAX];
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
	int mode;      /* enum cs_tracking_mode asked for */
	int writer;    /* enum cs_writer_mode */
	int compactor; /* CHECKSYNC_COMPACTOR=1: someone else folds the chain */
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
	/* copy mode: the send pages copied during the freeze, laid out as
	 * the PAGES section's payload (each run's head, then its bytes), so
	 * the writer hands it to write(2) in one piece; the writer then
	 * shares memory with the process (no page tables copied) */
	int copy_mode;
	uint8_t *copy;
	size_t copy_cap, copy_len;
	uint64_t brk;
	struct cs_thread_rec *threads;
	uint32_t n_threads;
	struct cs_image_fd *fds;
	uint32_t n_fds;
	struct cs_image_timer *timers; /* interval timers, then POSIX timers by id */
	uint32_t n_timers;
	struct cs_image_attrs attrs;
	uint8_t *fd_pool; /* pipe bytes and epoll entries */
	size_t fd_pool_len, fd_pool_cap;
	char *unsup; /* newline-separated "what" strings */
	size_t unsup_len, unsup_cap;
	int64_t clocks[3]; /* realtime, monotonic, boottime */
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
	uint64_t checkpoints, bytes_total, last_pause_ns, max_pause_ns, last_bytes, last_pages;
	uint64_t failures;
	uint32_t failed_in_row; /* periodic checkpoints back off while this grows */
	/* where the last pause went: stop, maps, dirty scan, fds, copy and
	 * clone, the PAGEMAP_SCAN part of the scan, the copy of the delta */
	uint64_t phase_ns[7];
	int last_copy_mode;
	uint64_t last_pause_cpu_ns; /* agent CPU time inside the pause (no scheduling noise) */
	char last_error[CS_ERR_MAX];
};

extern struct cs_agent cs_agent;
extern struct cs_agent_restore_block cs_restore_block;

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

/* track.c */
int cs_track_open(struct cs_agent *a);
void cs_track_give_pagemap(int fd);
void cs_track_close(struct cs_agent *a);
void cs_track_prescan(struct cs_agent *a, const struct cs_maps *maps);
int cs_track_scan(struct cs_agent *a, struct cs_capture *c);
int cs_resident_scan(const struct cs_vma *v, int pagemap_fd, struct cs_runs *out);
int cs_resident_all(const struct cs_maps *maps, int pagemap_fd, struct cs_runs *one,
                    struct cs_runs *resident);
int cs_runs_add(struct cs_runs *r, uint64_t addr, uint64_t npages);
void cs_runs_normalize(struct cs_runs *r);
int cs_runs_overlap(const struct cs_runs *r, uint64_t start, uint64_t end);

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
void cs_sockets_reset(void); /* forgets the cached defaults of new sockets */

/* threads.c: one thread as /proc/self/task/T shows it */
struct cs_thread_look {
	char state;                /* 'R', 'S', 'D', 'T', 't', ... */
	uint64_t blocked, pending; /* SigBlk, SigPnd (the thread's own) */
	long sysno;                /* the call it sleeps in; -1: none, running or unknown */
	uint64_t args[6];
	uint64_t pc; /* just after its syscall instruction */
	char comm[16];
};
int cs_thread_look(pid_t tid, struct cs_thread_look *t);
void cs_thread_describe(char *out, pid_t tid, const struct cs_thread_look *t);

/* sleepers.c: calls a freeze must not end early (the kernel does not
 * restart them after a handler ran) are issued again by the handler */
int cs_sleep_init(void);
void cs_sleep_clear(void);
void cs_sleep_reset(void);
void cs_sleep_note(pid_t tid, const struct cs_thread_look *t);
void cs_sleep_rewind(pid_t tid, void *uc);

/* creds.c: buf[cap] is scratch for /proc/self/status */
int cs_creds_capture(struct cs_image_creds *c, char *buf, size_t cap);

/* supervisor.c: stop a thread with its mask opened for sig, let it go */
int cs_sup_ready(struct cs_agent *a, char *why);
int cs_sup_stop(struct cs_agent *a, pid_t tid, int sig, uint64_t *ret_mask, char *why);
int cs_sup_cont(struct cs_agent *a, pid_t tid, char *why);
int cs_sup_own_dir(struct cs_agent *a, char *why);
int cs_sup_own(struct cs_agent *a, char *why);

/* timers.c: runs in the parent during the freeze (timers are not inherited) */
int cs_timers_capture(struct cs_capture *c);
void cs_timers_reset(void);
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

/* dump.c: the writer child */
int cs_dump_child(struct cs_agent *a, struct cs_capture *c);
/* Longest page run one PAGES record carries, and the PAGES payload size
 * for a list of runs (each run's heads plus its bytes). */
#define CS_RUN_MAX_PAGES (1u << 20)
uint64_t cs_page_section_len(const struct cs_runs *send);
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
void cs_after_restore(struct cs_agent *a);

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
