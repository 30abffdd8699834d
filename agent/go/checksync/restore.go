package checksync

// #include "shim.h"
import "C"

import (
	"os"
	"sync"
	"time"
)

var restore struct {
	mu    sync.Mutex
	funcs []func(RestoreInfo)
	once  sync.Once
}

// OnRestore registers f to be called, on its own goroutine, each time the
// process resumes from a checkpoint. Functions run in registration order.
// When the process is not run by checksync, f is never called.
func OnRestore(f func(RestoreInfo)) {
	restore.mu.Lock()
	restore.funcs = append(restore.funcs, f)
	restore.mu.Unlock()
	restore.once.Do(startRestoreWatcher)
}

// startRestoreWatcher asks the agent for restore notifications. The agent's
// callback writes a byte to a non-blocking pipe, which Go's netpoller watches
// here; the pipe and its epoll registration are part of every checkpoint, so
// a restored process wakes this goroutine like any other I/O.
func startRestoreWatcher() {
	if !Enabled() {
		return
	}
	fd := C.csgo_restore_pipe()
	if fd < 0 {
		return
	}
	r := os.NewFile(uintptr(fd), "checksync-restore")
	go func() {
		buf := make([]byte, 64)
		var seen uint64
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
			var info C.struct_csgo_restore
			C.csgo_last_restore(&info)
			if uint64(info.seq) == seen {
				continue
			}
			seen = uint64(info.seq)
			ri := RestoreInfo{Generation: uint64(info.generation), Away: time.Duration(info.away_ns)}
			restore.mu.Lock()
			funcs := append([]func(RestoreInfo){}, restore.funcs...)
			restore.mu.Unlock()
			for _, f := range funcs {
				f(ri)
			}
		}
	}()
}
