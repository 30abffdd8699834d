package checksync

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestGroupSyncOrdering checks the batching logic on its own (no agent): a
// caller is only answered by an agent call that started after the caller
// joined, and concurrent callers share calls.
func TestGroupSyncOrdering(t *testing.T) {
	var calls uint64
	epoch := time.Now()
	// The fake agent call answers with the time it started as "generation".
	g := groupSync{call: func() result {
		atomic.AddUint64(&calls, 1)
		started := uint64(time.Since(epoch))
		time.Sleep(2 * time.Millisecond)
		return result{gen: started}
	}}
	var wg sync.WaitGroup
	errs := make(chan string, 1000)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				joinedAt := uint64(time.Since(epoch))
				started, _ := g.wait(context.Background())
				if started < joinedAt {
					errs <- "answered by a call that started before the caller joined"
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if calls >= 1000 {
		t.Fatalf("no batching: %d agent calls for 1000 Syncs", calls)
	}
	t.Logf("1000 Syncs, %d agent calls", calls)
}

func TestGroupSyncCancel(t *testing.T) {
	release := make(chan struct{})
	g := groupSync{call: func() result { <-release; return result{gen: 7} }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := g.wait(ctx); err != context.DeadlineExceeded {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	close(release)
	if gen, err := g.wait(context.Background()); err != nil || gen != 7 {
		t.Fatalf("after cancel: got %d, %v", gen, err)
	}
}

// TestSyncErrors: each daemon error of cs_sync reaches the caller as its
// sentinel, and still as its Errno; other errors stay plain Errnos.
func TestSyncErrors(t *testing.T) {
	cases := []struct {
		errno    syscall.Errno
		sentinel error
	}{
		{syscall.EHOSTUNREACH, ErrNoBackup},
		{syscall.ESTALE, ErrNotPrimary},
		{syscall.ETIMEDOUT, ErrSyncTimeout},
		{syscall.ENOTCONN, ErrNoDaemon},
		{syscall.ECONNRESET, ErrNoDaemon},
	}
	for _, c := range cases {
		err := agentError("sync", c.errno)
		if !errors.Is(err, c.sentinel) || !errors.Is(err, c.errno) {
			t.Errorf("cs_sync -%d: %v is not both %v and %v", int(c.errno), err, c.sentinel, c.errno)
		}
		var se *SyncError
		if !errors.As(err, &se) || se.Errno != c.errno {
			t.Errorf("cs_sync -%d: %v is not a *SyncError with that Errno", int(c.errno), err)
		}
		if errors.Is(agentError("checkpoint", c.errno), c.sentinel) {
			t.Errorf("Checkpoint's -%d matched %v: only Sync waits for the daemon", int(c.errno), c.sentinel)
		}
	}
	for _, s := range []error{ErrNoBackup, ErrNotPrimary, ErrSyncTimeout, ErrNoDaemon} {
		if err := agentError("sync", syscall.EPROTO); errors.Is(err, s) || !errors.Is(err, syscall.EPROTO) {
			t.Errorf("EPROTO: %v matched %v", err, s)
		}
	}
}
