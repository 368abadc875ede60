// SPDX-License-Identifier: GPL-2.0
/*
 * The reference's do_unlinkat kprobe shaped for 4.14 and older, where
 * do_unlinkat takes the user's path, not a struct filename:
 *   static long do_unlinkat(int dfd, const char __user *pathname)
 * The path is the second argument, a user pointer, read with
 * bpf_probe_read_str (4.11). Written like programs of that time: no
 * kernel or libbpf headers (pt_regs.h is unlink.bpf.c's layout), helpers
 * by id, a legacy "maps" section, a "version" section, no global data and
 * no loops.
 *
 * Build: tests/c/build.sh [--arch ARCH] OUTDIR (clang -target bpf -O2 -g0 -c).
 */

#include "legacy.h"
#include "pt_regs.h"

/* Helpers are called by id (enum bpf_func_id). */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_trace_printk)(const char *fmt, __u32 size, ...) = (void *)6;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_probe_read_str)(void *dst, __u32 size, const void *src) = (void *)45;

/* How many unlinks the entry probe saw: one u64 in an array. */
struct bpf_map_def SEC("maps") unlink_count = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

char LICENSE[] SEC("license") = "GPL";

/* Kernels before 5.0 compare this with their own version; loaders replace it. */
__u32 _version SEC("version") = 0xFFFFFFFE;

SEC("kprobe/do_unlinkat")
int unlink_entry(struct pt_regs *ctx)
{
	/* The 2nd argument: const char __user *pathname. */
	const char *pathname = (const char *)ARG2(ctx);
	char filename[64] = {};
	__u32 key = 0;
	__u64 *count;
	pid_t pid = bpf_get_current_pid_tgid() >> 32;

	bpf_probe_read_str(filename, sizeof(filename), pathname);

	count = bpf_map_lookup_elem(&unlink_count, &key);
	if (count)
		__sync_fetch_and_add(count, 1);

	/* On the stack, not in .rodata: global data needs 5.2. */
	char fmt[] = "KPROBE ENTRY pid = %d, filename = %s\n";
	bpf_trace_printk(fmt, sizeof(fmt), pid, filename);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int unlink_exit(struct pt_regs *ctx)
{
	pid_t pid = bpf_get_current_pid_tgid() >> 32;
	long ret = RC(ctx);

	char fmt[] = "KPROBE EXIT: pid = %d, ret = %ld\n";
	bpf_trace_printk(fmt, sizeof(fmt), pid, ret);
	return 0;
}
