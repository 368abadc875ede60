// SPDX-License-Identifier: GPL-2.0
/*
 * Two programs in one section and two maps whose definitions are larger
 * than struct bpf_map_def (as in the kernel's old samples/bpf): exercises
 * splitting a section by symbol and deriving the map stride from symbols.
 */

#include "legacy.h"

struct pt_regs {
	unsigned long regs[21];
};

/* bpf_map_def plus two trailing fields some loaders knew; both left zero. */
struct bpf_map_def_ext {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
	unsigned int inner_map_idx;
	unsigned int numa_node;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct bpf_map_def_ext SEC("maps") first_hits = {
	.type = 2, .key_size = 4, .value_size = 8, .max_entries = 1,
};

struct bpf_map_def_ext SEC("maps") second_hits = {
	.type = 1, .key_size = 4, .value_size = 8, .max_entries = 64, .map_flags = 1,
};

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __attribute__((always_inline)) void bump(void *map)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(map, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
}

SEC("kprobe/vfs_read")
int first(struct pt_regs *ctx)
{
	bump(&first_hits);
	return 0;
}

SEC("kprobe/vfs_read")
int second(struct pt_regs *ctx)
{
	bump(&second_hits);
	bump(&first_hits);
	return 0;
}
