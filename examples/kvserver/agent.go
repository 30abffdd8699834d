//go:build !nochecksync

package main

import (
	"context"
	"time"

	"checksync"
)

func agentEnabled() bool { return checksync.Enabled() }

func agentSync(ctx context.Context) (uint64, error) { return checksync.Sync(ctx) }

func agentOnRestore(f func(generation uint64, away time.Duration)) {
	checksync.OnRestore(func(ri checksync.RestoreInfo) { f(ri.Generation, ri.Away) })
}

func agentStats() interface{} {
	if !checksync.Enabled() {
		return nil
	}
	s := checksync.Stats()
	return map[string]interface{}{
		"generation":        s.Generation,
		"checkpoints":       s.Checkpoints,
		"failures":          s.Failures,
		"bytes_total":       s.BytesTotal,
		"bytes_last":        s.LastBytes,
		"pages_last":        s.LastPages,
		"last_pause_us":     s.LastPause.Microseconds(),
		"max_pause_us":      s.MaxPause.Microseconds(),
		"last_pause_cpu_us": s.LastPauseCPU.Microseconds(),
		"last_copied":       s.LastCopied,
		"restored_from":     s.RestoredFrom,
		"tracking":          s.Tracking,
		"last_error":        s.LastError,
	}
}
