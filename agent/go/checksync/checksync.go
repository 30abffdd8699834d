// Package checksync lets a Go program cooperate with the checksync agent that
// checkpoints it: make a write durable before answering a client (Sync), take
// a checkpoint now (Checkpoint), learn that the process was restored
// (OnRestore), and read the agent's counters (Stats).
//
// By default the package links no agent. It looks up libchecksync's C API in
// the running process (dlsym with RTLD_DEFAULT), so it talks to the agent that
// `checksync run` preloaded. Built with -tags checksync_static it links
// libchecksync.a instead and calls it directly, which also works in a fully
// static binary (no ld.so, no LD_PRELOAD, no dlsym). A program that is not
// run by checksync has no active agent: Enabled reports false, Sync and
// Checkpoint return ErrNotEnabled at once, Stats returns zeros, and OnRestore
// functions are never called. See docs/go.md.
package checksync

// #cgo CFLAGS: -I${SRCDIR}/../../include -Wall -Wextra -Werror
// #include "shim.h"
// #include <checksync.h>
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// ErrNotEnabled is returned by Sync and Checkpoint when the process is not
// run by checksync. A service that needs durability should refuse to start
// (check Enabled); one that merely benefits from it can ignore this error.
var ErrNotEnabled = errors.New("checksync: not enabled (process not run by checksync)")

// Errors of Sync when checksyncd runs the program and cannot vouch for the
// checkpoint (docs/go.md, "Sync under checksyncd"). The local checkpoint was
// taken, but the write the caller wants to acknowledge is not durable as
// configured: answer the client with an error (or retry the Sync later), do
// not acknowledge the write. errors.Is also matches the underlying
// syscall.Errno (EHOSTUNREACH, ESTALE, ETIMEDOUT, ENOTCONN, ECONNRESET).
var (
	// ErrNoBackup: no backup is up to hold the checkpoint (checkpoint.sync
	// "backups"). Transient when a backup is restarting: retry later.
	ErrNoBackup = errors.New("checksync: no backup is up to hold the checkpoint")
	// ErrNotPrimary: this process is no longer the primary's application
	// (another host took over). It will be stopped: stop acknowledging.
	ErrNotPrimary = errors.New("checksync: this process is no longer the primary's application")
	// ErrSyncTimeout: the backups did not acknowledge within
	// checkpoint.sync_timeout_ms (or the daemon did not answer within the
	// agent's last-resort timeout).
	ErrSyncTimeout = errors.New("checksync: the backups did not acknowledge the checkpoint in time")
	// ErrNoDaemon: the daemon that runs the program does not answer on its
	// sync socket (it died or is restarting; DIR/sync.sock is still there).
	ErrNoDaemon = errors.New("checksync: the daemon's sync socket does not answer")
)

// syncErrors are the agent's cs_sync errors that have a sentinel.
var syncErrors = map[syscall.Errno]error{
	syscall.EHOSTUNREACH: ErrNoBackup,
	syscall.ESTALE:       ErrNotPrimary,
	syscall.ETIMEDOUT:    ErrSyncTimeout,
	syscall.ENOTCONN:     ErrNoDaemon,
	syscall.ECONNRESET:   ErrNoDaemon,
}

// SyncError is what Sync returns for an error of the daemon: errors.Is
// matches both its sentinel (ErrNoBackup, ...) and its Errno.
type SyncError struct {
	Sentinel error
	Errno    syscall.Errno
}

func (e *SyncError) Error() string        { return fmt.Sprintf("%v (%v)", e.Sentinel, e.Errno) }
func (e *SyncError) Is(target error) bool { return target == e.Sentinel }
func (e *SyncError) Unwrap() error        { return e.Errno }

// RestoreInfo describes a restore, as seen by the restored process.
type RestoreInfo struct {
	Generation uint64        // the checkpoint generation the process resumed from
	Away       time.Duration // CLOCK_MONOTONIC time the process was absent
}

// AgentStats are the agent's counters for this process since it was started
// (or restored). (Go cannot name a type and a function alike, hence not Stats.)
type AgentStats struct {
	Enabled      bool
	Generation   uint64        // newest durable checkpoint, 0 if none
	Checkpoints  uint64        // taken successfully
	Failures     uint64        // checkpoints that failed
	BytesTotal   uint64        // image bytes written
	LastBytes    uint64        // bytes of the newest image
	LastPages    uint64        // pages in the newest image
	LastPause    time.Duration // all threads stopped, newest checkpoint
	MaxPause     time.Duration
	LastPauseCPU time.Duration // the agent's CPU time in that pause (no scheduling delays)
	LastCopied   bool          // the last delta was copied during the pause (not by a COW child)
	RestoredFrom uint64        // generation this process was restored from, 0 if none
	Tracking     string        // dirty-page tracking: "uffd", "hash" or "none"
	LastError    string        // why the newest checkpoint failed or was incomplete
	Signal       SignalStats   // the agent's freeze signal and who else took it
}

// SignalStats says whether the program (or the Go runtime) took the agent's
// freeze signal: the Go runtime installs its handler for every signal at
// start-up, and os/signal's Ignore and Notify can install it again. The agent
// takes the signal back before each freeze and passes the signals it did not
// send itself (for example `kill -62` from another process) to the handler it
// found, so signal.Notify on that signal still sees them; it never sees the
// agent's own freeze signals.
type SignalStats struct {
	Number         int       // the freeze signal: 62 (SIGRTMIN+28 with glibc)
	Takeovers      uint64    // times another handler was found in the agent's place
	ForeignHandler uintptr   // the handler found last: address; 0 = SIG_DFL, 1 = SIG_IGN
	FirstTakeover  time.Time // zero if never
	LastTakeover   time.Time
	Forwarded      uint64 // signals the agent did not send, passed to that handler
}

var (
	resolveOnce sync.Once
	haveAPI     bool // the agent's C API was found in the process
)

// Enabled reports whether an agent runs in this process and checkpoints it.
// Without an agent this costs a sync.Once check: no cgo call.
func Enabled() bool {
	resolveOnce.Do(func() { haveAPI = C.csgo_resolve() != 0 })
	return haveAPI && C.csgo_enabled() != 0
}

// Sync returns once a checkpoint taken after the call is complete and
// durable, with that checkpoint's generation. Concurrent callers share one
// checkpoint (group commit). If ctx ends first, Sync returns ctx.Err(); the
// checkpoint still completes in the background. Under checksyncd, durable
// means held by the backups as checkpoint.sync requires; when they cannot
// hold it Sync returns a *SyncError matching ErrNoBackup, ErrNotPrimary,
// ErrSyncTimeout or ErrNoDaemon, and the write is not durable.
func Sync(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !Enabled() {
		return 0, ErrNotEnabled
	}
	return syncer.wait(ctx)
}

// Checkpoint takes a checkpoint now and returns its generation once it is
// durable. Unlike Sync it never shares a checkpoint with other callers.
func Checkpoint(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !Enabled() {
		return 0, ErrNotEnabled
	}
	done := make(chan result, 1)
	go func() { done <- callC(cCheckpoint, "checkpoint") }()
	select {
	case r := <-done:
		return r.gen, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Stats returns the agent's counters, or zero AgentStats when not enabled.
func Stats() AgentStats {
	if !Enabled() {
		return AgentStats{}
	}
	var s C.struct_csgo_stats
	if C.csgo_stats(&s) < 0 {
		return AgentStats{Enabled: true}
	}
	return AgentStats{
		Enabled:      true,
		Generation:   uint64(s.generation),
		Checkpoints:  uint64(s.checkpoints),
		Failures:     uint64(s.failures),
		BytesTotal:   uint64(s.bytes_total),
		LastBytes:    uint64(s.last_bytes),
		LastPages:    uint64(s.last_pages),
		LastPause:    time.Duration(s.last_pause_ns),
		MaxPause:     time.Duration(s.max_pause_ns),
		LastPauseCPU: time.Duration(s.last_pause_cpu_ns),
		LastCopied:   s.last_copied != 0,
		RestoredFrom: uint64(s.restored_from),
		Tracking:     trackingNames[int(s.tracking)],
		LastError:    C.GoString(&s.last_error[0]),
		Signal: SignalStats{
			Number:         int(s.freeze_signal),
			Takeovers:      uint64(s.sig_takeovers),
			ForeignHandler: uintptr(s.sig_foreign_handler),
			FirstTakeover:  unixNano(int64(s.sig_first_takeover_ns)),
			LastTakeover:   unixNano(int64(s.sig_last_takeover_ns)),
			Forwarded:      uint64(s.sig_forwarded),
		},
	}
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func cSync(gen *C.uint64_t) C.int       { return C.csgo_sync(gen) }
func cCheckpoint(gen *C.uint64_t) C.int { return C.csgo_checkpoint(gen) }

var trackingNames = map[int]string{
	int(C.CS_TRACKING_NONE): "none",
	int(C.CS_TRACKING_UFFD): "uffd",
	int(C.CS_TRACKING_HASH): "hash",
}

type result struct {
	gen uint64
	err error
}

// callC runs one blocking agent call. A cgo call keeps its goroutine on its
// OS thread for the duration, and the runtime hands that thread's P to other
// goroutines when the call blocks, so no LockOSThread is needed.
func callC(f func(*C.uint64_t) C.int, what string) result {
	var gen C.uint64_t
	if rc := f(&gen); rc < 0 {
		return result{err: agentError(what, syscall.Errno(-rc))}
	}
	return result{gen: uint64(gen)}
}

func agentError(what string, errno syscall.Errno) error {
	if sentinel, ok := syncErrors[errno]; ok && what == "sync" {
		return &SyncError{Sentinel: sentinel, Errno: errno}
	}
	return fmt.Errorf("checksync: %s: %w", what, errno)
}
