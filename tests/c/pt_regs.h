// SPDX-License-Identifier: GPL-2.0
/* For the tests/c objects, which include it after legacy.h (for __u32, __u64). */
#ifndef NOBTF_TEST_PT_REGS_H
#define NOBTF_TEST_PT_REGS_H

/*
 * struct pt_regs as the kernel lays it out, for the architecture named by
 * the __TARGET_ARCH_* macro tests/c/build.sh passes (libbpf's spelling);
 * x86-64 without one. ARG2 is a function's second argument, RC its return
 * value; kptr_t holds a kernel pointer read from memory.
 */
#if defined(__TARGET_ARCH_arm64)
/* struct user_pt_regs: x0..x30, sp, pc, pstate. */
struct pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
#define ARG2(ctx) ((ctx)->regs[1])
#define RC(ctx) ((long)(ctx)->regs[0])
typedef const char *kptr_t;
#elif defined(__TARGET_ARCH_arm)
/* r0..r15, cpsr, orig_r0: 32-bit registers, where BPF's long has 64 bits. */
struct pt_regs {
	__u32 uregs[18];
};
#define ARG2(ctx) ((unsigned long)(ctx)->uregs[1])
#define RC(ctx) ((long)(int)(ctx)->uregs[0])
typedef __u32 kptr_t;
#else
/* x86-64: 21 unsigned longs. */
struct pt_regs {
	unsigned long r15;
	unsigned long r14;
	unsigned long r13;
	unsigned long r12;
	unsigned long bp;
	unsigned long bx;
	unsigned long r11;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long cs;
	unsigned long flags;
	unsigned long sp;
	unsigned long ss;
};
#define ARG2(ctx) ((ctx)->si)
#define RC(ctx) ((long)(ctx)->ax)
typedef const char *kptr_t;
#endif

#endif
