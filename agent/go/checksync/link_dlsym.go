//go:build !checksync_static

package checksync

// linkedAgent: the agent is found at run time with dlsym (shim_dlsym.c).
const linkedAgent = false
