/*
 * Raw x86_64 system calls for the freestanding restorer: no libc, no errno.
 * Each returns the kernel's value: >= 0, or -errno.
 */
#ifndef CS_RESTORE_SYS_H
#define CS_RESTORE_SYS_H

#include <stddef.h>
#include <stdint.h>

enum {
	NR_read = 0, NR_write = 1, NR_open = 2, NR_close = 3, NR_fstat = 5, NR_mmap = 9, NR_mprotect = 10,
	NR_munmap = 11, NR_rt_sigaction = 13, NR_rt_sigprocmask = 14, NR_pread64 = 17,
	NR_mremap = 25, NR_madvise = 28, NR_getpid = 39, NR_setitimer = 38, NR_exit = 60, NR_fcntl = 72, NR_prctl = 157, NR_arch_prctl = 158, NR_futex = 202,
	NR_set_tid_address = 218, NR_rt_sigqueueinfo = 129, NR_rt_tgsigqueueinfo = 297, NR_timer_create = 222, NR_timer_settime = 223,
	NR_timer_delete = 226, NR_exit_group = 231, NR_set_robust_list = 273,
	NR_prlimit64 = 302, NR_recvmsg = 47, NR_chdir = 80, NR_umask = 95, NR_personality = 135,
	NR_dup3 = 292, NR_setns = 308, NR_pidfd_getfd = 438, NR_seccomp = 317, NR_membarrier = 324, NR_rseq = 334, NR_clone3 = 435, NR_close_range = 436,
};

static inline long cs_sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define cs_sys0(n)                   cs_sys6(n, 0, 0, 0, 0, 0, 0)
#define cs_sys1(n, a)                cs_sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define cs_sys2(n, a, b)             cs_sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define cs_sys3(n, a, b, c)          cs_sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define cs_sys4(n, a, b, c, d)       cs_sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define cs_sys5(n, a, b, c, d, e)    cs_sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* start.S */
long cs_clone3_thread(void *args, size_t size, void *arg);
__attribute__((noreturn)) void cs_jump(uint64_t rsp, uint64_t rdi, uint64_t rsi, uint64_t rdx,
				       uint64_t target, uint64_t rcx);

/* lib.c: what the compiler may emit calls to, and tiny helpers */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t cs_strlen(const char *s);

#endif
