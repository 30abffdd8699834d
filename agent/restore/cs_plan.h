/*
 * The restore plan: what the checksync tool (libc, validates everything)
 * hands the freestanding restorer (no libc, does only what the plan says).
 *
 * The tool writes the plan into a memfd; the restorer maps it at
 * CS_RESTORER_PLAN_ADDR. It is an internal format between two programs of
 * the same build (the version guards against a stale install), made of a
 * header and flat arrays of fixed-size records at offsets from the start.
 * Every fd number in it is final: the tool's child places each helper fd
 * (plan, images, mapped files, executable, status pipe) at that number
 * before it execs the restorer.
 */
#ifndef CS_RESTORE_PLAN_H
#define CS_RESTORE_PLAN_H

#include <stdint.h>

#include "../include/cs_agent_abi.h"

#define CS_PLAN_MAGIC   0x4e414c50434e5953ull /* "SYNCPLAN" */
#define CS_PLAN_VERSION 6

/*
 * The restorer's own region. Its ELF is linked at CS_RESTORER_BASE; its
 * stack is in its bss; the plan, the parked vDSO pages and the stacks of
 * threads being created all live inside [BASE, BASE + LEN), which the last
 * trampoline unmaps in one call. 0x6a5a'0000'0000 is far below the mmap
 * base (0x7f..), far above PIE executables (0x55..-0x56..) and the brk
 * heap, and between Go's arena hints (0x..c0'0000'0000, one per 2^40).
 */
#define CS_RESTORER_BASE         0x6a5a00000000ull
#define CS_RESTORER_LEN          0x40000000ull
#define CS_RESTORER_PLAN_ADDR    (CS_RESTORER_BASE + 0x10000000ull)
#define CS_RESTORER_PARK_ADDR    (CS_RESTORER_BASE + 0x20000000ull)
#define CS_RESTORER_STACKS_ADDR  (CS_RESTORER_BASE + 0x30000000ull)
#define CS_RESTORER_THREAD_STACK 0x10000ull
#define CS_RESTORER_MAX_THREADS  ((0x10000000ull / CS_RESTORER_THREAD_STACK) - 1)

/* cs_plan_map.kind */
enum cs_plan_map_kind {
	CS_PLAN_MAP_ANON = 0,
	CS_PLAN_MAP_FILE = 1,
	CS_PLAN_MAP_SHMEM = 2, /* a memfd of the tool's, MAP_SHARED, pages loaded into it */
};

struct cs_plan_map {
	uint64_t start, len;
	uint64_t pgoff;
	uint32_t kind;      /* enum cs_plan_map_kind */
	uint32_t prot;      /* final PROT_* */
	uint32_t mmap_flags; /* MAP_PRIVATE or MAP_SHARED, MAP_GROWSDOWN, MAP_NORESERVE */
	int32_t fd;         /* CS_PLAN_MAP_FILE: identity-checked file */
	uint32_t has_pages; /* mapped writable until the page copies are done */
	uint32_t advice;    /* CS_PLAN_MADV_*: madvise given again */
};
/* The image's CS_MADV_* bits (proto/image.h), the same values. */
#define CS_PLAN_MADV_DONTFORK   0x01u
#define CS_PLAN_MADV_WIPEONFORK 0x02u
#define CS_PLAN_MADV_DONTDUMP   0x04u
#define CS_PLAN_MADV_HUGEPAGE   0x08u
#define CS_PLAN_MADV_NOHUGEPAGE 0x10u
#define CS_PLAN_MADV_MERGEABLE  0x20u
#define CS_PLAN_MADV_SEQUENTIAL 0x40u
#define CS_PLAN_MADV_RANDOM     0x80u

/* Bytes of an image file that go to [addr, addr + len). */
struct cs_plan_copy {
	uint64_t addr, len, file_off;
	int32_t fd;
	uint32_t reserved;
};

struct cs_plan_thread {
	int32_t tid;
	uint32_t is_main;
	uint64_t ucontext, fs_base, gs_base;
	uint64_t clear_child_tid;
	uint64_t robust_list, robust_len;
	uint64_t rseq_addr;
	uint32_t rseq_len, rseq_sig;
};

struct cs_plan_sigaction {
	uint32_t signo, reserved;
	uint64_t handler, flags, restorer, mask;
};

/* [vvar], [vvar_vclock], [vdso]: where the kernel put ours relative to
 * AT_SYSINFO_EHDR (same kernel, measured by the tool), and where the image
 * had them. */
enum { CS_PLAN_VVAR, CS_PLAN_VVAR_VCLOCK, CS_PLAN_VDSO, CS_PLAN_SPECIALS };
struct cs_plan_special {
	int64_t rel;     /* current start - current vdso start */
	uint64_t len;    /* 0: this kernel has none */
	uint64_t target; /* saved start */
};

/* A timer to create (proto/image.h: struct cs_image_timer, the same fields). */
struct cs_plan_timer {
	uint32_t kind; /* CS_TIMER_REAL .. CS_TIMER_POSIX */
	int32_t id, clockid;
	uint32_t notify, signo;
	int32_t notify_tid;
	uint64_t sigval, value_ns, interval_ns;
};

/* A pending signal to queue again (proto/image.h: struct cs_image_sigqueued):
 * tid 0 is the process's shared queue. */
struct cs_plan_siginfo {
	int32_t tid;
	uint32_t signo;
	uint8_t info[CS_SIGINFO_SIZE];
};

/* A seccomp filter to install on thread tid (oldest first): len bytes of
 * classic BPF at prog_off in the plan. */
struct cs_plan_seccomp {
	int32_t tid;
	uint32_t flags; /* SECCOMP_FILTER_FLAG_LOG, _SPEC_ALLOW */
	uint32_t len, reserved;
	uint64_t prog_off;
};

/* A range of a mapping the standby keeps across generations (standby.c):
 * its final protection; has_pages: it receives pages in this step, so it is
 * made writable for the copy. Also used for page ranges to drop. */
struct cs_plan_range {
	uint64_t start, len;
	uint32_t prot, has_pages;
};

/* A POSIX record lock the promoted process takes itself: POSIX locks
 * belong to the process that takes them (struct flock's fields). */
struct cs_plan_lock {
	int32_t fd;
	int16_t type, whence;
	int64_t start, len;
};

/* A mapping whose writes the agent tracks (the image's CS_MAP_TRACKED):
 * registered for async write-protect and armed before any thread runs,
 * so the restored agent goes on with a delta (track.c). file: a file
 * mapping, whose pages still shared with the file are not armed, as the
 * agent's own scan leaves them. */
struct cs_plan_track {
	uint64_t start, len;
	uint32_t file, reserved;
};

/* What a plan asks of the restorer (cs_plan_header.mode). */
enum cs_plan_mode {
	CS_PLAN_RESTORE = 0, /* a cold restore: memory, then threads at once */
	CS_PLAN_STANDBY = 1, /* memory, then wait on control_fd for the next plans */
	CS_PLAN_APPLY = 2,   /* the next generation's memory changes; wait again */
	CS_PLAN_PROMOTE = 3, /* the last changes, the program's fds, then threads */
};

struct cs_plan_rlimit {
	uint32_t resource, reserved;
	uint64_t cur, max;
};

/* The image's credentials (proto CREDS), put on every thread before it
 * runs program code. present 0: the image has none (older agent), the
 * program runs with the restore tool's credentials. */
#define CS_PLAN_GROUPS_MAX 1024
struct cs_plan_creds {
	uint32_t present;
	uint32_t uid[4], gid[4]; /* real, effective, saved, filesystem */
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t securebits, no_new_privs, dumpable, n_groups;
	uint32_t groups[CS_PLAN_GROUPS_MAX];
};

#define CS_PLAN_AUXV_MAX 1024
#define CS_PLAN_RLIMITS  16

struct cs_plan_header {
	uint64_t magic;
	uint32_t version;
	uint32_t reserved0;
	uint64_t total_len;

	uint32_t n_maps, n_copies, n_threads, n_sigactions;
	uint64_t maps_off, copies_off, threads_off, sigactions_off;
	/* fds of the program that were FD_CLOEXEC: set only after the exec of
	 * the restorer, which would close them otherwise (int32_t each) */
	uint32_t n_cloexec, reserved2;
	uint64_t cloexec_off;
	/* interval timers, then POSIX timers by ascending id */
	uint32_t n_timers, reserved3;
	uint64_t timers_off;
	/* pending signals: the shared queue first, then each thread's, each in
	 * the kernel's order */
	uint32_t n_sigq, reserved4;
	uint64_t sigq_off;
	/* seccomp filters by thread, each thread's oldest first */
	uint32_t n_seccomp, reserved5;
	uint64_t seccomp_off;
	/* process attributes the exec of the restorer reset (the image's ATTRS;
	 * oom_score_adj is set by the tool before the exec, which keeps it) */
	uint32_t child_subreaper, thp_disable, dumpable, membarrier;

	/* for PR_SET_MM_MAP */
	uint64_t start_code, end_code, start_data, end_data;
	uint64_t start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint32_t auxv_len, reserved1;
	uint8_t auxv[CS_PLAN_AUXV_MAX];

	struct cs_plan_special specials[CS_PLAN_SPECIALS];
	struct cs_plan_rlimit rlimits[CS_PLAN_RLIMITS];
	uint32_t n_rlimits;
	char comm[16];

	/* the agent (addresses inside the restored memory) */
	uint64_t block_addr, trampoline, trampoline_last;
	uint64_t restored_from_generation, next_generation;
	int64_t away_ns;
	char dir[CS_AGENT_DIR_MAX]; /* for the restore block: where the agent goes on */

	struct cs_plan_creds creds;

	/* fds */
	int32_t status_fd; /* the tool reads "ok" or the error from it */
	int32_t exe_fd;    /* set with PR_SET_MM_MAP; right above the range below */
	int32_t helper_lo, helper_hi; /* helper fds closed before threads run */

	/*
	 * Warm standby (agent/tool/standby.c, docs/restore.md section 9).
	 * In APPLY and PROMOTE plans, which arrive over control_fd with their
	 * fds (SCM_RIGHTS), every fd field of maps and copies is an index into
	 * the fds that came with the plan (the plan's memfd is index 0).
	 */
	uint32_t mode; /* enum cs_plan_mode */
	int32_t control_fd;
	uint64_t generation;
	uint32_t n_fds_sent;                /* fds that come with this plan */
	uint32_t n_unmaps, n_keeps, n_drops; /* struct cs_plan_range each */
	uint64_t unmaps_off, keeps_off, drops_off;
	/* PROMOTE: the program's fds, taken from the donor (pidfd_getfd), which
	 * made them at these numbers; its time namespace; cwd, umask,
	 * personality; POSIX locks */
	int32_t donor_pidfd;  /* index of the donor's pidfd among the fds sent */
	int32_t donor_timens; /* fd number in the donor: its time_for_children */
	uint32_t n_take, n_locks;
	uint64_t take_off, locks_off;
	uint32_t umask, personality;
	char cwd[4096];
	/* RESTORE and PROMOTE: the mappings to arm for the agent's tracking */
	uint32_t n_track, reserved6;
	uint64_t track_off;
};

#endif
