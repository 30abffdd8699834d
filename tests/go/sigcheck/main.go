// sigcheck is a Go program that wants the agent's freeze signal for itself:
// it calls signal.Notify on signal 62 (-notify one) or on every signal
// (-notify all), or installs a plain C handler for it (-notify c, see
// chandler.go), and counts what arrives. Run under `checksync run`, it shows
// what the agent does about that (docs/go.md, "Signals"): the agent takes the
// signal back before each freeze, reports the takeover, and passes signal 62
// sent by others on to Go's handler, so the count is exactly the number of
// signals 62 sent from outside, never the agent's own.
//
//	GET  /count      {"sig62": N, "other": M}: signals received on the channel
//	                 (-notify c: by the C handler)
//	GET  /stats      checksync.Stats() as JSON
//	GET  /retake     signal.Ignore(62) then signal.Notify again (-notify c:
//	                 the C handler installed again): the program takes the
//	                 signal back from the agent once more
//	GET  /flip?n=N   N times signal.Ignore(62), signal.Notify, signal.Reset,
//	                 1 ms apart: Go replaces the handler (SIG_IGN, then its
//	                 own) at any moment, during freezes too
//	PUT  /k/<key>    store the body, answered after checksync.Sync
//	GET  /k/<key>    the value, or 404
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"checksync"
)

// The agent's freeze signal (agent/capture/agent.h: SIGRTMIN + 28 with glibc).
const freezeSignal = syscall.Signal(62)

var (
	sig62, other uint64
	ch           = make(chan os.Signal, 64)
	notifyAll    bool
	notifyC      bool
	notifyReset  bool
	mu           sync.Mutex
	kv           = map[string]string{}
)

func notify() {
	if notifyReset {
		resetSignal()
	} else if notifyC {
		installCHandler()
	} else if notifyAll {
		signal.Notify(ch)
	} else {
		signal.Notify(ch, freezeSignal)
	}
}

// -notify reset: the program wants the signal for a moment and gives it
// back: Go's handler stays installed (the runtime's own), the signal is no
// longer wanted, and os/signal's thread blocks it again.
func resetSignal() {
	signal.Ignore(freezeSignal)
	signal.Notify(ch, freezeSignal)
	signal.Reset(freezeSignal)
}

func count() {
	for s := range ch {
		if s == freezeSignal {
			atomic.AddUint64(&sig62, 1)
		} else {
			atomic.AddUint64(&other, 1)
		}
	}
}

func writeJSON(w http.ResponseWriter, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func stats(w http.ResponseWriter, _ *http.Request) {
	s := checksync.Stats()
	writeJSON(w, map[string]interface{}{
		"enabled":         s.Enabled,
		"generation":      s.Generation,
		"checkpoints":     s.Checkpoints,
		"failures":        s.Failures,
		"last_error":      s.LastError,
		"restored_from":   s.RestoredFrom,
		"signal":          s.Signal.Number,
		"takeovers":       s.Signal.Takeovers,
		"foreign_handler": s.Signal.ForeignHandler,
		"first_takeover":  s.Signal.FirstTakeover.UnixNano(),
		"last_takeover":   s.Signal.LastTakeover.UnixNano(),
		"forwarded":       s.Signal.Forwarded,
	})
}

func key(w http.ResponseWriter, r *http.Request) {
	k := strings.TrimPrefix(r.URL.Path, "/k/")
	switch r.Method {
	case http.MethodPut:
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		kv[k] = string(b)
		mu.Unlock()
		gen, err := checksync.Sync(context.Background())
		if err != nil {
			http.Error(w, err.Error(), 503)
			return
		}
		fmt.Fprintf(w, "OK %d", gen)
	default:
		mu.Lock()
		v, ok := kv[k]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, v)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	mode := flag.String("notify", "one", "one: signal.Notify(ch, 62); all: signal.Notify(ch); c: a C handler; reset: Ignore, Notify, Reset")
	flag.Parse()
	notifyAll = *mode == "all"
	notifyC = *mode == "c"
	notifyReset = *mode == "reset"
	notify()
	go count()
	http.HandleFunc("/count", func(w http.ResponseWriter, _ *http.Request) {
		n := atomic.LoadUint64(&sig62)
		if notifyC {
			n = cReceived()
		}
		writeJSON(w, map[string]uint64{"sig62": n, "other": atomic.LoadUint64(&other)})
	})
	http.HandleFunc("/stats", stats)
	http.HandleFunc("/retake", func(w http.ResponseWriter, _ *http.Request) {
		if !notifyC {
			signal.Ignore(freezeSignal)
		}
		notify()
		io.WriteString(w, "OK")
	})
	http.HandleFunc("/flip", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := 0; i < n; i++ {
			resetSignal()
			time.Sleep(time.Millisecond)
		}
		io.WriteString(w, "OK")
	})
	http.HandleFunc("/k/", key)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "sigcheck: ready on %s notify=%s checksync=%v\n", ln.Addr(), *mode, checksync.Enabled())
	log.Fatal(http.Serve(ln, nil))
}
