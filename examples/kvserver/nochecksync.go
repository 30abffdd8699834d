//go:build nochecksync

// Built with -tags nochecksync, kvserver does not import the checksync
// package at all: it is then an unmodified cgo program that the agent reaches
// only through LD_PRELOAD (tests/go: the LD_PRELOAD case).
package main

import (
	"context"
	"errors"
	"time"
)

func agentEnabled() bool { return false }

func agentSync(context.Context) (uint64, error) {
	return 0, errors.New("built without the checksync package")
}

func agentOnRestore(func(uint64, time.Duration)) {}

func agentStats() interface{} { return nil }
