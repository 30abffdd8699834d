package checksync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// These tests run without an agent (no LD_PRELOAD): the package must be
// inert and answer at once.

func TestNotEnabled(t *testing.T) {
	if Enabled() {
		t.Skip("an agent is loaded in this process; this test is for the plain case")
	}
	start := time.Now()
	if _, err := Sync(context.Background()); !errors.Is(err, ErrNotEnabled) {
		t.Fatalf("Sync: got %v, want ErrNotEnabled", err)
	}
	if _, err := Checkpoint(context.Background()); !errors.Is(err, ErrNotEnabled) {
		t.Fatalf("Checkpoint: got %v, want ErrNotEnabled", err)
	}
	if s := Stats(); s != (AgentStats{}) {
		t.Fatalf("Stats: got %+v, want zero", s)
	}
	called := make(chan struct{}, 1)
	OnRestore(func(RestoreInfo) { called <- struct{}{} })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("not-enabled calls took %v", d)
	}
	select {
	case <-called:
		t.Fatal("OnRestore function called without an agent")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with canceled ctx: got %v", err)
	}
	if _, err := Checkpoint(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Checkpoint with canceled ctx: got %v", err)
	}
}

func BenchmarkSyncNotEnabled(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		Sync(ctx)
	}
}

// TestPreloadedIdle runs (from meson) with libchecksync.so preloaded but no
// CHECKSYNC_DIR: the package must find the agent's API and still be inert,
// because the agent did not start.
func TestPreloadedIdle(t *testing.T) {
	if os.Getenv("CSGO_TEST_PRELOADED") == "" {
		t.Skip("only with the agent preloaded (meson test go-package-preloaded-idle)")
	}
	Enabled()
	if !haveAPI {
		t.Fatal("libchecksync is preloaded but its API was not found with dlsym")
	}
	if Enabled() {
		t.Fatal("Enabled() is true without CHECKSYNC_DIR")
	}
	if _, err := Sync(context.Background()); !errors.Is(err, ErrNotEnabled) {
		t.Fatalf("Sync: got %v, want ErrNotEnabled", err)
	}
}

// TestLinkedIdle runs in the test binary built with -tags checksync_static
// (the agent linked in, meson's checksync-go-static.test, fully static): the
// API is there, but without CHECKSYNC_DIR the agent did not start, so the
// package is inert and the process has no agent thread.
func TestLinkedIdle(t *testing.T) {
	if !linkedAgent {
		t.Skip("only with -tags checksync_static")
	}
	if os.Getenv("CHECKSYNC_DIR") != "" {
		t.Skip("CHECKSYNC_DIR is set: the agent may run")
	}
	if Enabled() {
		t.Fatal("Enabled() is true without CHECKSYNC_DIR")
	}
	if !haveAPI {
		t.Fatal("the linked agent's API was not bound")
	}
	if _, err := Sync(context.Background()); !errors.Is(err, ErrNotEnabled) {
		t.Fatalf("Sync: got %v, want ErrNotEnabled", err)
	}
	if s := Stats(); s != (AgentStats{}) {
		t.Fatalf("Stats: got %+v, want zero", s)
	}
	if tid := agentThread(t); tid != "" {
		t.Fatalf("thread %s looks like the agent's (blocks every signal but 62)", tid)
	}
}

// agentThread returns the id of a thread whose signal mask is the agent
// thread's: every signal blocked but the freeze signal, or "".
func agentThread(t *testing.T) string {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			var mask uint64
			if _, err := fmt.Sscanf(line, "SigBlk:\t%x", &mask); err != nil {
				continue
			}
			const term, freeze = 1 << (15 - 1), 1 << (62 - 1)
			if mask&term != 0 && mask&freeze == 0 {
				return task.Name()
			}
		}
	}
	return ""
}
