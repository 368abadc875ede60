// The seed's probe in its CO-RE form: BPF_KPROBE arguments (pt_regs members)
// and BPF_CORE_READ of struct filename, relocated by nobtf from an offsets
// profile or the kernel's BTF. vmlinux.h here is a minimal hand-made one;
// tests/c/build.sh also builds this file against bpftool's (seed_core_btf.o).
// Built as libbpf-bootstrap builds: clang -target bpf -D__TARGET_ARCH_x86 -O2 -g.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe/do_unlinkat")
int BPF_KPROBE(do_unlinkat, int dfd, struct filename *name)
{
	pid_t pid = bpf_get_current_pid_tgid() >> 32;
	const char *filename = BPF_CORE_READ(name, name);
	int refcnt;

	/* Into an int: refcnt is an int before 6.0 and an atomic_t (one int)
	 * after, as in bpftool's vmlinux.h of 6.1; one relocation either way. */
	BPF_CORE_READ_INTO(&refcnt, name, refcnt);

	bpf_printk("KPROBE ENTRY pid = %d, refcnt=%d filename = %s", pid, refcnt, filename);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int BPF_KRETPROBE(do_unlinkat_exit, long ret)
{
	pid_t pid = bpf_get_current_pid_tgid() >> 32;

	bpf_printk("KPROBE EXIT: pid = %d, ret = %ld", pid, ret);
	return 0;
}
