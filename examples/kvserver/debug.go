package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
)

// Experiments on what the Go runtime's memory release buys checkpoints
// (docs/go.md):
//
//	POST /debug/drop?n=N  delete k0..k<N-1> and run a GC
//	POST /debug/free      debug.FreeOSMemory: return every free span now
//
// Both answer with RSS and the heap figures after the operation.
func (s *server) debug(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.URL.Path == "/debug/drop" && r.Method == http.MethodPost:
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 {
			http.Error(w, "n must be a count", http.StatusBadRequest)
			return true
		}
		for i := 0; i < n; i++ {
			s.c.Delete(fmt.Sprintf("k%d", i))
		}
		runtime.GC()
	case r.URL.Path == "/debug/free" && r.Method == http.MethodPost:
		debug.FreeOSMemory()
	default:
		return false
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]interface{}{
		"items": s.c.ItemCount(), "rss_bytes": rssBytes(), "heap_inuse_bytes": ms.HeapInuse,
		"heap_idle_bytes": ms.HeapIdle, "heap_released_bytes": ms.HeapReleased,
		"heap_alloc_bytes": ms.HeapAlloc, "stack_inuse_bytes": ms.StackInuse,
	})
	return true
}
