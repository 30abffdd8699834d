// gostress is a Go workload for checkpoint/restore tests: an unmodified cgo
// program (it does not import the checksync package) with thousands of
// goroutines passing tokens over channels, mutex-protected counters, a
// ticker, a 1M-entry map, an HTTP server, a goroutine that never calls a
// function (so the GC must preempt it asynchronously, with SIGURG to its
// thread), and steady garbage. Every invariant can be checked over HTTP:
//
//	GET /put?k=K&v=V  store K=V (the reply means it is stored)
//	GET /get?k=K      V, or 404
//	GET /ticks        ticker count and the monotonic time since start
//	GET /check        verifies tokens, counters and the big map; 200 or 500
//	GET /gc           runs runtime.GC() and reports how long it took
//	GET /listen?addr=A  starts serving the same handlers on a new listener
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

var (
	workers  = flag.Int("goroutines", 4000, "goroutines in the token ring")
	tokens   = flag.Int("tokens", 1000, "tokens circulating in the ring")
	mapSize  = flag.Int("map", 1000000, "entries in the big map")
	listen   = flag.String("listen", "127.0.0.1:18500", "HTTP address")
	tickStep = flag.Duration("tick", 10*time.Millisecond, "ticker period")
)

// The ring: goroutine i receives a token on ring[i], counts it under a mutex
// shard and passes it on to ring[i+1]. Tokens are never created or lost, so
// the number in flight plus the number parked always equals *tokens.
var (
	ring   []chan int
	passes [64]struct {
		sync.Mutex
		n uint64
	}
	parked int64 // tokens held while a /check counts them
	pause  sync.RWMutex
)

var (
	bigMap  map[uint32]uint64
	bigSum  uint64
	kvMu    sync.Mutex
	kv      = map[string]string{}
	ticks   int64
	start   = time.Now()
	spins   uint64 // advanced by the tight loop
	garbage [][]byte
)

func mix(i uint32) uint64 { x := uint64(i)*0x9E3779B97F4A7C15 + 1; return x ^ x>>29 }

func worker(i int) {
	next := ring[(i+1)%len(ring)]
	for t := range ring[i] {
		pause.RLock()
		p := &passes[i%len(passes)]
		p.Lock()
		p.n++
		p.Unlock()
		pause.RUnlock()
		next <- t
	}
}

func tightLoop() {
	// No function calls and no allocation: only asynchronous preemption
	// (SIGURG) can stop this goroutine for a GC.
	var x uint64
	for i := uint64(0); ; i++ {
		x += i ^ x>>3
		if i&0xffffff == 0 {
			atomic.StoreUint64(&spins, x|1)
		}
	}
}

func churn() {
	for i := 0; ; i++ {
		garbage = append(garbage, make([]byte, 4096))
		if len(garbage) > 2048 {
			garbage = nil
		}
		if i%5000 == 0 {
			runtime.GC()
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func setup() {
	bigMap = make(map[uint32]uint64, *mapSize)
	for i := 0; i < *mapSize; i++ {
		v := mix(uint32(i))
		bigMap[uint32(i)] = v
		bigSum += v
	}
	ring = make([]chan int, *workers)
	for i := range ring {
		ring[i] = make(chan int, 4)
	}
	for i := range ring {
		go worker(i)
	}
	for t := 0; t < *tokens; t++ {
		ring[t%len(ring)] <- t
	}
	go func() {
		for range time.NewTicker(*tickStep).C {
			atomic.AddInt64(&ticks, 1)
		}
	}()
	go tightLoop()
	go churn()
}

func check() error {
	var sum uint64
	for k, v := range bigMap {
		if v != mix(k) {
			return fmt.Errorf("big map: entry %d is %x", k, v)
		}
		sum += v
	}
	if len(bigMap) != *mapSize || sum != bigSum {
		return fmt.Errorf("big map: %d entries, sum %x, want %d, %x", len(bigMap), sum, *mapSize, bigSum)
	}
	// Stop the ring (workers wait on the RWMutex) and count its tokens.
	pause.Lock()
	inFlight := 0
	for _, c := range ring {
		inFlight += len(c)
	}
	pause.Unlock()
	// Workers between the RLock and the send hold a token each; the count
	// is exact only as a bound.
	if inFlight > *tokens {
		return fmt.Errorf("ring: %d tokens in channels, only %d exist", inFlight, *tokens)
	}
	var total uint64
	for i := range passes {
		passes[i].Lock()
		total += passes[i].n
		passes[i].Unlock()
	}
	if total == 0 {
		return fmt.Errorf("ring: no token ever passed")
	}
	if atomic.LoadUint64(&spins) == 0 {
		return fmt.Errorf("tight loop never ran")
	}
	return nil
}

func handlers() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		kvMu.Lock()
		kv[r.URL.Query().Get("k")] = r.URL.Query().Get("v")
		kvMu.Unlock()
		fmt.Fprintln(w, "OK")
	})
	m.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		kvMu.Lock()
		v, ok := kv[r.URL.Query().Get("k")]
		kvMu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, v)
	})
	m.HandleFunc("/ticks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]interface{}{
			"ticks": atomic.LoadInt64(&ticks), "uptime_ms": time.Since(start).Milliseconds(),
			"goroutines": runtime.NumGoroutine(), "pid": os.Getpid()})
	})
	m.HandleFunc("/check", func(w http.ResponseWriter, r *http.Request) {
		if err := check(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "OK")
	})
	m.HandleFunc("/gc", func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		runtime.GC()
		json.NewEncoder(w).Encode(map[string]interface{}{"gc_ms": float64(time.Since(t0).Microseconds()) / 1000})
	})
	m.HandleFunc("/listen", func(w http.ResponseWriter, r *http.Request) {
		ln, err := net.Listen("tcp", r.URL.Query().Get("addr"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		go http.Serve(ln, m)
		fmt.Fprintln(w, "OK")
	})
	return m
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	setup()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "gostress: ready on %s goroutines=%d map=%d GOMAXPROCS=%d\n",
		ln.Addr(), runtime.NumGoroutine(), len(bigMap), runtime.GOMAXPROCS(0))
	log.Fatal(http.Serve(ln, handlers()))
}
