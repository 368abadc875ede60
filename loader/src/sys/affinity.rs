//! CPU affinity of the calling thread, and waiting for every CPU.

use std::mem::size_of;

use super::{SysError, SysResult};

/// The set of CPUs this thread may run on.
#[derive(Clone, Copy)]
pub struct CpuSet(libc::cpu_set_t);

impl CpuSet {
    /// The set holding only `cpu`.
    pub fn only(cpu: u32) -> CpuSet {
        // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: CPU_SET ignores a cpu beyond the set's size.
        unsafe { libc::CPU_SET(cpu as usize, &mut set) };
        CpuSet(set)
    }
}

/// `sched_getaffinity(0)`.
pub fn affinity() -> SysResult<CpuSet> {
    // SAFETY: cpu_set_t is plain data.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: writes at most size_of::<cpu_set_t>() bytes into `set`.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } < 0 {
        return Err(SysError::last("sched_getaffinity"));
    }
    Ok(CpuSet(set))
}

/// `sched_setaffinity(0, set)`: the calling thread runs only there from now.
pub fn set_affinity(set: &CpuSet) -> SysResult<()> {
    // SAFETY: reads size_of::<cpu_set_t>() bytes from a valid set.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set.0) } < 0 {
        return Err(SysError::last("sched_setaffinity"));
    }
    Ok(())
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL)`: every CPU has left the
/// preemption-disabled code it ran before the call (BPF programs run so).
/// Fails without `CONFIG_MEMBARRIER` or with `nohz_full`.
pub fn membarrier_global() -> SysResult<()> {
    // SAFETY: takes no pointers; cmd and flags are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            kernel_headers::sched::MEMBARRIER_CMD_GLOBAL,
            0,
        )
    };
    if ret < 0 {
        return Err(SysError::last("membarrier"));
    }
    Ok(())
}
