/* A hand-made stand-in for bpftool's vmlinux.h: only what seed_core.bpf.c
 * uses, every struct marked for CO-RE as bpftool marks them. The layouts are
 * 5.4's (x86-64; the registers of arm64 and 32-bit ARM for
 * __TARGET_ARCH_arm64 and __TARGET_ARCH_arm, as bpf_tracing.h reads them);
 * CO-RE relocations carry them to the running kernel. */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef int pid_t;

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

#if defined(__TARGET_ARCH_arm64)
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};

struct pt_regs;
#elif defined(__TARGET_ARCH_arm)
/* unsigned: a register is 4 bytes on the kernel and 8 in BPF, and only an
 * unsigned field's loads can shrink to the kernel's size (a signed one
 * would lose its sign extension: libbpf and nobtf refuse it). bpftool's
 * `long uregs[18]` is not an option here anyway: this kernel has no BTF. */
struct pt_regs {
	unsigned long uregs[18];
};
#else
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};
#endif

struct audit_names;

struct filename {
	const char *name;
	const char *uptr;
	int refcnt;
	struct audit_names *aname;
	const char iname[];
};

#pragma clang attribute pop

#endif
