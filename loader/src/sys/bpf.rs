//! `bpf(2)`: map create/lookup/update/delete/iterate and program load.

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use kernel_headers::bpf::RawInsn;
use kernel_headers::bpf_attr::{
    self, KprobeMultiLinkAttr, MapCreateAttr, MapElemAttr, ProgLoadAttr,
};
use kernel_headers::pt_regs;

use super::{SysError, SysResult, long, owned};

/// # Safety
/// Every pointer inside `attr` must refer to live memory of the size the attr
/// claims, writable where the kernel writes (values, log buffers).
unsafe fn bpf<T>(cmd: u32, attr: &mut T, call: &'static str) -> SysResult<i64> {
    // SAFETY: `attr` is an initialized #[repr(C)] bpf_attr member of
    // size_of::<T>() bytes; the pointers in it are the caller's promise.
    let ret = unsafe {
        libc::syscall(
            libc::c_long::from(pt_regs::NATIVE.syscalls.bpf),
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(SysError::last(call))
    } else {
        Ok(long(ret))
    }
}

/// The result of a call on one key: `Ok(false)` when the kernel says the
/// key is absent (ENOENT).
fn key_present(result: SysResult<i64>) -> SysResult<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A BPF map fd with the key and value sizes it was created with, so no
/// call can make the kernel read or write past the buffers passed.
#[derive(Debug)]
pub struct MapFd {
    fd: OwnedFd,
    key_size: u32,
    value_size: u32,
    /// Values one lookup returns: one per possible CPU for a per-CPU map.
    slots: u32,
}

/// Bytes a lookup of a map with these sizes writes: a per-CPU map gives
/// each CPU's value, each rounded up to 8 bytes.
pub fn lookup_len(value_size: u32, slots: u32) -> usize {
    if slots > 1 {
        (value_size as usize).next_multiple_of(8) * slots as usize
    } else {
        value_size as usize
    }
}

fn wrong_size(call: &'static str, what: &str, got: usize, want: usize) -> SysError {
    SysError {
        call,
        err: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} of {got} bytes for a map of {want}"),
        ),
    }
}

impl MapFd {
    /// Another fd of the same map (`dup`), for a reader that outlives the
    /// borrow of its owner.
    pub fn try_clone(&self) -> io::Result<MapFd> {
        Ok(MapFd {
            fd: self.fd.try_clone()?,
            key_size: self.key_size,
            value_size: self.value_size,
            slots: self.slots,
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A second fd of the map (for a ring buffer's reader, which maps it).
    pub fn try_clone_fd(&self) -> SysResult<OwnedFd> {
        self.fd.try_clone().map_err(|err| SysError {
            call: "fcntl(F_DUPFD_CLOEXEC)",
            err,
        })
    }

    pub fn key_size(&self) -> u32 {
        self.key_size
    }

    /// Bytes `lookup` needs for a value (every CPU's, for a per-CPU map).
    pub fn lookup_len(&self) -> usize {
        lookup_len(self.value_size, self.slots)
    }

    fn check_key(&self, call: &'static str, key: &[u8]) -> SysResult<()> {
        if key.len() != self.key_size as usize {
            return Err(wrong_size(call, "key", key.len(), self.key_size as usize));
        }
        Ok(())
    }

    fn check_value(&self, call: &'static str, value: &[u8]) -> SysResult<()> {
        if value.len() != self.lookup_len() {
            return Err(wrong_size(call, "value", value.len(), self.lookup_len()));
        }
        Ok(())
    }

    /// BPF_MAP_UPDATE_ELEM.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> SysResult<()> {
        const CALL: &str = "bpf(BPF_MAP_UPDATE_ELEM)";
        self.check_key(CALL, key)?;
        self.check_value(CALL, value)?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags,
            ..MapElemAttr::default()
        };
        // SAFETY: key and value are live slices of exactly the sizes the
        // kernel reads for this map.
        unsafe { bpf(bpf_attr::cmd::BPF_MAP_UPDATE_ELEM, &mut attr, CALL) }.map(drop)
    }

    /// BPF_MAP_FREEZE (5.2+): user space can no longer change the map
    /// (global `.rodata` once its value is written).
    pub fn freeze(&self) -> SysResult<()> {
        const CALL: &str = "bpf(BPF_MAP_FREEZE)";
        // The command reads `map_fd` only; every later byte stays zero.
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            ..MapElemAttr::default()
        };
        // SAFETY: the attr holds no pointers; the kernel reads `map_fd` only.
        unsafe { bpf(bpf_attr::cmd::BPF_MAP_FREEZE, &mut attr, CALL) }.map(drop)
    }

    /// BPF_MAP_LOOKUP_ELEM into `value` (`lookup_len` bytes); `Ok(false)`
    /// when the key is absent.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> SysResult<bool> {
        const CALL: &str = "bpf(BPF_MAP_LOOKUP_ELEM)";
        self.check_key(CALL, key)?;
        self.check_value(CALL, value)?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: key is the map's key size; value is a writable buffer of
        // exactly what the kernel writes for this map (all CPUs' values).
        key_present(unsafe { bpf(bpf_attr::cmd::BPF_MAP_LOOKUP_ELEM, &mut attr, CALL) })
    }

    /// BPF_MAP_DELETE_ELEM; `Ok(false)` when the key was absent.
    pub fn delete(&self, key: &[u8]) -> SysResult<bool> {
        const CALL: &str = "bpf(BPF_MAP_DELETE_ELEM)";
        self.check_key(CALL, key)?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: key is a live slice of the map's key size; nothing is written.
        key_present(unsafe { bpf(bpf_attr::cmd::BPF_MAP_DELETE_ELEM, &mut attr, CALL) })
    }

    /// BPF_MAP_GET_NEXT_KEY: the key after `key` into `next` (the first key
    /// when `key` is `None`); `Ok(false)` after the last one. Kernels before
    /// 4.12 refuse a NULL key (EFAULT); `Session::entries` then starts from a
    /// key of zeros.
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> SysResult<bool> {
        const CALL: &str = "bpf(BPF_MAP_GET_NEXT_KEY)";
        if let Some(key) = key {
            self.check_key(CALL, key)?;
        }
        self.check_key(CALL, next)?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.map_or(0, |k| k.as_ptr() as u64),
            value: next.as_mut_ptr() as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: key is NULL or a live slice of the map's key size; next is
        // a writable slice of the map's key size.
        key_present(unsafe { bpf(bpf_attr::cmd::BPF_MAP_GET_NEXT_KEY, &mut attr, CALL) })
    }
}

/// BPF_MAP_CREATE with an attr built by `attrs::map_create`. `slots` is
/// the number of values one lookup returns (possible CPUs for a per-CPU
/// map, else 1).
pub fn map_create(attr: &MapCreateAttr, slots: u32) -> SysResult<MapFd> {
    let mut attr = *attr;
    // SAFETY: a map-create attr holds no pointers.
    let fd = unsafe {
        bpf(
            bpf_attr::cmd::BPF_MAP_CREATE,
            &mut attr,
            "bpf(BPF_MAP_CREATE)",
        )
    }?;
    Ok(MapFd {
        fd: owned(fd),
        key_size: attr.key_size,
        value_size: attr.value_size,
        slots: slots.max(1),
    })
}

/// BPF_PROG_LOAD with an attr built by `attrs::prog_load`; this fills in the
/// instruction, license and log pointers (log_level/log_size stay as built,
/// except that `log_size` is the buffer's length when a buffer is given).
pub fn prog_load(
    attr: &ProgLoadAttr,
    insns: &[RawInsn],
    license: &CStr,
    log: Option<&mut [u8]>,
) -> SysResult<OwnedFd> {
    const _: () = assert!(size_of::<RawInsn>() == 8);
    let mut attr = *attr;
    attr.insn_cnt = insns.len() as u32;
    attr.insns = insns.as_ptr() as u64;
    attr.license = license.as_ptr() as u64;
    match log {
        Some(buf) => {
            attr.log_buf = buf.as_mut_ptr() as u64;
            attr.log_size = buf.len() as u32;
        }
        None => {
            attr.log_buf = 0;
            attr.log_size = 0;
            attr.log_level = 0;
        }
    }
    // SAFETY: insns/license/log_buf point into borrowed slices that outlive
    // the call, with the counts and sizes set just above.
    let fd = unsafe {
        bpf(
            bpf_attr::cmd::BPF_PROG_LOAD,
            &mut attr,
            "bpf(BPF_PROG_LOAD)",
        )
    }?;
    Ok(owned(fd))
}

/// BPF_LINK_CREATE of a kprobe_multi link (5.18+): `prog` on each of
/// `functions`, at their returns when `flags` says so. The link's fd keeps
/// it attached; closing it detaches.
pub fn link_create_kprobe_multi(
    prog: std::os::fd::BorrowedFd<'_>,
    functions: &[std::ffi::CString],
    flags: u32,
) -> SysResult<OwnedFd> {
    // Pointers to NUL-terminated strings owned by `functions`, which
    // outlive the call.
    let syms: Vec<u64> = functions.iter().map(|f| f.as_ptr() as u64).collect();
    kprobe_multi_link(KprobeMultiLinkAttr {
        prog_fd: prog.as_raw_fd() as u32,
        kprobe_multi_flags: flags,
        cnt: syms.len() as u32,
        syms: syms.as_ptr() as u64,
        ..KprobeMultiLinkAttr::default()
    })
}

/// BPF_LINK_CREATE of a kprobe_multi link whose one address is to be read
/// from `addrs_at` in this process, for finding out whether the kernel has
/// such links: a kernel that has them fails copying from an unmapped
/// `addrs_at` (EFAULT) before looking any function up, one without them
/// refuses the attach type first.
pub fn link_create_kprobe_multi_at(
    prog: std::os::fd::BorrowedFd<'_>,
    addrs_at: u64,
) -> SysResult<OwnedFd> {
    kprobe_multi_link(KprobeMultiLinkAttr {
        prog_fd: prog.as_raw_fd() as u32,
        cnt: 1,
        addrs: addrs_at,
        ..KprobeMultiLinkAttr::default()
    })
}

/// BPF_LINK_CREATE with `attr`, its attach type set to kprobe_multi.
fn kprobe_multi_link(mut attr: KprobeMultiLinkAttr) -> SysResult<OwnedFd> {
    attr.attach_type = kernel_headers::bpf::attach_type::TRACE_KPROBE_MULTI;
    // SAFETY: `attr` outlives the call; the kernel reads the `cnt` entries
    // its `syms` or `addrs` point to only through copy_from_user (an
    // unmapped address fails with EFAULT), and the callers keep what they
    // point to alive across the call.
    let fd = unsafe {
        bpf(
            bpf_attr::cmd::BPF_LINK_CREATE,
            &mut attr,
            "bpf(BPF_LINK_CREATE)",
        )
    }?;
    Ok(owned(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MapFd over /dev/null: every size check happens before a syscall.
    fn map(key_size: u32, value_size: u32, slots: u32) -> MapFd {
        MapFd {
            fd: std::fs::File::open("/dev/null").unwrap().into(),
            key_size,
            value_size,
            slots,
        }
    }

    #[test]
    fn per_cpu_lookups_take_every_cpus_value_rounded_to_8() {
        assert_eq!(lookup_len(4, 1), 4);
        assert_eq!(lookup_len(4, 3), 24);
        assert_eq!(lookup_len(16, 2), 32);
        assert_eq!(map(4, 12, 4).lookup_len(), 64);
    }

    #[test]
    fn wrong_sizes_are_refused_before_the_kernel_sees_them() {
        let m = map(4, 8, 2);
        let mut value = [0u8; 8];
        let err = m.lookup(&[0; 4], &mut value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bpf(BPF_MAP_LOOKUP_ELEM): value of 8 bytes for a map of 16"
        );
        let err = m.delete(&[0; 8]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bpf(BPF_MAP_DELETE_ELEM): key of 8 bytes for a map of 4"
        );
        let err = m.next_key(None, &mut [0; 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bpf(BPF_MAP_GET_NEXT_KEY): key of 2 bytes for a map of 4"
        );
        let err = m.update(&[0; 4], &[0; 8], 0).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("value of 8 bytes for a map of 16")
        );
    }
}
