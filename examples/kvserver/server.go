package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patrickmn/go-cache"
)

type server struct {
	cfg   config
	c     *cache.Cache
	start time.Time

	syncs, syncErrors uint64 // atomic

	mu           sync.Mutex // guards the fields below
	snapshots    uint64
	snapLast     time.Duration
	snapMax      time.Duration
	snapBytes    int64
	snapErr      string
	syncLastErr  string
	restores     uint64
	restoredFrom uint64
	awayLast     time.Duration
}

func newServer(cfg config) *server {
	// No expiration and no janitor goroutine: items live until deleted.
	return &server{cfg: cfg, c: cache.New(cache.NoExpiration, 0), start: time.Now()}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/stats" && r.Method == http.MethodGet {
		s.stats(w)
		return
	}
	// Only the agent's counters: cheap enough to poll many times a second
	// (no runtime.ReadMemStats, which stops the world).
	if r.URL.Path == "/stats/checksync" && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(agentStats())
		return
	}
	if s.debug(w, r) {
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/k/")
	if key == r.URL.Path || key == "" {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
		v, ok := s.c.Get(key)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(v.([]byte))
	case http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.c.Set(key, body, cache.NoExpiration)
		s.ack(w, r.Context())
	case http.MethodDelete:
		s.c.Delete(key)
		s.ack(w, r.Context())
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// ack answers a write. Under -sync the answer waits until a checkpoint that
// contains the write is durable; if that fails the client is told so, and
// must not count the write as acknowledged.
func (s *server) ack(w http.ResponseWriter, ctx context.Context) {
	if s.cfg.sync {
		atomic.AddUint64(&s.syncs, 1)
		if _, err := agentSync(ctx); err != nil {
			atomic.AddUint64(&s.syncErrors, 1)
			s.mu.Lock()
			s.syncLastErr = err.Error()
			s.mu.Unlock()
			http.Error(w, "not durable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	io.WriteString(w, "OK\n")
}

func (s *server) restored(generation uint64, away time.Duration) {
	s.mu.Lock()
	s.restores++
	s.restoredFrom = generation
	s.awayLast = away
	s.mu.Unlock()
}

// snapshotLoop is the paper's baseline: go-cache's own SaveFile, which
// encodes every item while holding the cache's lock.
func (s *server) snapshotLoop(path string, every time.Duration) {
	for range time.Tick(every) {
		t0 := time.Now()
		tmp := path + ".tmp"
		err := s.c.SaveFile(tmp)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		d := time.Since(t0)
		var size int64
		if fi, e := os.Stat(path); e == nil {
			size = fi.Size()
		}
		s.mu.Lock()
		s.snapshots++
		s.snapLast = d
		if d > s.snapMax {
			s.snapMax = d
		}
		s.snapBytes = size
		if err != nil {
			s.snapErr = err.Error()
		}
		s.mu.Unlock()
	}
}

// rssBytes reads the resident set size from /proc/self/statm.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func (s *server) stats(w http.ResponseWriter) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mu.Lock()
	out := map[string]interface{}{
		"items":               s.c.ItemCount(),
		"uptime_s":            time.Since(s.start).Seconds(),
		"rss_bytes":           rssBytes(),
		"heap_inuse_bytes":    ms.HeapInuse,
		"heap_idle_bytes":     ms.HeapIdle,
		"heap_released_bytes": ms.HeapReleased,
		"heap_sys_bytes":      ms.HeapSys,
		"go_sys_bytes":        ms.Sys,
		"num_gc":              ms.NumGC,
		"goroutines":          runtime.NumGoroutine(),
		"sync":                s.cfg.sync,
		"syncs":               atomic.LoadUint64(&s.syncs),
		"sync_errors":         atomic.LoadUint64(&s.syncErrors),
		"sync_last_error":     s.syncLastErr,
		"snapshots":           s.snapshots,
		"snapshot_last_ms":    float64(s.snapLast) / 1e6,
		"snapshot_max_ms":     float64(s.snapMax) / 1e6,
		"snapshot_bytes":      s.snapBytes,
		"snapshot_error":      s.snapErr,
		"restores":            s.restores,
		"restored_from":       s.restoredFrom,
		"away_last_ms":        float64(s.awayLast) / 1e6,
		"checksync":           agentStats(),
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
