// The libbpf peer of `nobtf run unlink` for scripts/bench: the same work
// (pid, tid, comm, timestamp, filename and refcnt on entry, ret on exit,
// one perf event each), written the way a libbpf user would, without CO-RE
// so it loads on the same kernels.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "unlink.h"

struct filename;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

static __always_inline void fill_task(struct unlink_event *e, __u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid();

	e->version = 1;
	e->kind = kind;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

SEC("kprobe/do_unlinkat")
int BPF_KPROBE(unlink_entry, int dfd, struct filename *name)
{
	struct unlink_event e = {};
	const char *str = 0;

	fill_task(&e, UNLINK_ENTRY);
	bpf_probe_read_kernel(&str, sizeof(str), (void *)name + FILENAME_NAME_OFFSET);
	bpf_probe_read_kernel(&e.refcnt, sizeof(e.refcnt), (void *)name + FILENAME_REFCNT_OFFSET);
	e.flags = 1;
	bpf_probe_read_kernel_str(e.filename, sizeof(e.filename), str);
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

SEC("kretprobe/do_unlinkat")
int BPF_KRETPROBE(unlink_exit, long ret)
{
	struct unlink_event e = {};

	fill_task(&e, UNLINK_EXIT);
	e.ret = ret;
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
