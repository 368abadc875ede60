// SPDX-License-Identifier: GPL-2.0
/*
 * A perf event array in the legacy `maps` section, sized by the loader
 * (max_entries 0 = one slot per CPU): each unlink sends a fixed marker and
 * the caller's pid through bpf_perf_event_output.
 */

#include "legacy.h"

/* flags: write to the ring of the CPU the program runs on */
#define BPF_F_CURRENT_CPU 0xffffffffULL

static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_perf_event_output)(void *ctx, void *map, __u64 flags, void *data,
				     __u64 size) = (void *)25;

struct bpf_map_def SEC("maps") events = {
	.type = BPF_MAP_TYPE_PERF_EVENT_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 0,
};

char LICENSE[] SEC("license") = "GPL";

struct sample {
	__u32 marker;
	__u32 pid;
};

SEC("kprobe/do_unlinkat")
int unlink_sample(void *ctx)
{
	struct sample s = {
		.marker = 0x6e6f6274, /* "tbon" in memory order */
		.pid = bpf_get_current_pid_tgid() >> 32,
	};

	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &s, sizeof(s));
	return 0;
}
