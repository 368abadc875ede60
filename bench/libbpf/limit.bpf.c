// The limit for scripts/bench: a kprobe and a kretprobe on do_unlinkat whose
// programs return at once, so what a tracer adds beyond them is its own work
// (helpers, output, wakeups), not the kprobe machinery.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>

SEC("kprobe/do_unlinkat")
int limit_entry(struct pt_regs *ctx)
{
	return 0;
}

SEC("kretprobe/do_unlinkat")
int limit_exit(struct pt_regs *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
