//! BPF instruction set and uapi constants (include/uapi/linux/bpf.h,
//! bpf_common.h), as numbers the kernel defines. Names follow the kernel's
//! without the `BPF_` prefix.

use crate::version::KernelVersion;

/// Instruction classes: the low 3 bits of the opcode.
pub mod class {
    pub const LD: u8 = 0x00;
    pub const LDX: u8 = 0x01;
    pub const ST: u8 = 0x02;
    pub const STX: u8 = 0x03;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    /// 32-bit jumps, from 5.1.
    pub const JMP32: u8 = 0x06;
    pub const ALU64: u8 = 0x07;
    pub const MASK: u8 = 0x07;
}

/// Load/store access sizes: bits 3-4 of a load/store opcode.
pub mod size {
    pub const W: u8 = 0x00;
    pub const H: u8 = 0x08;
    pub const B: u8 = 0x10;
    pub const DW: u8 = 0x18;
    pub const MASK: u8 = 0x18;
}

/// Load/store modes: bits 5-7 of a load/store opcode.
pub mod mode {
    pub const IMM: u8 = 0x00;
    pub const ABS: u8 = 0x20;
    pub const IND: u8 = 0x40;
    pub const MEM: u8 = 0x60;
    pub const XADD: u8 = 0xc0;
    pub const MASK: u8 = 0xe0;
}

/// Operand source of ALU and jump opcodes: bit 3.
pub mod source {
    /// The immediate (`imm`).
    pub const K: u8 = 0x00;
    /// The source register.
    pub const X: u8 = 0x08;
    pub const MASK: u8 = 0x08;
}

/// ALU operations: bits 4-7 of an ALU opcode.
pub mod alu {
    pub const ADD: u8 = 0x00;
    pub const SUB: u8 = 0x10;
    pub const MUL: u8 = 0x20;
    pub const DIV: u8 = 0x30;
    pub const OR: u8 = 0x40;
    pub const AND: u8 = 0x50;
    pub const LSH: u8 = 0x60;
    pub const RSH: u8 = 0x70;
    pub const NEG: u8 = 0x80;
    pub const MOD: u8 = 0x90;
    pub const XOR: u8 = 0xa0;
    pub const MOV: u8 = 0xb0;
    pub const ARSH: u8 = 0xc0;
    pub const END: u8 = 0xd0;
    pub const MASK: u8 = 0xf0;
}

/// Jump operations: bits 4-7 of a jump opcode.
pub mod jmp {
    pub const JA: u8 = 0x00;
    pub const JEQ: u8 = 0x10;
    pub const JGT: u8 = 0x20;
    pub const JGE: u8 = 0x30;
    pub const JSET: u8 = 0x40;
    pub const JNE: u8 = 0x50;
    pub const JSGT: u8 = 0x60;
    pub const JSGE: u8 = 0x70;
    pub const CALL: u8 = 0x80;
    pub const EXIT: u8 = 0x90;
    /// `JLT`, `JLE`, `JSLT`, `JSLE` arrived in 4.14.
    pub const JLT: u8 = 0xa0;
    pub const JLE: u8 = 0xb0;
    pub const JSLT: u8 = 0xc0;
    pub const JSLE: u8 = 0xd0;
    pub const MASK: u8 = 0xf0;
}

/// Registers r0..r10. r0 holds return values, r1..r5 arguments (clobbered by
/// calls), r6..r9 survive calls, r10 is the read-only frame pointer.
pub mod reg {
    pub const R0: u8 = 0;
    pub const R1: u8 = 1;
    pub const R2: u8 = 2;
    pub const R3: u8 = 3;
    pub const R4: u8 = 4;
    pub const R5: u8 = 5;
    pub const R6: u8 = 6;
    pub const R7: u8 = 7;
    pub const R8: u8 = 8;
    pub const R9: u8 = 9;
    pub const R10: u8 = 10;
    /// Frame pointer.
    pub const FP: u8 = R10;
    pub const COUNT: u8 = 11;
}

/// `struct bpf_insn`: one 8-byte instruction slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawInsn {
    pub code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high nibble (x86-64 is
    /// little-endian, where the kernel's bitfields land this way).
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl RawInsn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn {
            code,
            regs: (dst & 0x0f) | (src << 4),
            off,
            imm,
        }
    }
    pub const fn dst(self) -> u8 {
        self.regs & 0x0f
    }
    pub const fn src(self) -> u8 {
        self.regs >> 4
    }
}

/// `src_reg` of an `ld_imm64` whose `imm` is a map fd to be replaced by the
/// map's address at load time.
pub const PSEUDO_MAP_FD: u8 = 1;
/// `src_reg` of an `ld_imm64` whose `imm` is a map fd and whose second slot's
/// `imm` an offset into the map's value (5.2+: global data).
pub const PSEUDO_MAP_VALUE: u8 = 2;

/// `map_flags` of BPF_MAP_CREATE nobtf sets.
pub mod map_flags {
    /// Programs may only read the map (5.2+): the verifier then knows the
    /// bytes of a frozen map, e.g. a `bpf_printk` format in `.rodata`.
    pub const F_RDONLY_PROG: u32 = 1 << 7;
}

/// Most instructions a program may have before 5.2 (and for unprivileged
/// loaders after).
pub const MAXINSNS: usize = 4096;
/// From 5.2 the verifier takes programs up to its complexity limit instead.
pub const COMPLEXITY_LIMIT_INSNS: usize = 1_000_000;
/// The release that raised the limit from [`MAXINSNS`].
pub const LARGE_PROGRAMS_SINCE: KernelVersion = KernelVersion::new(5, 2, 0);
/// The release whose verifier accepts bounded loops (back edges).
pub const BOUNDED_LOOPS_SINCE: KernelVersion = KernelVersion::new(5, 3, 0);
/// The release that added `BPF_MAP_TYPE_PERCPU_HASH`.
pub const PERCPU_HASH_SINCE: KernelVersion = KernelVersion::new(4, 6, 0);
/// Bytes of stack a program may use.
pub const STACK_SIZE: usize = 512;
/// Length of `prog_name`/`map_name`, including the terminating NUL (4.15+).
pub const OBJ_NAME_LEN: usize = 16;
/// `perf_event_output` flag: write to the ring of the CPU running the program.
pub const F_CURRENT_CPU: u64 = 0xffff_ffff;
/// `get_stackid` flag: the user stack, not the kernel's.
pub const F_USER_STACK: u64 = 1 << 8;
/// A BPF program on a perf event (`BPF_PROG_TYPE_PERF_EVENT`, attached with
/// `PERF_EVENT_IOC_SET_BPF`): 4.9.
pub const PERF_EVENT_PROGRAMS_SINCE: KernelVersion = KernelVersion::new(4, 9, 0);
/// `perf_event_output` flags bits that select a CPU index.
pub const F_INDEX_MASK: u64 = 0xffff_ffff;

macro_rules! helpers {
    ($($(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, since ($maj:literal, $min:literal);)*) => {
        /// Helper functions (`enum bpf_func_id`) nobtf knows, with their ids.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u32)]
        pub enum Helper {
            $($(#[$doc])* $variant = $id,)*
        }

        impl Helper {
            pub const ALL: &[Helper] = &[$(Helper::$variant),*];

            /// The id passed in a `call` instruction's `imm`.
            pub const fn id(self) -> u32 {
                self as u32
            }

            /// The kernel's name, e.g. `bpf_probe_read_kernel`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Helper::$variant => $name,)*
                }
            }

            /// The first mainline release with this helper (`X.Y.0`).
            pub const fn since(self) -> KernelVersion {
                match self {
                    $(Helper::$variant => KernelVersion::new($maj, $min, 0),)*
                }
            }

            pub fn from_id(id: u32) -> Option<Helper> {
                Helper::ALL.iter().copied().find(|h| h.id() == id)
            }
        }
    };
}

helpers! {
    MapLookupElem = 1, "bpf_map_lookup_elem", since (3, 19);
    MapUpdateElem = 2, "bpf_map_update_elem", since (3, 19);
    MapDeleteElem = 3, "bpf_map_delete_elem", since (3, 19);
    /// Reads kernel or user memory; the only reader before 5.5.
    ProbeRead = 4, "bpf_probe_read", since (4, 1);
    KtimeGetNs = 5, "bpf_ktime_get_ns", since (4, 1);
    TracePrintk = 6, "bpf_trace_printk", since (4, 1);
    GetSmpProcessorId = 8, "bpf_get_smp_processor_id", since (4, 1);
    GetCurrentPidTgid = 14, "bpf_get_current_pid_tgid", since (4, 2);
    GetCurrentUidGid = 15, "bpf_get_current_uid_gid", since (4, 2);
    GetCurrentComm = 16, "bpf_get_current_comm", since (4, 2);
    GetPrandomU32 = 7, "bpf_get_prandom_u32", since (4, 1);
    PerfEventOutput = 25, "bpf_perf_event_output", since (4, 4);
    /// Id of the current stack in a `STACK_TRACE` map.
    GetStackid = 27, "bpf_get_stackid", since (4, 6);
    /// The current `struct task_struct *`.
    GetCurrentTask = 35, "bpf_get_current_task", since (4, 8);
    /// The current `struct task_struct *` as a BTF pointer (5.11+): its
    /// fields are plain loads, checked against the kernel's BTF.
    GetCurrentTaskBtf = 158, "bpf_get_current_task_btf", since (5, 11);
    /// Queues a signal to the current process.
    SendSignal = 109, "bpf_send_signal", since (5, 3);
    GetNumaNodeId = 42, "bpf_get_numa_node_id", since (4, 10);
    GetCurrentCgroupId = 80, "bpf_get_current_cgroup_id", since (4, 18);
    ProbeReadStr = 45, "bpf_probe_read_str", since (4, 11);
    ProbeReadUser = 112, "bpf_probe_read_user", since (5, 5);
    ProbeReadKernel = 113, "bpf_probe_read_kernel", since (5, 5);
    ProbeReadUserStr = 114, "bpf_probe_read_user_str", since (5, 5);
    ProbeReadKernelStr = 115, "bpf_probe_read_kernel_str", since (5, 5);
    /// Copies a record into a `BPF_MAP_TYPE_RINGBUF`.
    RingbufOutput = 130, "bpf_ringbuf_output", since (5, 8);
    /// Reserves a record in a `BPF_MAP_TYPE_RINGBUF`, to be written in place.
    RingbufReserve = 131, "bpf_ringbuf_reserve", since (5, 8);
    /// Commits a reserved record.
    RingbufSubmit = 132, "bpf_ringbuf_submit", since (5, 8);
    /// A ring buffer's state, e.g. [`ringbuf::AVAIL_DATA`].
    RingbufQuery = 134, "bpf_ringbuf_query", since (5, 8);
    /// The address of the probed function (kprobe programs 5.15+; in a
    /// kprobe_multi program: the function the link fired for).
    GetFuncIp = 173, "bpf_get_func_ip", since (5, 15);
}

/// The BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`, 5.8+): the flags of
/// `bpf_ringbuf_output`, `bpf_ringbuf_query`'s questions and the layout the
/// reader maps.
pub mod ringbuf {
    use super::KernelVersion;

    /// The release that added the map type and its helpers.
    pub const SINCE: KernelVersion = KernelVersion::new(5, 8, 0);
    /// `BPF_RB_NO_WAKEUP`: commit without waking the reader.
    pub const NO_WAKEUP: u64 = 1;
    /// `BPF_RB_FORCE_WAKEUP`: commit and wake the reader.
    pub const FORCE_WAKEUP: u64 = 2;
    /// `BPF_RB_AVAIL_DATA`: bytes written and not yet consumed.
    pub const AVAIL_DATA: u64 = 0;
    /// `BPF_RINGBUF_BUSY_BIT`: the record is reserved, not yet committed.
    pub const BUSY_BIT: u32 = 1 << 31;
    /// `BPF_RINGBUF_DISCARD_BIT`: the record was discarded; skip it.
    pub const DISCARD_BIT: u32 = 1 << 30;
    /// `BPF_RINGBUF_HDR_SZ`: the u32 length (with the bits above) and a
    /// u32 page offset before each record; records are 8-aligned.
    pub const HDR_SZ: usize = 8;
    /// The mmap layout: the consumer position's page (read-write) at
    /// offset 0, the producer position's page after it, then the data,
    /// mapped twice in a row so a record that wraps reads contiguously.
    pub const CONSUMER_POS_PAGE: usize = 0;
    pub const PRODUCER_POS_PAGE: usize = 1;
}

impl Helper {
    /// The older helper that does the same on x86-64, for kernels before
    /// 5.5 that lack the `_kernel`/`_user` split (as libbpf falls back).
    pub const fn fallback(self) -> Option<Helper> {
        match self {
            Helper::ProbeReadKernel | Helper::ProbeReadUser => Some(Helper::ProbeRead),
            Helper::ProbeReadKernelStr | Helper::ProbeReadUserStr => Some(Helper::ProbeReadStr),
            _ => None,
        }
    }
}

/// Which memory readers a kernel has: the one description of that
/// capability, for the unlink probes and `nobtf trace` alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readers {
    /// `bpf_probe_read` alone (before 4.11, no `bpf_probe_read_str`):
    /// strings are read at a fixed length.
    ProbeRead,
    /// `bpf_probe_read` and `bpf_probe_read_str` (4.11 to 5.4).
    ProbeReadStr,
    /// The `_kernel`/`_user` split (5.5+).
    Split,
}

impl Readers {
    /// The newest readers mainline `release` has.
    pub fn for_release(release: KernelVersion) -> Readers {
        if release >= Helper::ProbeReadKernel.since() {
            Readers::Split
        } else if release >= Helper::ProbeReadStr.since() {
            Readers::ProbeReadStr
        } else {
            Readers::ProbeRead
        }
    }

    /// The reader of kernel memory of a fixed size.
    pub fn kernel(self) -> Helper {
        match self {
            Readers::ProbeRead | Readers::ProbeReadStr => Helper::ProbeRead,
            Readers::Split => Helper::ProbeReadKernel,
        }
    }

    /// The string reader of kernel memory; `None`: fixed-size reads.
    pub fn kernel_str(self) -> Option<Helper> {
        match self {
            Readers::ProbeReadStr => Some(Helper::ProbeReadStr),
            Readers::Split => Some(Helper::ProbeReadKernelStr),
            Readers::ProbeRead => None,
        }
    }

    /// The string reader of user memory; `None`: fixed-size reads.
    pub fn user_str(self) -> Option<Helper> {
        match self {
            Readers::ProbeReadStr => Some(Helper::ProbeReadStr),
            Readers::Split => Some(Helper::ProbeReadUserStr),
            Readers::ProbeRead => None,
        }
    }
}

/// Map types (`enum bpf_map_type`).
pub mod map_type {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const PERF_EVENT_ARRAY: u32 = 4;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    /// Stacks by id, for `bpf_get_stackid` (4.6+): key u32, value u64 × depth.
    pub const STACK_TRACE: u32 = 7;
    /// 5.8.
    pub const RINGBUF: u32 = 27;
}

/// Program types (`enum bpf_prog_type`).
pub mod prog_type {
    pub const SOCKET_FILTER: u32 = 1;
    /// Both kprobes and kretprobes.
    pub const KPROBE: u32 = 2;
    pub const SCHED_CLS: u32 = 3;
    pub const SCHED_ACT: u32 = 4;
    pub const TRACEPOINT: u32 = 5;
    pub const XDP: u32 = 6;
    pub const PERF_EVENT: u32 = 7;
}

/// `enum bpf_attach_type` values nobtf uses: a program's
/// `expected_attach_type` at load, and a link's at BPF_LINK_CREATE.
pub mod attach_type {
    use super::KernelVersion;

    /// One kprobe program on many functions through one fprobe link
    /// (needs CONFIG_FPROBE).
    pub const TRACE_KPROBE_MULTI: u32 = 42;
    /// The release that added it.
    pub const KPROBE_MULTI_SINCE: KernelVersion = KernelVersion::new(5, 18, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_insn_is_eight_bytes_with_split_registers() {
        assert_eq!(core::mem::size_of::<RawInsn>(), 8);
        let insn = RawInsn::new(0xbf, reg::R6, reg::R1, 0, 0);
        assert_eq!(insn.regs, 0x16);
        assert_eq!((insn.dst(), insn.src()), (6, 1));
    }

    #[test]
    fn helper_ids_and_releases() {
        let expect = [
            (Helper::ProbeRead, 4, KernelVersion::new(4, 1, 0)),
            (Helper::KtimeGetNs, 5, KernelVersion::new(4, 1, 0)),
            (Helper::TracePrintk, 6, KernelVersion::new(4, 1, 0)),
            (Helper::GetCurrentPidTgid, 14, KernelVersion::new(4, 2, 0)),
            (Helper::GetCurrentComm, 16, KernelVersion::new(4, 2, 0)),
            (Helper::PerfEventOutput, 25, KernelVersion::new(4, 4, 0)),
            (Helper::ProbeReadStr, 45, KernelVersion::new(4, 11, 0)),
            (Helper::ProbeReadUser, 112, KernelVersion::new(5, 5, 0)),
            (Helper::ProbeReadKernel, 113, KernelVersion::new(5, 5, 0)),
            (Helper::ProbeReadUserStr, 114, KernelVersion::new(5, 5, 0)),
            (Helper::ProbeReadKernelStr, 115, KernelVersion::new(5, 5, 0)),
            (Helper::RingbufOutput, 130, KernelVersion::new(5, 8, 0)),
            (Helper::RingbufReserve, 131, KernelVersion::new(5, 8, 0)),
            (Helper::RingbufSubmit, 132, KernelVersion::new(5, 8, 0)),
            (Helper::RingbufQuery, 134, KernelVersion::new(5, 8, 0)),
        ];
        for (helper, id, since) in expect {
            assert_eq!(helper.id(), id, "{}", helper.name());
            assert_eq!(helper.since(), since, "{}", helper.name());
            assert_eq!(Helper::from_id(id), Some(helper));
        }
        assert_eq!(Helper::from_id(0), None);
        assert_eq!(Helper::ProbeReadUser.fallback(), Some(Helper::ProbeRead));
        assert_eq!(
            Helper::ProbeReadKernelStr.fallback(),
            Some(Helper::ProbeReadStr)
        );
        assert_eq!(Helper::ProbeRead.fallback(), None);
        assert!(KernelVersion::new(4, 11, 0) > KernelVersion::new(4, 2, 0));
    }

    #[test]
    fn uapi_constants() {
        assert_eq!(map_type::PERF_EVENT_ARRAY, 4);
        assert_eq!(prog_type::KPROBE, 2);
        assert_eq!(MAXINSNS, 4096);
        assert_eq!(OBJ_NAME_LEN, 16);
        assert_eq!((PSEUDO_MAP_FD, PSEUDO_MAP_VALUE), (1, 2));
        assert_eq!(map_flags::F_RDONLY_PROG, 0x80);
        assert_eq!(F_CURRENT_CPU, 0xffff_ffff);
        assert_eq!(class::ALU64 | alu::MOV | source::X, 0xbf);
        assert_eq!(class::JMP | jmp::CALL, 0x85);
        assert_eq!(class::LD | size::DW | mode::IMM, 0x18);
    }
}
