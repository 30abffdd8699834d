// kvserver is checksync's reference service: a key-value store on go-cache
// spoken to over HTTP. It is the workload of the Go tests, the demo and the
// benchmarks (docs/go.md).
//
//	PUT    /k/<key>   body is the value; answered after checksync.Sync with -sync
//	GET    /k/<key>   the value, or 404
//	DELETE /k/<key>   answered after checksync.Sync with -sync
//	GET    /stats     JSON: items, Go heap, RSS, checksync counters, snapshots
//	GET    /stats/checksync   only the checksync counters (cheap to poll)
//	POST   /debug/drop?n=N, /debug/free   memory experiments (debug.go)
//
// -preload N -value-size B fills keys k0..k<N-1> with PreloadValue(i, B), so a
// checker can verify any of them without having written it.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/patrickmn/go-cache"
)

type config struct {
	listen           string
	sync             bool
	preload          int
	valueSize        int
	snapshot         string
	snapshotInterval time.Duration
	load             string
}

func parseFlags() config {
	var c config
	flag.StringVar(&c.listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	flag.BoolVar(&c.sync, "sync", false, "answer each write only after checksync.Sync (needs `checksync run`)")
	flag.IntVar(&c.preload, "preload", 0, "preload `N` items k0..k<N-1> at start")
	flag.IntVar(&c.valueSize, "value-size", 1024, "size in `bytes` of preloaded values")
	flag.StringVar(&c.snapshot, "snapshot", "", "save the cache to `FILE` with go-cache's SaveFile periodically (baseline)")
	flag.DurationVar(&c.snapshotInterval, "snapshot-interval", time.Second, "period of -snapshot")
	flag.StringVar(&c.load, "load", "", "load the cache from `FILE` (written by -snapshot) at start")
	flag.Parse()
	return c
}

// PreloadValue is the deterministic content of preloaded key k<i>: the text
// "v<i>." repeated to exactly size bytes.
func PreloadValue(i, size int) []byte {
	unit := fmt.Sprintf("v%d.", i)
	b := make([]byte, size)
	for off := 0; off < size; off += copy(b[off:], unit) {
	}
	return b
}

func main() {
	cfg := parseFlags()
	log.SetPrefix("kvserver: ")
	log.SetFlags(0)
	if cfg.sync && !agentEnabled() {
		log.Fatal("-sync needs the checksync agent: start with `checksync run --dir DIR -- kvserver -sync ...`")
	}
	s := newServer(cfg)
	if cfg.load != "" {
		if err := s.c.LoadFile(cfg.load); err != nil {
			log.Fatalf("loading %s: %v", cfg.load, err)
		}
	}
	for i := 0; i < cfg.preload; i++ {
		s.c.Set(fmt.Sprintf("k%d", i), PreloadValue(i, cfg.valueSize), cache.NoExpiration)
	}
	if cfg.snapshot != "" {
		go s.snapshotLoop(cfg.snapshot, cfg.snapshotInterval)
	}
	agentOnRestore(s.restored)
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		log.Fatal(err)
	}
	// Tests and scripts wait for this line before sending requests.
	fmt.Fprintf(os.Stderr, "kvserver: ready on %s items=%d sync=%v checksync=%v\n",
		ln.Addr(), s.c.ItemCount(), cfg.sync, agentEnabled())
	log.Fatal(http.Serve(ln, s))
}
