// The seed's non-CO-RE kprobe, in the shape of the reference tutorial:
// libbpf's bpf_printk (format in .rodata) and bpf_probe_read_kernel, with a
// hand-written x86-64 pt_regs and struct filename offsets of 4.19-6.x.
// Built as libbpf-bootstrap builds: clang -target bpf -D__TARGET_ARCH_x86 -O2 -g.
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe/do_unlinkat")
int do_unlinkat(struct pt_regs *ctx)
{
	void *name = (void *)ctx->si;
	const char *filename = 0;
	int refcnt = 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	bpf_probe_read_kernel(&filename, sizeof(filename), name);
	bpf_probe_read_kernel(&refcnt, sizeof(refcnt), name + 16);
	bpf_printk("KPROBE ENTRY pid = %d, refcnt=%d filename = %s", pid, refcnt, filename);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int do_unlinkat_exit(struct pt_regs *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	long ret = ctx->ax;

	bpf_printk("KPROBE EXIT: pid = %d, ret = %ld", pid, ret);
	return 0;
}
