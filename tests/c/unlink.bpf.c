// SPDX-License-Identifier: GPL-2.0
/*
 * The reference's do_unlinkat kprobe, written the way programs for kernels
 * without BTF were: no vmlinux.h, no libbpf headers, no CO-RE. Every layout
 * and helper id is spelled out here, so the object needs nothing from the
 * kernel it runs on beyond what these numbers promise.
 *
 * Build: tests/c/build.sh [--arch ARCH] OUTDIR (clang -target bpf -O2 -g0 -c).
 * -DUSE_PROBE_READ_KERNEL reads with bpf_probe_read_kernel (5.5+) instead of
 * bpf_probe_read (every kernel with BPF kprobes).
 */

#include "legacy.h"
#include "pt_regs.h"

/* Helpers are called by id (enum bpf_func_id). */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_trace_printk)(const char *fmt, __u32 size, ...) = (void *)6;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
#ifdef USE_PROBE_READ_KERNEL
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)113;
#define read_kernel bpf_probe_read_kernel
#else
static long (*bpf_probe_read)(void *dst, __u32 size, const void *src) = (void *)4;
#define read_kernel bpf_probe_read
#endif

/* struct filename (4.19+): name at +0, refcnt after name and uptr (+16,
 * or +8 with 32-bit pointers). */
#define FILENAME_NAME_OFF 0
#define FILENAME_REFCNT_OFF (2 * sizeof(kptr_t))

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
	/* long do_unlinkat(int dfd, struct filename *name): name is the 2nd argument. */
	const char *name = (const char *)ARG2(ctx);
	kptr_t filename = 0;
	int refcnt = 0;
	__u32 key = 0;
	__u64 *count;
	pid_t pid = bpf_get_current_pid_tgid() >> 32;

	read_kernel(&filename, sizeof(filename), name + FILENAME_NAME_OFF);
	read_kernel(&refcnt, sizeof(refcnt), name + FILENAME_REFCNT_OFF);

	count = bpf_map_lookup_elem(&unlink_count, &key);
	if (count)
		__sync_fetch_and_add(count, 1);

	/* On the stack, not in .rodata: global data needs 5.2. */
	char fmt[] = "KPROBE ENTRY pid = %d, refcnt=%d filename = %s\n";
	bpf_trace_printk(fmt, sizeof(fmt), pid, refcnt, filename);
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
