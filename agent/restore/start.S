/*
 * Entry and the two places where the restorer must control the stack
 * pointer itself: thread creation and the final jump into the agent.
 */
	.text

/* The kernel's stack is outside our region and is unmapped early: switch
 * to the bss stack at once and pass the original one (argc, argv, envp,
 * auxv) to C. */
	.globl _start
	.type _start, @function
_start:
	mov	%rsp, %rdi
	lea	cs_restorer_stack_top(%rip), %rsp
	and	$-16, %rsp
	xor	%ebp, %ebp
	call	cs_restorer_main
	ud2
	.size _start, . - _start

/* long cs_clone3_thread(struct clone_args *args, size_t size, void *arg)
 * The child starts on args->stack with every register of the parent but
 * %rax and %rsp, so arg travels in callee-saved %r12 into
 * cs_thread_entry(arg), which never returns. */
	.globl cs_clone3_thread
	.type cs_clone3_thread, @function
cs_clone3_thread:
	push	%r12
	mov	%rdx, %r12
	mov	$435, %eax
	syscall
	test	%rax, %rax
	jnz	1f
	xor	%ebp, %ebp
	and	$-16, %rsp
	mov	%r12, %rdi
	call	cs_thread_entry
	ud2
1:	pop	%r12
	ret
	.size cs_clone3_thread, . - cs_clone3_thread

/* void cs_jump(rsp, rdi, rsi, rdx, target, rcx): leave with a given stack
 * pointer and argument registers; target never returns here. */
	.globl cs_jump
	.type cs_jump, @function
cs_jump:
	mov	%rdi, %rsp
	mov	%rsi, %rdi
	mov	%rdx, %rsi
	mov	%rcx, %rdx
	mov	%r9, %rcx
	jmp	*%r8
	.size cs_jump, . - cs_jump

	.section .note.GNU-stack, "", @progbits
