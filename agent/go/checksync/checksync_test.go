package checksync

import (
	"context"
	"errors"
	"os"
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
