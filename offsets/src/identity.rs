//! What a profile records of the build it describes besides the release:
//! its `uname -v` (from the banner a vmlinux carries, or the tree's
//! generated `compile.h`/`utsversion.h`) and a digest of the `.config`
//! options that change struct layouts. The loader compares the first with
//! the running kernel; the digest tells two configs of one release apart.

use sha2::{Digest, Sha256};

/// The `uname -v` in a `Linux version R (who@host) (compiler) #1 SMP ...`
/// banner (`linux_banner`): what follows the compiler's parenthesis.
pub fn banner_version(hay: &[u8]) -> Option<String> {
    banners(hay).find_map(|rest| {
        let end = rest
            .iter()
            .position(|&b| b == 0 || b == b'\n')
            .unwrap_or(rest.len());
        let line = String::from_utf8_lossy(&rest[..end]);
        let at = line.find(") #")?;
        line.starts_with(|c: char| c.is_ascii_digit())
            .then(|| line[at + 2..].trim_end().to_string())
    })
}

/// What follows each `Linux version ` in `hay`, up to its end.
pub fn banners(hay: &[u8]) -> impl Iterator<Item = &[u8]> {
    const NEEDLE: &[u8] = b"Linux version ";
    let mut from = 0;
    std::iter::from_fn(move || {
        let pos = hay
            .get(from..)?
            .windows(NEEDLE.len())
            .position(|w| w == NEEDLE)?;
        from += pos + NEEDLE.len();
        Some(&hay[from..])
    })
}

/// `UTS_VERSION` in a generated header (`include/generated/compile.h`
/// before 5.19, `utsversion.h` after): `#define UTS_VERSION "#1 SMP ..."`.
pub fn header_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("#define")?.trim_start();
        let value = rest.strip_prefix("UTS_VERSION")?.trim();
        Some(value.strip_prefix('"')?.strip_suffix('"')?.to_string())
    })
}

/// Options that add, remove or resize members of the structs programs
/// read (task_struct, mm_struct, file, inode, dentry, cred, sock): locking
/// debug fields, scheduler and accounting blocks, security and audit
/// pointers, per-arch sizes. Not every such option, but the common ones a
/// vendor's config differs in.
const LAYOUT_OPTIONS: &[&str] = &[
    "64BIT",
    "SMP",
    "NR_CPUS",
    "NUMA",
    "NUMA_BALANCING",
    "PREEMPT",
    "PREEMPT_RT",
    "PREEMPT_COUNT",
    "PREEMPT_NOTIFIERS",
    "THREAD_INFO_IN_TASK",
    "DEBUG_LOCK_ALLOC",
    "LOCKDEP",
    "PROVE_LOCKING",
    "DEBUG_SPINLOCK",
    "DEBUG_MUTEXES",
    "DEBUG_RT_MUTEXES",
    "DEBUG_ATOMIC_SLEEP",
    "DEBUG_PREEMPT",
    "LOCK_STAT",
    "KASAN",
    "KCSAN",
    "KMSAN",
    "KCOV",
    "UBSAN",
    "STACKPROTECTOR",
    "VMAP_STACK",
    "SCHED_INFO",
    "SCHEDSTATS",
    "SCHED_CORE",
    "FAIR_GROUP_SCHED",
    "RT_GROUP_SCHED",
    "CGROUP_SCHED",
    "UCLAMP_TASK",
    "CGROUPS",
    "MEMCG",
    "BLK_CGROUP",
    "CPUSETS",
    "TASK_DELAY_ACCT",
    "TASK_XACCT",
    "TASK_IO_ACCOUNTING",
    "VIRT_CPU_ACCOUNTING_GEN",
    "POSIX_CPUTIMERS_TASK_WORK",
    "POSIX_TIMERS",
    "AUDIT",
    "AUDITSYSCALL",
    "SECURITY",
    "SECCOMP",
    "KEYS",
    "SYSVIPC",
    "RSEQ",
    "PERF_EVENTS",
    "FUNCTION_GRAPH_TRACER",
    "TRACING",
    "UPROBES",
    "BPF_SYSCALL",
    "COMPAT_BRK",
    "MMU",
    "MEMORY_FAILURE",
    "USERFAULTFD",
    "TRANSPARENT_HUGEPAGE",
    "MMU_NOTIFIER",
    "AIO",
    "FSNOTIFY",
    "FS_POSIX_ACL",
    "IMA",
    "QUOTA",
    "FS_ENCRYPTION",
    "FS_VERITY",
    "EPOLL",
    "NET_NS",
    "IPV6",
    "XFRM",
    "CGROUP_NET_PRIO",
    "CGROUP_NET_CLASSID",
    "SOCK_RX_QUEUE_MAPPING",
    "RPS",
    "XPS",
    "NET_RX_BUSY_POLL",
    "GCC_PLUGIN_RANDSTRUCT",
    "RANDSTRUCT_FULL",
    "RANDSTRUCT_PERFORMANCE",
];

/// sha256 (first 8 bytes, hex) of the layout options' settings in a
/// `.config`, each `CONFIG_X=value` or `CONFIG_X=n`, in the order above.
pub fn layout_digest(config: &[u8]) -> String {
    let text = String::from_utf8_lossy(config);
    let mut hasher = Sha256::new();
    for option in LAYOUT_OPTIONS {
        let key = format!("CONFIG_{option}=");
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or("n");
        hasher.update(format!("{key}{value}\n"));
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_string_of_a_banner() {
        let hay = b"xxLinux version %s\0Linux version 5.10.223 (me@x) (gcc (Debian 10.2.1-6) 10.2.1, GNU ld (GNU Binutils for Debian) 2.35.2) #1 SMP Debian 5.10.223-1 (2024-08-10)\n\0";
        assert_eq!(
            banner_version(hay).as_deref(),
            Some("#1 SMP Debian 5.10.223-1 (2024-08-10)")
        );
        assert_eq!(banner_version(b"Linux version 5.10 (no build)"), None);
        assert_eq!(banner_version(b""), None);
    }

    #[test]
    fn the_build_string_of_a_header() {
        let h = "/* x */\n#define UTS_MACHINE \"x86_64\"\n#define UTS_VERSION \"#3 SMP PREEMPT Tue Jan 1\"\n";
        assert_eq!(
            header_version(h).as_deref(),
            Some("#3 SMP PREEMPT Tue Jan 1")
        );
        assert_eq!(header_version("#define UTS_RELEASE \"5.10\"\n"), None);
    }

    #[test]
    fn only_layout_options_move_the_digest() {
        let base =
            b"CONFIG_SMP=y\nCONFIG_NR_CPUS=64\n# CONFIG_SCHEDSTATS is not set\nCONFIG_USB=y\n";
        let driver =
            b"CONFIG_SMP=y\nCONFIG_NR_CPUS=64\n# CONFIG_SCHEDSTATS is not set\nCONFIG_USB=m\n";
        let layout = b"CONFIG_SMP=y\nCONFIG_NR_CPUS=64\nCONFIG_SCHEDSTATS=y\nCONFIG_USB=y\n";
        assert_eq!(layout_digest(base), layout_digest(driver));
        assert_ne!(layout_digest(base), layout_digest(layout));
        assert_eq!(layout_digest(base).len(), 16);
    }
}
