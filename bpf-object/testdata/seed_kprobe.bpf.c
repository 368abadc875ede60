// The seed's non-CO-RE kprobe, in the shape of the reference tutorial:
// libbpf's bpf_printk (format in .rodata) and bpf_probe_read_kernel, with a
// hand-written pt_regs and struct filename offsets of 4.19-6.x.
// Built as libbpf-bootstrap builds: clang -target bpf -D__TARGET_ARCH_x86 -O2 -g
// (or __TARGET_ARCH_arm64, __TARGET_ARCH_arm: the layouts below follow it).
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#if defined(__TARGET_ARCH_arm64)
struct pt_regs {
	__u64 regs[31], sp, pc, pstate;
};
#define ARG2(ctx) ((ctx)->regs[1])
#define RC(ctx) ((long)(ctx)->regs[0])
typedef const char *kptr_t;
#elif defined(__TARGET_ARCH_arm)
/* 32-bit registers and pointers: BPF's long and pointers have 64 bits. */
struct pt_regs {
	__u32 uregs[18];
};
#define ARG2(ctx) ((unsigned long)(ctx)->uregs[1])
#define RC(ctx) ((long)(int)(ctx)->uregs[0])
typedef __u32 kptr_t;
#else
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};
#define ARG2(ctx) ((ctx)->si)
#define RC(ctx) ((long)(ctx)->ax)
typedef const char *kptr_t;
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe/do_unlinkat")
int do_unlinkat(struct pt_regs *ctx)
{
	void *name = (void *)ARG2(ctx);
	kptr_t filename = 0;
	int refcnt = 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	/* struct filename: name, uptr, then refcnt. */
	bpf_probe_read_kernel(&filename, sizeof(filename), name);
	bpf_probe_read_kernel(&refcnt, sizeof(refcnt), name + 2 * sizeof(kptr_t));
	bpf_printk("KPROBE ENTRY pid = %d, refcnt=%d filename = %s", pid, refcnt, filename);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int do_unlinkat_exit(struct pt_regs *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	long ret = RC(ctx);

	bpf_printk("KPROBE EXIT: pid = %d, ret = %ld", pid, ret);
	return 0;
}
