/*
 * Restore trampolines (agent/include/cs_agent_abi.h). A restored thread
 * leaves the freestanding restorer through here, so that once it has said
 * "done" it runs only code that lives in the application's own image. They
 * use registers only: %rsp already points at the thread's saved ucontext,
 * which rt_sigreturn reads (the kernel takes the rt_sigframe at %rsp - 8,
 * where the handler's return address was popped).
 */
	.text

	.globl	cs_trampoline_thread
	.type	cs_trampoline_thread, @function
cs_trampoline_thread:
	.cfi_startproc
	lock decl (%rdi)
	mov	$202, %eax		/* futex(rdi, FUTEX_WAKE, INT_MAX) */
	mov	$1, %esi
	mov	$0x7fffffff, %edx
	syscall
	mov	$202, %eax		/* the same, private: whichever the waiter used */
	mov	$129, %esi
	mov	$0x7fffffff, %edx
	syscall
	mov	$15, %eax		/* rt_sigreturn */
	syscall
	ud2
	.cfi_endproc
	.size	cs_trampoline_thread, .-cs_trampoline_thread

	.globl	cs_trampoline_last
	.type	cs_trampoline_last, @function
cs_trampoline_last:
	.cfi_startproc
	mov	%rdx, %r12
	mov	%rcx, %r13		/* syscall clobbers rcx */
	mov	$11, %eax		/* munmap(rdi, rsi): the restorer goes */
	syscall
	test	%r12, %r12
	js	1f
	mov	$157, %eax		/* prctl(PR_SET_MM, PR_SET_MM_EXE_FILE, fd, 0, 0) */
	mov	$35, %edi
	mov	$13, %esi
	mov	%r12, %rdx
	xor	%r10d, %r10d
	xor	%r8d, %r8d
	syscall
	mov	$3, %eax		/* close(fd) */
	mov	%r12, %rdi
	syscall
1:	test	%r13, %r13		/* main_left = 1: the agent may freeze */
	jz	2f
	movl	$1, (%r13)
	mov	$202, %eax		/* futex(r13, FUTEX_WAKE_PRIVATE, INT_MAX) */
	mov	%r13, %rdi
	mov	$129, %esi
	mov	$0x7fffffff, %edx
	syscall
2:	mov	$15, %eax		/* rt_sigreturn */
	syscall
	ud2
	.cfi_endproc
	.size	cs_trampoline_last, .-cs_trampoline_last

	.section .note.GNU-stack, "", @progbits
