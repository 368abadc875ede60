/*
 * What each legacy test program here would spell out for itself, as
 * programs for kernels without BTF did (no kernel or libbpf headers): the
 * uapi integer types, SEC, the "maps" section's map definition that libbpf
 * before 1.0 read, and the map types the programs use.
 */
#ifndef NOBTF_TESTS_LEGACY_H
#define NOBTF_TESTS_LEGACY_H

typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int pid_t;

#define SEC(name) __attribute__((section(name), used))

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERF_EVENT_ARRAY 4

#endif
