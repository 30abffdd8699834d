package main

// -notify c: a C handler for signal 62, installed through cgo with
// sigaction but without SA_SIGINFO, so the agent must call it as
// handler(sig) when it passes a signal on (docs/go.md, "Signals").

// #include <signal.h>
// #include <string.h>
//
// static volatile sig_atomic_t c_count;
//
// static void c_handler(int sig)
// {
// 	if (sig == 62)
// 		c_count++;
// }
//
// static int c_install(void)
// {
// 	struct sigaction sa;
// 	memset(&sa, 0, sizeof(sa));
// 	sa.sa_handler = c_handler;
// 	sa.sa_flags = SA_ONSTACK | SA_RESTART;
// 	sigfillset(&sa.sa_mask);
// 	return sigaction(62, &sa, NULL);
// }
//
// static long c_received(void) { return c_count; }
import "C"

func installCHandler() {
	if C.c_install() != 0 {
		panic("sigaction(62) failed")
	}
}

func cReceived() uint64 { return uint64(C.c_received()) }
