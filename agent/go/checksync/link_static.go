//go:build checksync_static

package checksync

// With -tags checksync_static the package links libchecksync.a (the archive,
// never the .so next to it: -l:), which gobuild
// finds through CGO_LDFLAGS (gobuild -L DIR); shim_static.c binds the API.
// Fully static: add -ldflags '-linkmode external -extldflags -static' (and
// -tags netgo,osusergo so the standard library needs no libc resolver).

// #cgo LDFLAGS: -l:libchecksync.a -lpthread
import "C"

// linkedAgent: the agent is part of this program (see docs/go.md).
const linkedAgent = true
