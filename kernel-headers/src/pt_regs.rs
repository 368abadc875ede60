//! `struct pt_regs`: the registers a kprobe program receives as its context.
//!
//! Per-architecture facts live in one submodule each; the one matching the
//! build target is re-exported, so a second architecture is an addition here
//! and nowhere else.

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
        args: &ARGS,
        ret: RETURN,
        pointer_bytes: 8,
        pt_regs_size: SIZE,
    };
}

/// What code generation needs of an architecture's calling convention, so
/// that a generator reads registers through this table and a new
/// architecture is one more row (see [`abi`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abi {
    /// As Rust's `target_arch` spells it.
    pub arch: &'static str,
    /// Integer argument registers (name, pt_regs offset), argument 1 first.
    pub args: &'static [(&'static str, usize)],
    /// The return-value register as a kretprobe sees it.
    pub ret: (&'static str, usize),
    /// Width of a kernel pointer and of `long`.
    pub pointer_bytes: u8,
    /// Size of `struct pt_regs`, the kprobe context.
    pub pt_regs_size: usize,
}

/// Every architecture nobtf knows, by `target_arch` name.
pub const ABIS: &[&Abi] = &[&x86_64::ABI];

/// The calling convention of `arch` (a `target_arch` name), if known.
pub fn abi(arch: &str) -> Option<&'static Abi> {
    ABIS.iter().copied().find(|a| a.arch == arch)
}

#[cfg(target_arch = "x86_64")]
pub use x86_64::{ARGS, PtRegs, REGISTERS, RETURN, SIZE};

/// The calling convention of the architecture nobtf is built for.
#[cfg(target_arch = "x86_64")]
pub const NATIVE: &Abi = &x86_64::ABI;

/// Byte offset of the register called `name` (e.g. `"di"` -> 112).
pub fn offset_of_register(name: &str) -> Option<usize> {
    REGISTERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, off)| off)
}

/// Register name and byte offset of 1-based integer argument `n`, if it is
/// passed in a register.
pub fn arg(n: u8) -> Option<(&'static str, usize)> {
    let index = usize::from(n).checked_sub(1)?;
    ARGS.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn abi_table_agrees_with_the_constants() {
        let abi = abi("x86_64").unwrap();
        assert_eq!(abi.args, &ARGS);
        assert_eq!(abi.ret, RETURN);
        assert_eq!(abi.pointer_bytes, 8);
        assert_eq!(NATIVE, abi);
        assert_eq!(super::abi("sparc"), None);
    }
}
