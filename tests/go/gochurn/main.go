// gochurn churns its Go heap for the tests of the agent's Go heap
// integration (docs/go.md, "Free memory of the Go heap"): values die and are
// replaced all the time, small and large (spans of many pages freed whole
// and reused), transient garbage, forced GCs and FreeOSMemory (pages freed
// and scavenged), and goroutines whose stacks grow deep and shrink. It is an
// unmodified cgo program (no checksync package). Every live value's bytes
// follow from its key and version, so a page lost or stale after a restore
// shows:
//
//	GET /ping   answers at once
//	GET /check  verifies every value and the stack walkers; 200 {"ok":true,...} or 500
//	GET /stats  updates so far, heap figures after a GC (runtime.ReadMemStats)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

var (
	listen  = flag.String("listen", "127.0.0.1:18600", "HTTP address")
	nkeys   = flag.Int("keys", 4000, "live values")
	workers = flag.Int("workers", 3, "goroutines replacing values")
)

type value struct {
	key, ver uint64
	data     []byte
}

var (
	mu       [64]sync.Mutex
	slots    []*value
	updates  uint64
	stackOK  uint64 // deep recursions that found their frames intact
	stackBad uint64
	badMsg   atomic.Value
)

// size: mostly small objects, every 40th key a large one (its own span of
// 8..256 pages).
func size(key, ver uint64) int {
	h := mix(key*0x9e3779b97f4a7c15 ^ ver)
	if key%40 == 0 {
		return 64<<10 + int(h%(2<<20))
	}
	return 16 + int(h%8192)
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

func fill(b []byte, key, ver uint64) {
	x := mix(key<<20 ^ ver ^ 0x5bd1e995)
	for i := range b {
		if i%8 == 0 {
			x = mix(x + uint64(i))
		}
		b[i] = byte(x >> (8 * uint(i%8)))
	}
}

func newValue(key, ver uint64) *value {
	v := &value{key: key, ver: ver, data: make([]byte, size(key, ver))}
	fill(v.data, key, ver)
	return v
}

func check(v *value) error {
	want := make([]byte, size(v.key, v.ver))
	fill(want, v.key, v.ver)
	if len(v.data) != len(want) {
		return fmt.Errorf("key %d ver %d: %d bytes, want %d", v.key, v.ver, len(v.data), len(want))
	}
	for i := range want {
		if v.data[i] != want[i] {
			return fmt.Errorf("key %d ver %d: byte %d of %d is %#x, want %#x", v.key, v.ver, i,
				len(want), v.data[i], want[i])
		}
	}
	return nil
}

func churn(seed int64) {
	r := rand.New(rand.NewSource(seed))
	var junk [][]byte
	for {
		k := uint64(r.Intn(len(slots)))
		m := &mu[k%64]
		m.Lock()
		old := slots[k]
		m.Unlock()
		nv := newValue(k, old.ver+1) // built outside the lock; one writer per key below
		m.Lock()
		if slots[k] == old {
			slots[k] = nv
			atomic.AddUint64(&updates, 1)
		}
		m.Unlock()
		junk = append(junk, make([]byte, 32+r.Intn(16<<10)))
		if len(junk) > 64 {
			junk = junk[:0]
		}
		if r.Intn(2000) == 0 {
			runtime.GC()
		}
		if r.Intn(20000) == 0 {
			debug.FreeOSMemory()
		}
		if r.Intn(50) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// deep recurses with a frame of its own bytes and checks them on the way
// back: the stack grows (copied to a larger one) and shrinks at GCs.
func deep(n int, seed byte) bool {
	var frame [200]byte
	for i := range frame {
		frame[i] = seed + byte(i)
	}
	ok := true
	if n > 0 {
		ok = deep(n-1, seed+1)
	}
	for i := range frame {
		if frame[i] != seed+byte(i) {
			return false
		}
	}
	return ok
}

func stacks(seed int64) {
	r := rand.New(rand.NewSource(seed))
	for {
		if deep(1000+r.Intn(20000), byte(r.Intn(256))) {
			atomic.AddUint64(&stackOK, 1)
		} else {
			atomic.AddUint64(&stackBad, 1)
		}
		time.Sleep(time.Duration(r.Intn(20)) * time.Millisecond)
	}
}

func handleCheck(w http.ResponseWriter, _ *http.Request) {
	bad, checked, bytes := 0, 0, 0
	var first string
	for k := range slots {
		m := &mu[k%64]
		m.Lock()
		v := slots[k]
		m.Unlock()
		if err := check(v); err != nil {
			if bad == 0 {
				first = err.Error()
			}
			bad++
		}
		if v.key != uint64(k) {
			bad++
		}
		checked++
		bytes += len(v.data)
	}
	res := map[string]interface{}{"ok": bad == 0 && atomic.LoadUint64(&stackBad) == 0,
		"checked": checked, "bad": bad, "first": first, "bytes": bytes,
		"updates": atomic.LoadUint64(&updates), "stack_ok": atomic.LoadUint64(&stackOK),
		"stack_bad": atomic.LoadUint64(&stackBad)}
	if !res["ok"].(bool) {
		w.WriteHeader(500)
	}
	json.NewEncoder(w).Encode(res)
}

func handleStats(w http.ResponseWriter, _ *http.Request) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	json.NewEncoder(w).Encode(map[string]uint64{"updates": atomic.LoadUint64(&updates),
		"heap_alloc": ms.HeapAlloc, "heap_inuse": ms.HeapInuse, "heap_idle": ms.HeapIdle,
		"heap_released": ms.HeapReleased, "stack_inuse": ms.StackInuse, "num_gc": uint64(ms.NumGC)})
}

func main() {
	flag.Parse()
	slots = make([]*value, *nkeys)
	for k := range slots {
		slots[k] = newValue(uint64(k), 0)
	}
	for i := 0; i < *workers; i++ {
		go churn(int64(i) + 1)
	}
	for i := 0; i < 2; i++ {
		go stacks(int64(i) + 100)
	}
	http.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	http.HandleFunc("/check", handleCheck)
	http.HandleFunc("/stats", handleStats)
	log.Printf("gochurn: ready on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
