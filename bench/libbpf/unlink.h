// Shared by the BPF side and the user side of the libbpf peer.
#ifndef UNLINK_H
#define UNLINK_H

#define UNLINK_ENTRY 1
#define UNLINK_EXIT 2
#define FILENAME_NAME_OFFSET 0
#define FILENAME_REFCNT_OFFSET 16

struct unlink_event {
	__u32 version;
	__u32 kind;
	__u64 ts_ns;
	__u32 pid;
	__u32 tid;
	__s32 refcnt;
	__u32 flags;
	__s64 ret;
	char comm[16];
	char filename[256];
};

#endif
