package checksync

import (
	"context"
	"sync"
)

// groupSync turns many concurrent Sync calls into few agent calls: a caller
// joins the batch that is waiting; one leader goroutine takes the whole batch,
// makes one cs_sync call (which returns once a checkpoint started after that
// call is durable) and answers everyone in it. Every caller in a batch joined
// before the leader called into the agent, so the checkpoint that answers it
// was taken after its own call, which is Sync's promise.
type groupSync struct {
	call    func() result // one agent call; a field so tests can observe batching
	mu      sync.Mutex
	waiting []chan result
	leading bool
}

var syncer = groupSync{call: func() result { return callC(cSync, "sync") }}

func (g *groupSync) wait(ctx context.Context) (uint64, error) {
	ch := make(chan result, 1)
	g.mu.Lock()
	g.waiting = append(g.waiting, ch)
	if !g.leading {
		g.leading = true
		go g.lead()
	}
	g.mu.Unlock()
	select {
	case r := <-ch:
		return r.gen, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (g *groupSync) lead() {
	for {
		g.mu.Lock()
		batch := g.waiting
		g.waiting = nil
		if len(batch) == 0 {
			g.leading = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		r := g.call()
		for _, ch := range batch {
			ch <- r // buffered: a caller that gave up does not block us
		}
	}
}
