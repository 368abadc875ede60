//! What the target kernel can do, as the loader found it: the generator
//! adapts to these and refuses what the kernel cannot run.

use kernel_headers::KernelVersion;
pub use kernel_headers::bpf::Readers;
use kernel_headers::bpf::{
    BOUNDED_LOOPS_SINCE, COMPLEXITY_LIMIT_INSNS, LARGE_PROGRAMS_SINCE, MAXINSNS, PERCPU_HASH_SINCE,
    ringbuf,
};
use kernel_headers::pt_regs::Abi;
pub use probes::ringbuf::Sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    /// The release, for what only some releases have (helpers, perf-event
    /// programs): refused by name and version where it lacks them.
    pub release: KernelVersion,
    pub readers: Readers,
    /// `BPF_MAP_TYPE_PERCPU_HASH` (4.6+): aggregations need no atomics.
    pub percpu_hash: bool,
    /// Most instructions a program may have (4096 before 5.2).
    pub max_insns: usize,
    /// The verifier accepts loops it can prove bounded (5.3+): `while`.
    pub bounded_loops: bool,
    /// `bpf_probe_read`/`_str` still read either address space after the
    /// 5.5 split (architectures whose user and kernel addresses never
    /// overlap, x86 among them). Then a pointer of unknown space (`arg1`, a
    /// member without `__user`) is read with them, as bpftrace does, so
    /// `str(arg1)` of a user path works; elsewhere it is read as kernel
    /// memory.
    pub compat_readers: bool,
    /// Where records go: the BPF ring buffer (5.8+) or the perf rings.
    pub sink: Sink,
    /// One program may attach to many functions through a kprobe_multi
    /// link (5.18+ with CONFIG_FPROBE, 64-bit): a probe whose attach
    /// points expand to several kernel functions is compiled once.
    /// `for_release` leaves it off: the loader sets it from what it found.
    pub kprobe_multi: bool,
    /// `task_struct.comm`'s offset where programs read it through
    /// `bpf_get_current_task_btf` (5.11+ with BTF; a test load decides):
    /// `comm` is then two loads, not `bpf_get_current_comm`'s copy.
    /// `for_release` leaves it off: the loader sets it from what it found.
    pub task_comm: Option<i16>,
    pub abi: &'static Abi,
}

impl Kernel {
    /// The capabilities mainline `release` has, on `abi`.
    pub fn for_release(release: KernelVersion, abi: &'static Abi) -> Kernel {
        Kernel {
            release,
            readers: Readers::for_release(release),
            percpu_hash: release >= PERCPU_HASH_SINCE,
            max_insns: if release >= LARGE_PROGRAMS_SINCE {
                COMPLEXITY_LIMIT_INSNS
            } else {
                MAXINSNS
            },
            bounded_loops: release >= BOUNDED_LOOPS_SINCE,
            compat_readers: abi.arch == "x86_64",
            sink: Sink::for_ring_buffer(release >= ringbuf::SINCE),
            kprobe_multi: false,
            task_comm: None,
            abi,
        }
    }

    /// Whether mainline `release` on `abi` attaches kprobe_multi links
    /// (what a dry run assumes; a live run tries).
    pub fn release_has_kprobe_multi(release: KernelVersion, abi: &Abi) -> bool {
        release >= kernel_headers::bpf::attach_type::KPROBE_MULTI_SINCE && abi.pointer_bytes == 8
    }
}
