//! Facts about and limits of this process: uname, RLIMIT_MEMLOCK, euid.

use super::{SysError, SysResult};

/// `uname(2)`: (release, version).
pub fn uname() -> SysResult<(String, String)> {
    // SAFETY: utsname is plain bytes; zeroed is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } < 0 {
        return Err(SysError::last("uname"));
    }
    let text = |field: &[libc::c_char]| {
        let bytes: Vec<u8> = field
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok((text(&uts.release), text(&uts.version)))
}

/// Sets RLIMIT_MEMLOCK to unlimited: kernels before 5.11 charge maps and
/// programs to it and fail with EPERM beyond it.
pub fn raise_memlock_limit() -> SysResult<()> {
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `limit` is a valid rlimit read by the kernel.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } < 0 {
        return Err(SysError::last("setrlimit(RLIMIT_MEMLOCK)"));
    }
    Ok(())
}

pub fn geteuid() -> u32 {
    // SAFETY: no memory effects.
    unsafe { libc::geteuid() }
}
