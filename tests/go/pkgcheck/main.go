// pkgcheck exercises the checksync Go package against a real agent: run it
// under `checksync run --dir DIR` with the same DIR as -dir. It exits 0 only
// if Enabled, Checkpoint, Sync (alone, concurrent, and under a fake daemon's
// DIR/sync.sock), Stats and context cancellation behave as documented and every generation the package
// reported is a complete image in DIR.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"checksync"
)

// The agent's freeze signal (agent/capture/agent.h: SIGRTMIN + 28 with glibc).
const freezeSignal = 62

var dir = flag.String("dir", "", "the checkpoint directory the agent writes to")

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "pkgcheck: FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func durable(gen uint64) {
	p := filepath.Join(*dir, fmt.Sprintf("gen-%020d.img", gen))
	if _, err := os.Stat(p); err != nil {
		fail("generation %d reported durable but %v", gen, err)
	}
}

func main() {
	flag.Parse()
	ctx := context.Background()
	if !checksync.Enabled() {
		fail("Enabled() is false under checksync run")
	}
	g1, err := checksync.Checkpoint(ctx)
	if err != nil {
		fail("Checkpoint: %v", err)
	}
	durable(g1)
	g2, err := checksync.Sync(ctx)
	if err != nil {
		fail("Sync: %v", err)
	}
	if g2 <= g1 {
		fail("Sync after checkpoint %d returned generation %d: not a later checkpoint", g1, g2)
	}
	durable(g2)

	// Concurrent writers, as in a server under -sync: each must be answered
	// by a checkpoint taken after its call.
	const n = 64
	gens := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			gens[i], errs[i] = checksync.Sync(ctx)
		}(i)
	}
	wg.Wait()
	distinct := map[uint64]bool{}
	var maxGen uint64
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			fail("concurrent Sync %d: %v", i, errs[i])
		}
		if gens[i] <= g2 {
			fail("concurrent Sync %d returned generation %d, not after %d", i, gens[i], g2)
		}
		durable(gens[i])
		distinct[gens[i]] = true
		if gens[i] > maxGen {
			maxGen = gens[i]
		}
	}

	s := checksync.Stats()
	if !s.Enabled || s.Generation < maxGen || s.Checkpoints < uint64(2+len(distinct)) ||
		s.LastBytes == 0 || s.Tracking == "" {
		fail("Stats inconsistent with what was taken: %+v (max generation %d, %d checkpoints)",
			s, maxGen, 2+len(distinct))
	}

	daemon := checkDaemonAnswers(ctx)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := checksync.Sync(canceled); !errors.Is(err, context.Canceled) {
		fail("Sync with a canceled context: %v", err)
	}
	short, cancel2 := context.WithTimeout(ctx, time.Microsecond)
	defer cancel2()
	if _, err := checksync.Checkpoint(short); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fail("Checkpoint with a tiny deadline: %v", err)
	}
	// Go's os/signal can take the agent's freeze signal back: Ignore drops
	// the agent's handler and a later Notify installs Go's own (docs/go.md).
	// The agent must notice before its next freeze, or that freeze hangs.
	sig := syscall.Signal(freezeSignal)
	signal.Ignore(sig)
	notified := make(chan os.Signal, 1)
	signal.Notify(notified, sig)
	tctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	defer cancel3()
	g3, err := checksync.Checkpoint(tctx)
	if err != nil {
		fail("Checkpoint after the program took signal %d with os/signal: %v", freezeSignal, err)
	}
	durable(g3)
	signal.Reset(sig)

	fmt.Printf("pkgcheck: ok: checkpoint %d, sync %d, %d concurrent syncs in %d checkpoints (%v), "+
		"tracking %s, last image %d bytes, last pause %v, max pause %v; %s\n",
		g1, g2, n, len(distinct), time.Since(t0).Round(time.Millisecond), s.Tracking,
		s.LastBytes, s.LastPause, s.MaxPause, daemon)
}
