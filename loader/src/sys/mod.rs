//! Every system call nobtf makes that std does not wrap, by subsystem:
//! [`bpf`] (maps, programs), [`perf`] (`perf_event_open` and its ioctls),
//! [`ring`] (the mmap'ed perf rings and BPF ring buffer), [`process`] (uname, rlimits, euid),
//! [`mount`], [`signals`], [`poll`], [`clock`] and [`affinity`].
//!
//! These are the only modules with `unsafe`. Attribute structs arrive here
//! fully built by `attrs` (tested without a kernel); these modules only fill
//! in the pointers to buffers they borrow for the duration of the call, make
//! the call, and wrap any fd in `OwnedFd` at once. Every error names the call.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

mod affinity;
mod bpf;
mod clock;
mod mount;
mod perf;
mod poll;
mod process;
mod ring;
mod signals;

pub use affinity::{CpuSet, affinity, membarrier_global, set_affinity};
pub use bpf::{
    MapFd, link_create_kprobe_multi, link_create_kprobe_multi_at, lookup_len, map_create, prog_load,
};
pub use clock::monotonic_ns;
pub use mount::mount_pseudo;
pub use perf::{perf_disable, perf_enable, perf_event_open, perf_set_bpf};
pub use poll::PollSet;
pub use process::{geteuid, raise_memlock_limit, uname};
pub use ring::{BpfRing, Drained, PerfRing, page_size};
pub use signals::{SignalFd, hold_termination_signals};

/// A failed system call, named, with the errno the kernel returned.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {err}")]
pub struct SysError {
    pub call: &'static str,
    pub err: io::Error,
}

impl SysError {
    fn last(call: &'static str) -> SysError {
        SysError {
            call,
            err: io::Error::last_os_error(),
        }
    }

    pub fn errno(&self) -> Option<i32> {
        self.err.raw_os_error()
    }
}

pub type SysResult<T> = Result<T, SysError>;

/// A syscall's return value as i64 on every architecture.
#[allow(
    clippy::useless_conversion,
    reason = "c_long is 32 bits on 32-bit ARM, 64 elsewhere"
)]
fn long(ret: libc::c_long) -> i64 {
    i64::from(ret)
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

#[cfg(test)]
mod tests {
    use kernel_headers::pt_regs;

    #[test]
    fn syscall_numbers_agree_with_libc() {
        let calls = pt_regs::NATIVE.syscalls;
        assert_eq!(libc::c_long::from(calls.bpf), libc::SYS_bpf);
        assert_eq!(
            libc::c_long::from(calls.perf_event_open),
            libc::SYS_perf_event_open
        );
    }
}
