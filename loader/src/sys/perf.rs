//! `perf_event_open(2)` and the perf ioctls that enable, disable and attach
//! a BPF program.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use kernel_headers::perf::{self, PerfEventAttr};
use kernel_headers::pt_regs;

use super::{SysError, SysResult, long, owned};

/// `perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)`. `kprobe_func`,
/// when given, is passed as `config1` (the kprobe PMU's function name, the
/// uprobe PMU's path).
pub fn perf_event_open(
    attr: &PerfEventAttr,
    kprobe_func: Option<&CStr>,
    pid: i32,
    cpu: i32,
) -> SysResult<OwnedFd> {
    let mut attr = *attr;
    if let Some(func) = kprobe_func {
        attr.config1 = func.as_ptr() as u64;
    }
    // SAFETY: `attr` is a fully initialized perf_event_attr of `attr.size`
    // bytes, and `config1`, if a pointer, points to a NUL-terminated string
    // that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::c_long::from(pt_regs::NATIVE.syscalls.perf_event_open),
            &raw const attr,
            pid as libc::c_long,
            cpu as libc::c_long,
            -1 as libc::c_long,
            perf::PERF_FLAG_FD_CLOEXEC as libc::c_long,
        )
    };
    if ret < 0 {
        return Err(SysError::last("perf_event_open"));
    }
    Ok(owned(long(ret)))
}

fn perf_ioctl(
    fd: BorrowedFd<'_>,
    request: u64,
    arg: libc::c_int,
    call: &'static str,
) -> SysResult<()> {
    // SAFETY: the perf ioctls used here take an int by value (or nothing); no
    // memory is passed to the kernel.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    if ret < 0 {
        Err(SysError::last(call))
    } else {
        Ok(())
    }
}

pub fn perf_enable(fd: BorrowedFd<'_>) -> SysResult<()> {
    perf_ioctl(
        fd,
        perf::PERF_EVENT_IOC_ENABLE,
        0,
        "ioctl(PERF_EVENT_IOC_ENABLE)",
    )
}

pub fn perf_disable(fd: BorrowedFd<'_>) -> SysResult<()> {
    perf_ioctl(
        fd,
        perf::PERF_EVENT_IOC_DISABLE,
        0,
        "ioctl(PERF_EVENT_IOC_DISABLE)",
    )
}

pub fn perf_set_bpf(fd: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> SysResult<()> {
    perf_ioctl(
        fd,
        perf::PERF_EVENT_IOC_SET_BPF,
        prog.as_raw_fd(),
        "ioctl(PERF_EVENT_IOC_SET_BPF)",
    )
}
