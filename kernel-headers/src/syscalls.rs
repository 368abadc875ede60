//! System calls as the kernel defines them: each one's arguments as its
//! `SYSCALL_DEFINEn` line names and types them (the types its
//! `syscalls:sys_enter_NAME` tracepoint shows, `__user` dropped), which
//! architectures' syscall tables hold it, and where each architecture's
//! entry function finds the arguments. For kernels built without
//! `CONFIG_FTRACE_SYSCALLS`, whose syscall tracepoints nobtf replaces by
//! kprobes on these entry functions.

use core::mem::offset_of;

use crate::pt_regs;

/// An architecture's syscall entry: the functions a syscall enters and
/// where its arguments are there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallAbi {
    /// As [`pt_regs::Abi::arch`] spells it.
    pub arch: &'static str,
    /// The entry function's prefix where the kernel wraps each syscall in a
    /// function taking only the user's `struct pt_regs *` (x86-64 since
    /// 4.17, arm64 since 4.19); `None` where it never does.
    pub wrapper_prefix: Option<&'static str>,
    /// Byte offsets in the user's `struct pt_regs` of the syscall's
    /// arguments, first argument first (what the wrappers read).
    pub user_args: [usize; 6],
    /// This architecture's bit in [`Signature::arches`].
    pub mask: u8,
}

/// Before the wrappers (and where there are none) each syscall is the C
/// function `sys_NAME`, called with the arguments as a function's.
pub const PLAIN_PREFIX: &str = "sys_";

/// Bits of [`Signature::arches`].
pub const X86_64: u8 = 1;
pub const AARCH64: u8 = 2;
pub const ARM: u8 = 4;

/// What every 64-bit table has.
const BOTH: u8 = X86_64 | AARCH64;
/// What every table has.
const ALL: u8 = BOTH | ARM;
/// The tables that keep the calls taking a path relative to the working
/// directory (arm64's, from asm-generic, has none of them).
const X86_ARM: u8 = X86_64 | ARM;

mod x86_64 {
    use super::*;
    use pt_regs::x86_64::PtRegs;

    /// The syscall convention (arch/x86/entry/entry_64.S): the fourth
    /// argument comes in r10, since `syscall` itself clobbers cx.
    pub const ABI: SyscallAbi = SyscallAbi {
        arch: "x86_64",
        wrapper_prefix: Some("__x64_sys_"),
        user_args: [
            offset_of!(PtRegs, di),
            offset_of!(PtRegs, si),
            offset_of!(PtRegs, dx),
            offset_of!(PtRegs, r10),
            offset_of!(PtRegs, r8),
            offset_of!(PtRegs, r9),
        ],
        mask: X86_64,
    };
}

mod aarch64 {
    use super::*;
    use pt_regs::aarch64::PtRegs;

    const fn x(n: usize) -> usize {
        offset_of!(PtRegs, regs) + n * 8
    }

    /// Arguments in x0..x5, as for a function.
    pub const ABI: SyscallAbi = SyscallAbi {
        arch: "aarch64",
        wrapper_prefix: Some("__arm64_sys_"),
        user_args: [x(0), x(1), x(2), x(3), x(4), x(5)],
        mask: AARCH64,
    };
}

mod arm {
    use super::*;
    use pt_regs::arm::PtRegs;

    const fn r(n: usize) -> usize {
        offset_of!(PtRegs, uregs) + n * 4
    }

    /// 32-bit ARM (EABI) has no wrappers: each syscall is a C function
    /// called with r0..r3 and the rest on the stack. `user_args` is where
    /// the user's registers hold the arguments (r0..r5), for reference.
    pub const ABI: SyscallAbi = SyscallAbi {
        arch: "arm",
        wrapper_prefix: None,
        user_args: [r(0), r(1), r(2), r(3), r(4), r(5)],
        mask: ARM,
    };
}

/// The syscall entry of `arch` (as [`pt_regs::Abi::arch`]), if nobtf has
/// its table.
pub fn abi(arch: &str) -> Option<&'static SyscallAbi> {
    [&x86_64::ABI, &aarch64::ABI, &arm::ABI]
        .into_iter()
        .find(|a| a.arch == arch)
}

/// One syscall's `SYSCALL_DEFINEn`: its name and its arguments as (C type,
/// name), in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub name: &'static str,
    pub args: &'static [(&'static str, &'static str)],
    /// The architectures whose syscall table holds it ([`X86_64`], ...):
    /// a function the kernel compiles but no table calls has no
    /// tracepoint either.
    pub arches: u8,
}

/// The syscalls `abi`'s table holds, in the order below.
pub fn signatures(abi: &SyscallAbi) -> impl Iterator<Item = &'static Signature> + '_ {
    SIGNATURES.iter().filter(|s| s.arches & abi.mask != 0)
}

/// The signature of syscall `name` on `abi`'s architecture.
pub fn signature(abi: &SyscallAbi, name: &str) -> Option<&'static Signature> {
    signatures(abi).find(|s| s.name == name)
}

const fn sig(
    name: &'static str,
    arches: u8,
    args: &'static [(&'static str, &'static str)],
) -> Signature {
    Signature { name, args, arches }
}

const PATH: &str = "const char *";
const ARGV: &str = "const char *const *";

/// From the kernel's `SYSCALL_DEFINEn` lines (fs/, kernel/, mm/, net/,
/// arch/x86/kernel/sys_x86_64.c, arch/arm64/kernel/sys.c) and the
/// architectures' syscall tables (arch/x86/entry/syscalls/syscall_64.tbl;
/// arm64 takes include/uapi/asm-generic/unistd.h, which has none of the
/// calls that only take a path relative to the working directory;
/// arch/arm/tools/syscall.tbl, EABI). 32-bit ARM calls other functions
/// for some: `mmap2`, `fstatat64`, `sync_file_range2`,
/// `nanosleep_time32`, so those are not in its table; nor are `pread64`
/// and `pwrite64`, whose 64-bit position a function call passes in an
/// aligned register pair that the kprobe's registers do not line up with.
const SIGNATURES: &[Signature] = &[
    // Programs.
    sig(
        "execve",
        ALL,
        &[(PATH, "filename"), (ARGV, "argv"), (ARGV, "envp")],
    ),
    sig(
        "execveat",
        ALL,
        &[
            ("int", "fd"),
            (PATH, "filename"),
            (ARGV, "argv"),
            (ARGV, "envp"),
            ("int", "flags"),
        ],
    ),
    sig("fork", X86_ARM, &[]),
    sig("vfork", X86_ARM, &[]),
    // CONFIG_CLONE_BACKWARDS (arm64, arm) swaps the last two.
    sig(
        "clone",
        X86_64,
        &[
            ("unsigned long", "clone_flags"),
            ("unsigned long", "newsp"),
            ("int *", "parent_tidptr"),
            ("int *", "child_tidptr"),
            ("unsigned long", "tls"),
        ],
    ),
    sig(
        "clone",
        AARCH64 | ARM,
        &[
            ("unsigned long", "clone_flags"),
            ("unsigned long", "newsp"),
            ("int *", "parent_tidptr"),
            ("unsigned long", "tls"),
            ("int *", "child_tidptr"),
        ],
    ),
    sig("exit", ALL, &[("int", "error_code")]),
    sig("exit_group", ALL, &[("int", "error_code")]),
    sig(
        "wait4",
        ALL,
        &[
            ("pid_t", "upid"),
            ("int *", "stat_addr"),
            ("int", "options"),
            ("struct rusage *", "ru"),
        ],
    ),
    sig("getpid", ALL, &[]),
    sig(
        "ptrace",
        ALL,
        &[
            ("long", "request"),
            ("long", "pid"),
            ("unsigned long", "addr"),
            ("unsigned long", "data"),
        ],
    ),
    // Opening and closing.
    sig(
        "open",
        X86_ARM,
        &[(PATH, "filename"), ("int", "flags"), ("umode_t", "mode")],
    ),
    sig(
        "openat",
        ALL,
        &[
            ("int", "dfd"),
            (PATH, "filename"),
            ("int", "flags"),
            ("umode_t", "mode"),
        ],
    ),
    sig(
        "openat2",
        ALL,
        &[
            ("int", "dfd"),
            (PATH, "filename"),
            ("struct open_how *", "how"),
            ("size_t", "usize"),
        ],
    ),
    sig("creat", X86_ARM, &[(PATH, "pathname"), ("umode_t", "mode")]),
    sig("close", ALL, &[("unsigned int", "fd")]),
    sig("dup", ALL, &[("unsigned int", "fildes")]),
    sig(
        "dup2",
        X86_ARM,
        &[("unsigned int", "oldfd"), ("unsigned int", "newfd")],
    ),
    sig(
        "dup3",
        ALL,
        &[
            ("unsigned int", "oldfd"),
            ("unsigned int", "newfd"),
            ("int", "flags"),
        ],
    ),
    sig("pipe", X86_ARM, &[("int *", "fildes")]),
    sig("pipe2", ALL, &[("int *", "fildes"), ("int", "flags")]),
    // Reading and writing.
    sig(
        "read",
        ALL,
        &[
            ("unsigned int", "fd"),
            ("char *", "buf"),
            ("size_t", "count"),
        ],
    ),
    sig(
        "write",
        ALL,
        &[
            ("unsigned int", "fd"),
            ("const char *", "buf"),
            ("size_t", "count"),
        ],
    ),
    sig(
        "pread64",
        BOTH,
        &[
            ("unsigned int", "fd"),
            ("char *", "buf"),
            ("size_t", "count"),
            ("loff_t", "pos"),
        ],
    ),
    sig(
        "pwrite64",
        BOTH,
        &[
            ("unsigned int", "fd"),
            ("const char *", "buf"),
            ("size_t", "count"),
            ("loff_t", "pos"),
        ],
    ),
    sig(
        "ioctl",
        ALL,
        &[
            ("unsigned int", "fd"),
            ("unsigned int", "cmd"),
            ("unsigned long", "arg"),
        ],
    ),
    // Syncing.
    sig("sync", ALL, &[]),
    sig("syncfs", ALL, &[("int", "fd")]),
    sig("fsync", ALL, &[("unsigned int", "fd")]),
    sig("fdatasync", ALL, &[("unsigned int", "fd")]),
    sig(
        "msync",
        ALL,
        &[
            ("unsigned long", "start"),
            ("size_t", "len"),
            ("int", "flags"),
        ],
    ),
    sig(
        "sync_file_range",
        BOTH,
        &[
            ("int", "fd"),
            ("loff_t", "offset"),
            ("loff_t", "nbytes"),
            ("unsigned int", "flags"),
        ],
    ),
    // Stat.
    sig(
        "newstat",
        X86_ARM,
        &[(PATH, "filename"), ("struct stat *", "statbuf")],
    ),
    sig(
        "newlstat",
        X86_ARM,
        &[(PATH, "filename"), ("struct stat *", "statbuf")],
    ),
    sig(
        "newfstat",
        ALL,
        &[("unsigned int", "fd"), ("struct stat *", "statbuf")],
    ),
    sig(
        "newfstatat",
        BOTH,
        &[
            ("int", "dfd"),
            (PATH, "filename"),
            ("struct stat *", "statbuf"),
            ("int", "flag"),
        ],
    ),
    sig(
        "statx",
        ALL,
        &[
            ("int", "dfd"),
            (PATH, "filename"),
            ("unsigned", "flags"),
            ("unsigned int", "mask"),
            ("struct statx *", "buffer"),
        ],
    ),
    sig(
        "statfs",
        ALL,
        &[(PATH, "pathname"), ("struct statfs *", "buf")],
    ),
    sig(
        "fstatfs",
        ALL,
        &[("unsigned int", "fd"), ("struct statfs *", "buf")],
    ),
    sig("access", X86_ARM, &[(PATH, "filename"), ("int", "mode")]),
    sig(
        "faccessat",
        ALL,
        &[("int", "dfd"), (PATH, "filename"), ("int", "mode")],
    ),
    sig(
        "readlink",
        X86_ARM,
        &[(PATH, "path"), ("char *", "buf"), ("int", "bufsiz")],
    ),
    sig(
        "readlinkat",
        ALL,
        &[
            ("int", "dfd"),
            (PATH, "pathname"),
            ("char *", "buf"),
            ("int", "bufsiz"),
        ],
    ),
    // Names in the file system.
    sig("unlink", X86_ARM, &[(PATH, "pathname")]),
    sig(
        "unlinkat",
        ALL,
        &[("int", "dfd"), (PATH, "pathname"), ("int", "flag")],
    ),
    sig("mkdir", X86_ARM, &[(PATH, "pathname"), ("umode_t", "mode")]),
    sig(
        "mkdirat",
        ALL,
        &[("int", "dfd"), (PATH, "pathname"), ("umode_t", "mode")],
    ),
    sig("rmdir", X86_ARM, &[(PATH, "pathname")]),
    sig("chdir", ALL, &[(PATH, "filename")]),
    sig("rename", X86_ARM, &[(PATH, "oldname"), (PATH, "newname")]),
    sig(
        "renameat",
        ALL,
        &[
            ("int", "olddfd"),
            (PATH, "oldname"),
            ("int", "newdfd"),
            (PATH, "newname"),
        ],
    ),
    sig(
        "renameat2",
        ALL,
        &[
            ("int", "olddfd"),
            (PATH, "oldname"),
            ("int", "newdfd"),
            (PATH, "newname"),
            ("unsigned int", "flags"),
        ],
    ),
    sig("chmod", X86_ARM, &[(PATH, "filename"), ("umode_t", "mode")]),
    sig(
        "fchmodat",
        ALL,
        &[("int", "dfd"), (PATH, "filename"), ("umode_t", "mode")],
    ),
    sig(
        "chown",
        X86_ARM,
        &[(PATH, "filename"), ("uid_t", "user"), ("gid_t", "group")],
    ),
    sig(
        "fchownat",
        ALL,
        &[
            ("int", "dfd"),
            (PATH, "filename"),
            ("uid_t", "user"),
            ("gid_t", "group"),
            ("int", "flag"),
        ],
    ),
    sig("truncate", ALL, &[(PATH, "path"), ("long", "length")]),
    sig(
        "ftruncate",
        ALL,
        &[("unsigned int", "fd"), ("off_t", "length")],
    ),
    // Signals and sleep.
    sig("kill", ALL, &[("pid_t", "pid"), ("int", "sig")]),
    sig("tkill", ALL, &[("pid_t", "pid"), ("int", "sig")]),
    sig(
        "tgkill",
        ALL,
        &[("pid_t", "tgid"), ("pid_t", "pid"), ("int", "sig")],
    ),
    sig(
        "nanosleep",
        BOTH,
        &[
            ("struct __kernel_timespec *", "rqtp"),
            ("struct __kernel_timespec *", "rmtp"),
        ],
    ),
    // Credentials.
    sig("setuid", ALL, &[("uid_t", "uid")]),
    sig("setgid", ALL, &[("gid_t", "gid")]),
    sig("setreuid", ALL, &[("uid_t", "ruid"), ("uid_t", "euid")]),
    sig("setregid", ALL, &[("gid_t", "rgid"), ("gid_t", "egid")]),
    sig(
        "setresuid",
        ALL,
        &[("uid_t", "ruid"), ("uid_t", "euid"), ("uid_t", "suid")],
    ),
    sig(
        "setresgid",
        ALL,
        &[("gid_t", "rgid"), ("gid_t", "egid"), ("gid_t", "sgid")],
    ),
    sig("setfsuid", ALL, &[("uid_t", "uid")]),
    sig("setfsgid", ALL, &[("gid_t", "gid")]),
    // Memory.
    sig(
        "mmap",
        BOTH,
        &[
            ("unsigned long", "addr"),
            ("unsigned long", "len"),
            ("unsigned long", "prot"),
            ("unsigned long", "flags"),
            ("unsigned long", "fd"),
            ("unsigned long", "off"),
        ],
    ),
    sig(
        "mprotect",
        ALL,
        &[
            ("unsigned long", "start"),
            ("size_t", "len"),
            ("unsigned long", "prot"),
        ],
    ),
    sig(
        "munmap",
        ALL,
        &[("unsigned long", "addr"), ("size_t", "len")],
    ),
    sig("brk", ALL, &[("unsigned long", "brk")]),
    // Sockets.
    sig(
        "socket",
        ALL,
        &[("int", "family"), ("int", "type"), ("int", "protocol")],
    ),
    sig(
        "connect",
        ALL,
        &[
            ("int", "fd"),
            ("struct sockaddr *", "uservaddr"),
            ("int", "addrlen"),
        ],
    ),
    sig(
        "bind",
        ALL,
        &[
            ("int", "fd"),
            ("struct sockaddr *", "umyaddr"),
            ("int", "addrlen"),
        ],
    ),
    sig("listen", ALL, &[("int", "fd"), ("int", "backlog")]),
    sig(
        "accept",
        ALL,
        &[
            ("int", "fd"),
            ("struct sockaddr *", "upeer_sockaddr"),
            ("int *", "upeer_addrlen"),
        ],
    ),
    sig(
        "accept4",
        ALL,
        &[
            ("int", "fd"),
            ("struct sockaddr *", "upeer_sockaddr"),
            ("int *", "upeer_addrlen"),
            ("int", "flags"),
        ],
    ),
    sig(
        "sendto",
        ALL,
        &[
            ("int", "fd"),
            ("void *", "buff"),
            ("size_t", "len"),
            ("unsigned int", "flags"),
            ("struct sockaddr *", "addr"),
            ("int", "addr_len"),
        ],
    ),
    sig(
        "recvfrom",
        ALL,
        &[
            ("int", "fd"),
            ("void *", "ubuf"),
            ("size_t", "size"),
            ("unsigned int", "flags"),
            ("struct sockaddr *", "addr"),
            ("int *", "addr_len"),
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fourth_argument_is_r10_on_x86_64() {
        let x86 = abi("x86_64").unwrap();
        assert_eq!(
            x86.user_args[3],
            pt_regs::x86_64::ABI.register("r10").unwrap()
        );
        assert_eq!(
            x86.user_args[0],
            pt_regs::x86_64::ABI.register("di").unwrap()
        );
        let arm64 = abi("aarch64").unwrap();
        assert_eq!(
            arm64.user_args[5],
            pt_regs::aarch64::ABI.register("r5").unwrap()
        );
        let arm = abi("arm").unwrap();
        assert_eq!(arm.wrapper_prefix, None);
        assert_eq!(arm.user_args[4], pt_regs::arm::ABI.register("r4").unwrap());
        assert!(abi("riscv64").is_none());
    }

    #[test]
    fn each_architecture_has_its_own_table() {
        let x86 = abi("x86_64").unwrap();
        let arm64 = abi("aarch64").unwrap();
        assert!(signature(x86, "open").is_some());
        assert!(signature(arm64, "open").is_none());
        let clone_arg = |a, i: usize| signature(a, "clone").unwrap().args[i].1;
        assert_eq!(clone_arg(x86, 4), "tls");
        assert_eq!(clone_arg(arm64, 3), "tls");
        // 32-bit ARM keeps the path-only calls, but calls other functions
        // for mmap, fstatat and nanosleep, and pairs 64-bit arguments.
        let arm = abi("arm").unwrap();
        for (name, present) in [
            ("open", true),
            ("unlink", true),
            ("openat", true),
            ("newstat", true),
            ("statx", true),
            ("sync", true),
            ("kill", true),
            ("mmap", false),
            ("newfstatat", false),
            ("nanosleep", false),
            ("pread64", false),
            ("sync_file_range", false),
        ] {
            assert_eq!(signature(arm, name).is_some(), present, "{name}");
        }
        assert_eq!(clone_arg(arm, 3), "tls");
        // At most one entry per name and architecture, and six arguments.
        for a in [x86, arm64, arm] {
            for s in signatures(a) {
                assert_eq!(signatures(a).filter(|o| o.name == s.name).count(), 1);
                assert!(s.args.len() <= 6, "{}", s.name);
            }
        }
    }
}
