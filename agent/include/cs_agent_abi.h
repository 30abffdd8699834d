/*
 * The contract between the agent (inside the application), the checksync
 * tool and the freestanding restorer. Everything here is shared by programs
 * of the same build; nothing here crosses a network.
 */
#ifndef CS_AGENT_ABI_H
#define CS_AGENT_ABI_H

#include <stddef.h>
#include <stdint.h>

/* ---- Environment the tool gives the application ------------------------- */

#define CS_ENV_DIR         "CHECKSYNC_DIR"         /* checkpoint directory (required) */
#define CS_ENV_INTERVAL_MS "CHECKSYNC_INTERVAL_MS" /* period; 0 = only on request */
#define CS_ENV_TRACKING    "CHECKSYNC_TRACKING"    /* "uffd" (default) or "hash" */
#define CS_ENV_BASE_EVERY  "CHECKSYNC_BASE_EVERY"  /* a new base after N deltas */
/* "1": a compactor folds the chain (checksync run): the agent takes a base
 * only when it must, never periodically, and prunes nothing */
#define CS_ENV_COMPACTOR   "CHECKSYNC_COMPACTOR"
/* The first generation number the agent may use: it starts at the larger
 * of this and the highest generation in DIR + 1 (checksync run
 * --first-generation; checksyncd, so a fresh start never reuses a number
 * its backups already hold) */
#define CS_ENV_FIRST_GENERATION "CHECKSYNC_FIRST_GENERATION"
/* cs_sync's last-resort wait for the daemon (DIR/sync.sock, below), in ms */
#define CS_ENV_SYNC_TIMEOUT_MS "CHECKSYNC_SYNC_TIMEOUT_MS"

/* ---- Checkpoint directory ----------------------------------------------- */

/*
 * DIR/gen-<20 digits>.img   images (proto/image.h), complete once renamed
 * DIR/agent.sock            the agent's control socket (below)
 * DIR/sync.sock             the daemon's sync socket, when a daemon runs the app
 * DIR/agent.pid             host-visible pid of the application, for tools
 */
#define CS_AGENT_SOCKET_NAME "agent.sock"

/*
 * Control socket: AF_UNIX SOCK_SEQPACKET, one request per packet, one reply
 * per request, ASCII:
 *   "checkpoint"  -> "ok <generation>" once that image is durable in DIR,
 *                    or "error <sentence>"
 *   "status"      -> "ok generation=<G> tracking=<uffd|hash> checkpoints=<N>
 *                     last_pause_us=<U> bytes=<B> ... pause_count=<N>
 *                     pause_sum_us=<S> pause_le_us=<B1>:<C1>,<B2>:<C2>,...
 *                     ... go_heap=<on|off|measure> ... go_heap_why=<sentence>
 *                     failures=<F> last_error=<sentence, to the end>"
 *                   pause_*: the pauses of this process's successful
 *                   checkpoints since it started or was restored (a
 *                   restored process starts again from 0): their number,
 *                   their sum, and per bound Bi (microseconds,
 *                   CS_AGENT_PAUSE_BOUNDS_US) how many took at most Bi.
 * Only the owner's uid (or root) is served.
 */
#define CS_AGENT_REPLY_MAX 2048
#define CS_AGENT_PAUSE_BUCKETS 14
#define CS_AGENT_PAUSE_BOUNDS_US \
	{50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000}

/* ---- Supervisor --------------------------------------------------------- */

/*
 * The init of the program's PID namespace (`checksync run`, `checksync
 * restore`) is the program's parent and serves its agent on an abstract
 * AF_UNIX SOCK_SEQPACKET socket named after DIR (cs_supervisor_name), so
 * that neither a path in DIR nor an inherited fd is needed: a program that
 * dropped its privileges, or a restored one, still reaches it. Only the
 * program's own process (its pid, by SO_PEERCRED) is served. ASCII, one
 * request per packet, one reply each:
 *
 *   "stop <tid> <signo>" -> "ok <tid> <mask>": the thread is held in a
 *       ptrace stop (PTRACE_SEIZE + PTRACE_INTERRUPT) and its signal mask
 *       no longer blocks signo; <mask> (hex) is the mask it had.
 *   "cont <tid>"         -> "ok <tid>": the thread is let go (PTRACE_DETACH).
 *   "own 0"              -> "ok 0": the program dropped its privileges; DIR
 *       and the agent's files in it now belong to its effective uid/gid.
 *   "sigq <tid> <which>" -> "ok <tid> <n>\n" followed by n siginfos of
 *       CS_SIGINFO_SIZE bytes (the kernel's layout): the signals queued on
 *       the thread (which 1) or on its process (which 2), in queue order,
 *       read with PTRACE_PEEKSIGINFO (nothing is taken from the queue);
 *       at most CS_SIGQ_MAX, more is an error (E2BIG).
 *   "seccomp <tid> 1"    -> "ok <tid> <n>\n" followed by the thread's n
 *       seccomp filters, oldest first, each u32 flags (LOG, SPEC_ALLOW),
 *       u32 length in bytes and the classic BPF program; at most
 *       CS_SECCOMP_FILTERS_MAX filters of CS_SECCOMP_REPLY_MAX bytes.
 *   "rseq <tid> 1"       -> "ok <tid> <addr> <len> <sig>": the thread's rseq
 *       registration (PTRACE_GET_RSEQ_CONFIGURATION), address and
 *       signature in hex, length in decimal; address 0 when none.
 *   any failure          -> "error <tid> <errno> <sentence>"
 *
 * Threads are in the namespace's numbering, which both sides share. When
 * the agent's connection closes, every thread still held is let go.
 */
#define CS_SUPERVISOR_PREFIX   "checksync-supervisor-"
#define CS_SIGINFO_SIZE        128
#define CS_SIGQ_MAX            512 /* siginfos in one "sigq" reply (64 KiB) */
#define CS_SECCOMP_FILTERS_MAX 64
#define CS_SECCOMP_REPLY_MAX   (160u << 10) /* below a SEQPACKET socket's send buffer */
#define CS_SUPERVISOR_NAME_MAX 48

/* Writes the socket's abstract name (a NUL, the prefix, 16 hex digits of
 * FNV-1a of DIR) into out[CS_SUPERVISOR_NAME_MAX]; returns its length, the
 * part of sun_path that counts. No libc: the agent calls it in a freeze. */
static inline size_t cs_supervisor_name(const char *dir, char *out)
{
	static const char hex[] = "0123456789abcdef";
	static const char prefix[] = CS_SUPERVISOR_PREFIX;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t n = 0;
	for (const char *p = dir; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	out[n++] = 0;
	for (size_t i = 0; i + 1 < sizeof(prefix); i++)
		out[n++] = prefix[i];
	for (int i = 15; i >= 0; i--)
		out[n++] = hex[(h >> (i * 4)) & 0xf];
	return n;
}

/*
 * DIR/sync.sock: the daemon's sync socket, for cs_sync(). checksyncd creates
 * it (AF_UNIX SOCK_SEQPACKET, listening) before it starts the application
 * and removes it when it stops; under a standalone `checksync run` there is
 * none and cs_sync returns once the local image is durable, as it always did.
 * When the file exists, cs_sync, after the local checkpoint of generation G
 * is durable, connects, sends one packet and waits for one reply, ASCII:
 *   "wait <G>"  -> "ok <G2>"  G2 >= G is acknowledged as the daemon's
 *                             checkpoint.sync mode requires; cs_sync returns
 *                             0 with generation G
 *               -> "error <ERRNO> <sentence>"  cs_sync returns -ERRNO:
 *                  EHOSTUNREACH  no backup is up (sync mode "backups")
 *                  ESTALE        this application is no longer the primary's
 *                  ETIMEDOUT     backups did not acknowledge in time
 *                                (checkpoint.sync_timeout_ms)
 * The agent's own errors: the file exists but connect fails -> -ENOTCONN;
 * no reply within CS_SYNC_TIMEOUT_MS (CHECKSYNC_SYNC_TIMEOUT_MS) -> -ETIMEDOUT; the connection ends
 * without a reply -> -ECONNRESET; a reply it cannot parse -> -EPROTO.
 * One request per connection; the daemon closes it after its reply.
 */
#define CS_SYNC_SOCKET_NAME "sync.sock"
#define CS_SYNC_TIMEOUT_MS  60000 /* a last resort: the daemon answers first */
#define CS_SYNC_REPLY_MAX   256

/* ---- Restore block ------------------------------------------------------ */

/* The magic names the layout: a restorer refuses a block of another one
 * (version 2 added dir). */
#define CS_AGENT_BLOCK_MAGIC 0x324c42434e595343ull /* "CSYNCBL2" */
#define CS_AGENT_DIR_MAX     4096                  /* PATH_MAX, with its NUL */

/*
 * Lives in the agent's memory, so it is in every image; its address is the
 * image's process.agent_addr[CS_AGENT_BLOCK]. The restorer writes it after
 * loading memory and before any thread runs; the agent's thread reads it
 * when it returns from its own freeze signal and learns that it was
 * restored (then it reconnects, and adopts the tracking the restorer armed
 * or takes a base).
 *
 * dir is the directory the image was restored from (an absolute path). The
 * restored agent adopts it: its next images, lock, agent.sock and sync.sock
 * are there, not in the directory it was checkpointed into, which may be
 * another host's (a chain copied or replicated elsewhere and restored there).
 */
struct cs_agent_restore_block {
	uint64_t magic;
	uint64_t restored;                 /* 0 while capturing; the restorer sets 1 */
	uint64_t restored_from_generation; /* the generation that was loaded */
	uint64_t next_generation;          /* first free generation number in DIR */
	int64_t away_ns;                   /* CLOCK_MONOTONIC shift the time namespace absorbed */
	int32_t threads_pending;           /* threads still inside the restorer (see below) */
	/* /proc/self/pagemap opened by the restorer before the program's
	 * credentials were put back (a non-dumpable process may not open it
	 * itself), for the agent to keep; -1 if none */
	int32_t pagemap_fd;
	/* 1 once the main thread has unmapped the restorer (cs_trampoline_last):
	 * before that the agent must not freeze, or it would stop a thread that
	 * still runs restorer code, in a region the image must not hold */
	int32_t main_left;
	/* a userfaultfd with async write-protect over the memory the agent
	 * tracks, every live page armed before any thread ran, or -1: with
	 * it the agent's next image is a delta on restored_from_generation
	 * (the memory is that generation's, and every write since shows) */
	int32_t uffd;
	char dir[CS_AGENT_DIR_MAX]; /* empty while capturing; NUL-terminated */
};

/*
 * Trampolines: tiny code in the agent (so it survives in the image) through
 * which restored threads leave the restorer, whose mappings must vanish.
 *
 * cs_trampoline_thread: entered with %rsp = the thread's ucontext address,
 *   %rdi = &block->threads_pending. Atomically decrements *rdi, wakes a
 *   futex waiter on it, then rt_sigreturn. After the decrement the thread
 *   executes only trampoline code, so the restorer may be unmapped.
 * cs_trampoline_last: entered by the main thread once threads_pending is 0,
 *   with %rsp = its ucontext address, %rdi = restorer start, %rsi = restorer
 *   length, %rdx = an fd of the executable or -1, %rcx = &block->main_left
 *   or 0. munmap(rdi, rsi); if rdx >= 0: prctl(PR_SET_MM, PR_SET_MM_EXE_FILE,
 *   rdx) and close(rdx); if rcx: *rcx = 1 and a futex wake; then
 *   rt_sigreturn.
 */
void cs_trampoline_thread(void);
void cs_trampoline_last(void);

#endif
