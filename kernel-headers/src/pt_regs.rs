//! `struct pt_regs`: the registers a kprobe program receives as its context.
//!
//! Per-architecture facts live in one submodule each, gathered in one
//! [`Abi`] row per architecture: the `pt_regs` layout, the calling
//! convention, the pointer width and the syscall numbers nobtf uses. The
//! row matching the build target is [`NATIVE`]; code that works for another
//! architecture (a profile's) looks its row up with [`abi`].

pub mod x86_64 {
    use core::mem::{offset_of, size_of};

    /// x86-64 `struct pt_regs` (arch/x86/include/asm/ptrace.h): 21 unsigned
    /// longs, in the kernel's order.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct PtRegs {
        pub r15: u64,
        pub r14: u64,
        pub r13: u64,
        pub r12: u64,
        pub bp: u64,
        pub bx: u64,
        pub r11: u64,
        pub r10: u64,
        pub r9: u64,
        pub r8: u64,
        pub ax: u64,
        pub cx: u64,
        pub dx: u64,
        pub si: u64,
        pub di: u64,
        pub orig_ax: u64,
        pub ip: u64,
        pub cs: u64,
        pub flags: u64,
        pub sp: u64,
        pub ss: u64,
    }

    /// Size of the context a kprobe program may read.
    pub const SIZE: usize = size_of::<PtRegs>();

    /// Register name (as in the kernel struct) -> byte offset, in struct order.
    pub const REGISTERS: [(&str, usize); 21] = [
        ("r15", offset_of!(PtRegs, r15)),
        ("r14", offset_of!(PtRegs, r14)),
        ("r13", offset_of!(PtRegs, r13)),
        ("r12", offset_of!(PtRegs, r12)),
        ("bp", offset_of!(PtRegs, bp)),
        ("bx", offset_of!(PtRegs, bx)),
        ("r11", offset_of!(PtRegs, r11)),
        ("r10", offset_of!(PtRegs, r10)),
        ("r9", offset_of!(PtRegs, r9)),
        ("r8", offset_of!(PtRegs, r8)),
        ("ax", offset_of!(PtRegs, ax)),
        ("cx", offset_of!(PtRegs, cx)),
        ("dx", offset_of!(PtRegs, dx)),
        ("si", offset_of!(PtRegs, si)),
        ("di", offset_of!(PtRegs, di)),
        ("orig_ax", offset_of!(PtRegs, orig_ax)),
        ("ip", offset_of!(PtRegs, ip)),
        ("cs", offset_of!(PtRegs, cs)),
        ("flags", offset_of!(PtRegs, flags)),
        ("sp", offset_of!(PtRegs, sp)),
        ("ss", offset_of!(PtRegs, ss)),
    ];

    /// The System V calling convention's integer argument registers, 1-based
    /// argument `n` at index `n - 1`, with their pt_regs offsets.
    pub const ARGS: [(&str, usize); 6] = [
        ("di", offset_of!(PtRegs, di)),
        ("si", offset_of!(PtRegs, si)),
        ("dx", offset_of!(PtRegs, dx)),
        ("cx", offset_of!(PtRegs, cx)),
        ("r8", offset_of!(PtRegs, r8)),
        ("r9", offset_of!(PtRegs, r9)),
    ];

    /// The register holding a function's return value, as a kretprobe sees it.
    pub const RETURN: (&str, usize) = ("ax", offset_of!(PtRegs, ax));

    pub const ABI: super::Abi = super::Abi {
        arch: "x86_64",
        kbuild_arch: "x86",
        registers: &REGISTERS,
        args: &ARGS,
        ret: RETURN,
        fetch_args: &["di", "si", "dx", "cx", "r8", "r9"],
        pointer_bytes: 8,
        stack_args_from: 1,
        c_struct: "pt_regs",
        c_array: None,
        pt_regs_size: SIZE,
        // arch/x86/entry/syscalls/syscall_64.tbl
        syscalls: super::Syscalls {
            bpf: 321,
            perf_event_open: 298,
        },
    };
}

pub mod aarch64 {
    use core::mem::{offset_of, size_of};

    /// arm64 `struct user_pt_regs` (arch/arm64/include/uapi/asm/ptrace.h),
    /// the start of the kernel's `struct pt_regs`; the members after it
    /// change between versions and nobtf reads none of them.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct PtRegs {
        pub regs: [u64; 31],
        pub sp: u64,
        pub pc: u64,
        pub pstate: u64,
    }

    /// Size of the context nobtf reads (a prefix of every version's pt_regs).
    pub const SIZE: usize = size_of::<PtRegs>();

    const fn x(n: usize) -> usize {
        offset_of!(PtRegs, regs) + n * 8
    }

    /// Register name -> byte offset: `rN` is `regs[N]`, as bpftrace names them.
    pub const REGISTERS: [(&str, usize); 34] = [
        ("r0", x(0)),
        ("r1", x(1)),
        ("r2", x(2)),
        ("r3", x(3)),
        ("r4", x(4)),
        ("r5", x(5)),
        ("r6", x(6)),
        ("r7", x(7)),
        ("r8", x(8)),
        ("r9", x(9)),
        ("r10", x(10)),
        ("r11", x(11)),
        ("r12", x(12)),
        ("r13", x(13)),
        ("r14", x(14)),
        ("r15", x(15)),
        ("r16", x(16)),
        ("r17", x(17)),
        ("r18", x(18)),
        ("r19", x(19)),
        ("r20", x(20)),
        ("r21", x(21)),
        ("r22", x(22)),
        ("r23", x(23)),
        ("r24", x(24)),
        ("r25", x(25)),
        ("r26", x(26)),
        ("r27", x(27)),
        ("r28", x(28)),
        ("r29", x(29)),
        ("r30", x(30)),
        ("sp", offset_of!(PtRegs, sp)),
        ("pc", offset_of!(PtRegs, pc)),
        ("pstate", offset_of!(PtRegs, pstate)),
    ];

    /// AAPCS64: integer arguments in x0..x7 (`regs[0..7]`).
    pub const ARGS: [(&str, usize); 8] = [
        ("r0", x(0)),
        ("r1", x(1)),
        ("r2", x(2)),
        ("r3", x(3)),
        ("r4", x(4)),
        ("r5", x(5)),
        ("r6", x(6)),
        ("r7", x(7)),
    ];

    /// The return value is in x0 (`regs[0]`).
    pub const RETURN: (&str, usize) = ("r0", x(0));

    pub const ABI: super::Abi = super::Abi {
        arch: "aarch64",
        kbuild_arch: "arm64",
        registers: &REGISTERS,
        args: &ARGS,
        ret: RETURN,
        fetch_args: &["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"],
        pointer_bytes: 8,
        stack_args_from: 0,
        c_struct: "user_pt_regs",
        c_array: Some(("regs", 31)),
        pt_regs_size: SIZE,
        // include/uapi/asm-generic/unistd.h
        syscalls: super::Syscalls {
            bpf: 280,
            perf_event_open: 241,
        },
    };
}

pub mod arm {
    use core::mem::{offset_of, size_of};

    /// 32-bit ARM `struct pt_regs` (arch/arm/include/uapi/asm/ptrace.h):
    /// 18 unsigned longs of 4 bytes.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct PtRegs {
        pub uregs: [u32; 18],
    }

    pub const SIZE: usize = size_of::<PtRegs>();

    const fn u(n: usize) -> usize {
        offset_of!(PtRegs, uregs) + n * 4
    }

    /// Register name -> byte offset, `uregs[]` in order, named as the
    /// kernel's ARM_* accessors and bpftrace name them.
    pub const REGISTERS: [(&str, usize); 18] = [
        ("r0", u(0)),
        ("r1", u(1)),
        ("r2", u(2)),
        ("r3", u(3)),
        ("r4", u(4)),
        ("r5", u(5)),
        ("r6", u(6)),
        ("r7", u(7)),
        ("r8", u(8)),
        ("r9", u(9)),
        ("r10", u(10)),
        ("fp", u(11)),
        ("ip", u(12)),
        ("sp", u(13)),
        ("lr", u(14)),
        ("pc", u(15)),
        ("cpsr", u(16)),
        ("orig_r0", u(17)),
    ];

    /// AAPCS: integer arguments in r0..r3 (`uregs[0..3]`).
    pub const ARGS: [(&str, usize); 4] = [("r0", u(0)), ("r1", u(1)), ("r2", u(2)), ("r3", u(3))];

    /// The return value is in r0 (`uregs[0]`).
    pub const RETURN: (&str, usize) = ("r0", u(0));

    pub const ABI: super::Abi = super::Abi {
        arch: "arm",
        kbuild_arch: "arm",
        registers: &REGISTERS,
        args: &ARGS,
        ret: RETURN,
        fetch_args: &["r0", "r1", "r2", "r3"],
        pointer_bytes: 4,
        stack_args_from: 0,
        c_struct: "pt_regs",
        c_array: Some(("uregs", 18)),
        pt_regs_size: SIZE,
        // arch/arm/tools/syscall.tbl (EABI)
        syscalls: super::Syscalls {
            bpf: 386,
            perf_event_open: 364,
        },
    };
}

/// The syscall numbers nobtf makes by number (libc may not know them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscalls {
    pub bpf: i32,
    pub perf_event_open: i32,
}

/// What code generation needs of an architecture's calling convention, so
/// that a generator reads registers through this table and a new
/// architecture is one more row (see [`abi`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abi {
    /// As Rust's `target_arch` and the profiles' `kernel.arch` spell it.
    pub arch: &'static str,
    /// The kernel's own name for it: `make ARCH=...`, `arch/<name>/`.
    pub kbuild_arch: &'static str,
    /// Every `pt_regs` register (name, offset), in struct order.
    pub registers: &'static [(&'static str, usize)],
    /// Integer argument registers (name, pt_regs offset), argument 1 first.
    pub args: &'static [(&'static str, usize)],
    /// The return-value register as a kretprobe sees it.
    pub ret: (&'static str, usize),
    /// The argument registers as tracefs fetch arguments name them (`%si`;
    /// arm64's are `%x0`.., not the `r0` names BPF tools use).
    pub fetch_args: &'static [&'static str],
    /// Width of a kernel pointer and of `long` (and of a register).
    pub pointer_bytes: u8,
    /// Stack slots between the stack pointer at a function's entry and its
    /// first argument passed on the stack (x86-64's return address: 1;
    /// none where the return address is in a register).
    pub stack_args_from: u8,
    /// The struct BPF C reads the context through (libbpf's bpf_tracing.h,
    /// as bpftool's vmlinux.h declares it), and its register array (name,
    /// length) where the registers are one: those elements are the first
    /// `registers`, in order.
    pub c_struct: &'static str,
    pub c_array: Option<(&'static str, usize)>,
    /// Size of `struct pt_regs` (its stable prefix on arm64), the kprobe context.
    pub pt_regs_size: usize,
    pub syscalls: Syscalls,
}

impl Abi {
    /// Byte offset of the register called `name` (x86-64 `"di"` -> 112).
    pub fn register(&self, name: &str) -> Option<usize> {
        self.registers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, off)| off)
    }

    /// Byte offset of member `member` (`si`, or an array element like
    /// `regs[1]`) of the registers as BPF C names them, if `strukt` is their
    /// struct (`pt_regs`, or this architecture's `c_struct`) and the member
    /// one of them.
    pub fn c_member(&self, strukt: &str, member: &str) -> Option<usize> {
        if strukt != "pt_regs" && strukt != self.c_struct {
            return None;
        }
        let element = self.c_array.and_then(|(array, len)| {
            let index = member
                .strip_prefix(array)?
                .strip_prefix('[')?
                .strip_suffix(']')?;
            Some((index.parse::<usize>().ok(), len))
        });
        match element {
            Some((Some(index), len)) if index < len => Some(self.registers[index].1),
            Some(_) => None,
            None => self.register(member),
        }
    }

    /// Register name and byte offset of 1-based integer argument `n`, if it
    /// is passed in a register.
    pub fn arg(&self, n: u8) -> Option<(&'static str, usize)> {
        let index = usize::from(n).checked_sub(1)?;
        self.args.get(index).copied()
    }
}

/// Every architecture nobtf knows, by `target_arch` name.
pub const ABIS: &[&Abi] = &[&x86_64::ABI, &aarch64::ABI, &arm::ABI];

/// Whether `strukt` is a struct BPF C reads registers through on some
/// architecture: its members are the architecture's to answer, not an
/// offsets profile's.
pub fn is_register_struct(strukt: &str) -> bool {
    strukt == "pt_regs" || ABIS.iter().any(|a| a.c_struct == strukt)
}

/// The calling convention of `arch` (a `target_arch` name), if known.
pub fn abi(arch: &str) -> Option<&'static Abi> {
    ABIS.iter().copied().find(|a| a.arch == arch)
}

#[cfg(target_arch = "aarch64")]
use aarch64 as native;
#[cfg(target_arch = "arm")]
use arm as native;
#[cfg(target_arch = "x86_64")]
use x86_64 as native;

pub use native::{ARGS, PtRegs, REGISTERS, RETURN, SIZE};

/// The architecture nobtf is built for.
pub const NATIVE: &Abi = &native::ABI;

/// Byte offset of the native register called `name` (e.g. `"di"` -> 112).
pub fn offset_of_register(name: &str) -> Option<usize> {
    NATIVE.register(name)
}

/// Native register name and byte offset of 1-based integer argument `n`.
pub fn arg(n: u8) -> Option<(&'static str, usize)> {
    NATIVE.arg(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_layout_matches_the_kernel() {
        let x86 = &x86_64::ABI;
        assert_eq!(x86.pt_regs_size, 168);
        assert_eq!(x86.register("di"), Some(112));
        assert_eq!(x86.register("ss"), Some(160));
        assert_eq!(x86.arg(2), Some(("si", 104)));
        assert_eq!(x86.syscalls.bpf, 321);
    }

    #[test]
    fn c_members_are_the_registers_as_bpf_c_names_them() {
        let (x86, a64, a32) = (&x86_64::ABI, abi("aarch64").unwrap(), abi("arm").unwrap());
        assert_eq!(x86.c_member("pt_regs", "si"), Some(104));
        assert_eq!(x86.c_member("pt_regs", "regs[1]"), None);
        assert_eq!(x86.c_member("filename", "si"), None);
        assert_eq!(a64.c_member("user_pt_regs", "regs[1]"), Some(8));
        assert_eq!(a64.c_member("user_pt_regs", "regs[30]"), Some(240));
        assert_eq!(a64.c_member("user_pt_regs", "regs[31]"), None);
        assert_eq!(a64.c_member("user_pt_regs", "sp"), Some(248));
        assert_eq!(a64.c_member("pt_regs", "regs[0]"), Some(0));
        assert_eq!(a32.c_member("pt_regs", "uregs[1]"), Some(4));
        assert_eq!(a32.c_member("pt_regs", "uregs[17]"), Some(68));
        assert_eq!(a32.c_member("pt_regs", "uregs[18]"), None);
        assert_eq!(a32.c_member("pt_regs", "uregs[x]"), None);
        for a in ABIS {
            if let Some((_, len)) = a.c_array {
                assert!(a.registers.len() >= len, "{}", a.arch);
            }
        }
        assert!(is_register_struct("user_pt_regs") && is_register_struct("pt_regs"));
        assert!(!is_register_struct("filename"));
    }

    #[test]
    fn arm64_layout_matches_the_kernel() {
        let a = abi("aarch64").unwrap();
        // user_pt_regs: regs[31], sp, pc, pstate.
        assert_eq!(a.pt_regs_size, 34 * 8);
        assert_eq!(a.arg(1), Some(("r0", 0)));
        assert_eq!(a.arg(2), Some(("r1", 8)));
        assert_eq!(a.arg(8), Some(("r7", 56)));
        assert_eq!(a.arg(9), None);
        assert_eq!(a.ret, ("r0", 0));
        assert_eq!(a.register("r30"), Some(240));
        assert_eq!(a.register("sp"), Some(248));
        assert_eq!(a.register("pstate"), Some(264));
        assert_eq!(a.pointer_bytes, 8);
        assert_eq!((a.syscalls.bpf, a.syscalls.perf_event_open), (280, 241));
    }

    #[test]
    fn arm_layout_matches_the_kernel() {
        let a = abi("arm").unwrap();
        assert_eq!(a.pt_regs_size, 18 * 4);
        assert_eq!(a.arg(1), Some(("r0", 0)));
        assert_eq!(a.arg(4), Some(("r3", 12)));
        assert_eq!(a.arg(5), None);
        assert_eq!(a.ret, ("r0", 0));
        assert_eq!(a.register("pc"), Some(60));
        assert_eq!(a.register("orig_r0"), Some(68));
        assert_eq!(a.pointer_bytes, 4);
        assert_eq!((a.syscalls.bpf, a.syscalls.perf_event_open), (386, 364));
    }

    #[test]
    fn every_row_is_consistent() {
        for a in ABIS {
            assert_eq!(abi(a.arch), Some(*a));
            for &(name, off) in a.args.iter().chain([&a.ret]) {
                assert_eq!(a.register(name), Some(off), "{} {name}", a.arch);
            }
            let last = a.registers.last().unwrap().1;
            assert_eq!(
                last + usize::from(a.pointer_bytes),
                a.pt_regs_size,
                "{}",
                a.arch
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn layout_matches_the_kernel() {
        assert_eq!(SIZE, 168);
        assert_eq!(offset_of_register("di"), Some(112));
        assert_eq!(offset_of_register("si"), Some(104));
        assert_eq!(offset_of_register("ax"), Some(80));
        assert_eq!(offset_of_register("r15"), Some(0));
        assert_eq!(offset_of_register("ss"), Some(160));
        assert_eq!(offset_of_register("eax"), None);
        assert_eq!(RETURN, ("ax", 80));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn arguments_follow_the_calling_convention() {
        assert_eq!(arg(1), Some(("di", 112)));
        assert_eq!(arg(2), Some(("si", 104)));
        assert_eq!(arg(3), Some(("dx", 96)));
        assert_eq!(arg(4), Some(("cx", 88)));
        assert_eq!(arg(5), Some(("r8", 72)));
        assert_eq!(arg(6), Some(("r9", 64)));
        assert_eq!(arg(0), None);
        assert_eq!(arg(7), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_argument_register_has_its_tracefs_name() {
        for abi in ABIS {
            assert_eq!(abi.fetch_args.len(), abi.args.len(), "{}", abi.arch);
        }
        assert_eq!(abi("aarch64").unwrap().fetch_args[1], "x1");
        assert_eq!(abi("arm").unwrap().fetch_args[1], "r1");
        assert_eq!(abi("x86_64").unwrap().fetch_args[1], "si");
    }

    #[test]
    fn abi_table_agrees_with_the_constants() {
        // The host's row, whichever architecture the tests run on.
        let host = if cfg!(target_arch = "aarch64") {
            "aarch64"
        } else if cfg!(target_arch = "arm") {
            "arm"
        } else {
            "x86_64"
        };
        let abi = abi(host).unwrap();
        assert_eq!(abi.args, &ARGS);
        assert_eq!(abi.ret, RETURN);
        assert_eq!(usize::from(abi.pointer_bytes), size_of::<usize>());
        assert_eq!(abi.pt_regs_size, SIZE);
        assert_eq!(NATIVE, abi);
        assert_eq!(super::abi("sparc"), None);
    }
}
