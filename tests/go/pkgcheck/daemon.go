package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"

	"checksync"
)

// fakeDaemon listens on DIR/sync.sock as checksyncd does while it runs the
// program, and answers every "wait G" with answer(G); stop removes it.
func fakeDaemon(answer func(gen string) string) (stop func()) {
	path := filepath.Join(*dir, "sync.sock")
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		fail("fake daemon: %v", err)
	}
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return // stopped
			}
			buf := make([]byte, 256)
			n, _ := c.Read(buf)
			req := strings.Fields(string(buf[:n]))
			if len(req) == 2 && req[0] == "wait" {
				c.Write([]byte(answer(req[1])))
			}
			c.Close()
		}
	}()
	return func() { l.Close() } // also unlinks the socket file
}

// checkDaemonAnswers: under a daemon, Sync returns what it says, as the
// package's sentinel errors; without one, Sync is what it always was.
func checkDaemonAnswers(ctx context.Context) string {
	acked := ""
	stop := fakeDaemon(func(gen string) string { acked = gen; return "ok " + gen })
	gen, err := checksync.Sync(ctx)
	stop()
	if err != nil || fmt.Sprint(gen) != acked {
		fail("Sync under a daemon that acknowledges: generation %d, %v; the daemon acked %q",
			gen, err, acked)
	}
	cases := []struct {
		errno    syscall.Errno
		sentinel error
	}{
		{syscall.EHOSTUNREACH, checksync.ErrNoBackup},
		{syscall.ESTALE, checksync.ErrNotPrimary},
		{syscall.ETIMEDOUT, checksync.ErrSyncTimeout},
	}
	for _, c := range cases {
		stop := fakeDaemon(func(string) string { return fmt.Sprintf("error %d %v", int(c.errno), c.errno) })
		_, err := checksync.Sync(ctx)
		stop()
		if !errors.Is(err, c.sentinel) || !errors.Is(err, c.errno) {
			fail("Sync under a daemon answering error %d: got %v, want %v", int(c.errno), err, c.sentinel)
		}
	}
	if _, err := checksync.Sync(ctx); err != nil {
		fail("Sync after the daemon's sync.sock went away: %v", err)
	}
	return fmt.Sprintf("daemon acked %s and its errors came back as ErrNoBackup, ErrNotPrimary, "+
		"ErrSyncTimeout", acked)
}
