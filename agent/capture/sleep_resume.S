/*
 * A sleep the freeze interrupted goes on to its deadline (sleepers.c). The
 * freeze handler points the thread's frame here instead of letting the
 * call return EINTR; the program's registers are all as they were at its
 * syscall instruction. This saves the six the kernel preserves across a
 * system call (rdi, rsi, rdx, r10, r8, r9), lets cs_sleep_resume_c make
 * the call again with the time left, puts them back and jumps to where the
 * program's call returns, with the result in rax. rcx and r11 are the ones
 * a syscall clobbers; the C helper keeps rbx, rbp, r12-r15 by the ABI and
 * touches no vector register (general-regs-only).
 *
 * Unwind information says, from the call on, that the caller's frame is the
 * program's (its sp and pc are saved in the struct), so a debugger's
 * backtrace goes through (and so would the unwinding of an asynchronous
 * pthread_cancel; not tested).
 */
	.text

	.globl	cs_sleep_resume
	.hidden	cs_sleep_resume
	.type	cs_sleep_resume, @function
cs_sleep_resume:
	.cfi_startproc
	.cfi_undefined rip
	mov	%rsp, %r11
	lea	-128(%rsp), %rsp	/* the interrupted function's red zone */
	and	$-16, %rsp
	push	%r11			/* struct cs_resume_regs, from the end */
	push	%r9
	push	%r8
	push	%r10
	push	%rdx
	push	%rsi
	push	%rdi
	push	$0			/* pc, filled in by the helper */
	mov	%rsp, %rdi
	/* CFA = the program's sp (at 56(%rsp)); rip is at 0(%rsp) */
	.cfi_escape 0x0f, 0x03, 0x77, 0x38, 0x06
	.cfi_escape 0x10, 0x10, 0x02, 0x77, 0x00
	call	cs_sleep_resume_c
	pop	%rcx
	.cfi_undefined rip
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%r10
	pop	%r8
	pop	%r9
	pop	%rsp
	jmp	*%rcx
	.cfi_endproc
	.size	cs_sleep_resume, .-cs_sleep_resume

/* long cs_sleep_syscall(const uint64_t a[7]): a[0] is the number. */
	.globl	cs_sleep_syscall
	.hidden	cs_sleep_syscall
	.type	cs_sleep_syscall, @function
cs_sleep_syscall:
	mov	%rdi, %r11
	mov	0(%r11), %rax
	mov	8(%r11), %rdi
	mov	16(%r11), %rsi
	mov	24(%r11), %rdx
	mov	32(%r11), %r10
	mov	40(%r11), %r8
	mov	48(%r11), %r9
	syscall
	.globl	cs_sleep_syscall_end
	.hidden	cs_sleep_syscall_end
cs_sleep_syscall_end:
	ret
	.size	cs_sleep_syscall, .-cs_sleep_syscall

	.section .note.GNU-stack, "", @progbits
