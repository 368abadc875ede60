//! `mount(2)` of tracefs/debugfs.

use std::ffi::CStr;

use super::{SysError, SysResult};

/// `mount(fstype, target, fstype)`, as used for tracefs/debugfs.
pub fn mount_pseudo(fstype: &CStr, target: &CStr) -> SysResult<()> {
    // SAFETY: all pointers are NUL-terminated strings that outlive the call.
    let ret = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret < 0 {
        Err(SysError::last("mount"))
    } else {
        Ok(())
    }
}
