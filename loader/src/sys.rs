//! Every system call nobtf makes that std does not wrap: `bpf`, `perf_event_open`,
//! `ioctl`, `mmap`, `uname`, `mount`, signals and `poll`.
//!
//! This is the only module with `unsafe`. Attribute structs arrive here fully
//! built by `attrs` (tested without a kernel); this module only fills in the
//! pointers to buffers it borrows for the duration of the call, makes the call,
//! and wraps any fd in `OwnedFd` at once. Every error names the call.

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use kernel_headers::bpf::RawInsn;
use kernel_headers::bpf_attr::{self, MapCreateAttr, MapElemAttr, ProgLoadAttr};
use kernel_headers::perf::{self, PerfEventAttr};
use kernel_headers::pt_regs;

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
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
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

/// `perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)`. `kprobe_func`,
/// when given, is passed as `config1` (the kprobe PMU's function name).
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

pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as usize } else { 4096 }
}

/// One CPU's perf ring: the metadata page followed by `data_len` bytes of
/// data (a power of two), mapped read-write so the tail can be published.
#[derive(Debug)]
pub struct PerfRing {
    base: NonNull<u8>,
    map_len: usize,
    data_offset: usize,
    data_len: usize,
    fd: OwnedFd,
}

impl PerfRing {
    /// mmap `1 + data_pages` pages of a perf event fd; `data_pages` must be a
    /// power of two (the kernel refuses anything else).
    pub fn map(fd: OwnedFd, data_pages: usize) -> SysResult<PerfRing> {
        let page = page_size();
        let map_len = (1 + data_pages) * page;
        // SAFETY: a fresh shared mapping of a perf fd; the kernel validates the
        // length, and the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(SysError::last("mmap(perf ring)"));
        }
        let base =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| SysError::last("mmap(perf ring)"))?;
        let mut ring = PerfRing {
            base,
            map_len,
            data_offset: page,
            data_len: data_pages * page,
            fd,
        };
        // 4.1+ say where the data starts; older kernels leave 0 (= one page).
        let offset = ring
            .meta(perf::MMAP_PAGE_DATA_OFFSET)
            .load(Ordering::Relaxed) as usize;
        let size = ring.meta(perf::MMAP_PAGE_DATA_SIZE).load(Ordering::Relaxed) as usize;
        if offset != 0 && size != 0 && offset + size <= map_len {
            ring.data_offset = offset;
            ring.data_len = size;
        }
        Ok(ring)
    }

    fn meta(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: offset is one of the 8-aligned u64 fields of the first page
        // of the mapping, which lives as long as `self`; the kernel updates
        // them concurrently, hence atomics.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Append every byte the kernel has published since the last call to
    /// `out` (unwrapped), then hand the space back to the kernel.
    /// Returns the number of bytes copied.
    pub fn drain_into(&self, out: &mut Vec<u8>) -> usize {
        // Acquire: the record bytes before `head` are visible once head is.
        let head = self.meta(perf::MMAP_PAGE_DATA_HEAD).load(Ordering::Acquire);
        let tail = self.meta(perf::MMAP_PAGE_DATA_TAIL).load(Ordering::Relaxed);
        let len = head.wrapping_sub(tail) as usize;
        if len == 0 {
            return 0;
        }
        let len = len.min(self.data_len);
        let start = (tail as usize) & (self.data_len - 1);
        let first = len.min(self.data_len - start);
        out.reserve(len);
        // SAFETY: [start, start+first) and [0, len-first) lie inside the data
        // area; the kernel does not write there until data_tail moves past
        // them, which happens only after these copies.
        unsafe {
            let data = self.base.as_ptr().add(self.data_offset);
            let dst = out.as_mut_ptr().add(out.len());
            std::ptr::copy_nonoverlapping(data.add(start), dst, first);
            std::ptr::copy_nonoverlapping(data, dst.add(first), len - first);
            out.set_len(out.len() + len);
        }
        // Release: our reads of the data happen before the kernel may reuse it.
        self.meta(perf::MMAP_PAGE_DATA_TAIL)
            .store(tail.wrapping_add(len as u64), Ordering::Release);
        len
    }
}

impl Drop for PerfRing {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `map`, unmapped once.
        let ret = unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
        if ret < 0 {
            eprintln!("warning: {}", SysError::last("munmap(perf ring)"));
        }
    }
}

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

/// Termination signals and SIGCHLD delivered through a signalfd, so the
/// event loop sees them in `poll` instead of in an async handler.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
    mask: libc::sigset_t,
}

impl SignalFd {
    pub fn new(signals: &[libc::c_int]) -> SysResult<SignalFd> {
        let mask = signal_set(signals);
        // SAFETY: blocks the signals for this thread (the only one reading them);
        // std's Command clears the mask again in the child before exec.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
        sigmask_result(ret)?;
        // SAFETY: `mask` is initialized; -1 asks for a new fd.
        let fd = unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            let err = SysError::last("signalfd");
            // SAFETY: undo the block made above.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &mask, std::ptr::null_mut()) };
            return Err(err);
        }
        Ok(SignalFd {
            fd: owned(fd as i64),
            mask,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The next pending signal, if any.
    pub fn read(&self) -> SysResult<Option<i32>> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into `info`.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut info).cast(), size) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(SysError {
                call: "read(signalfd)",
                err,
            });
        }
        if n as usize != size {
            return Ok(None);
        }
        Ok(Some(info.ssi_signo as i32))
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: unblocks exactly the signals blocked in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.mask, std::ptr::null_mut()) };
    }
}

/// A `poll(2)` set for readability, built once for an event loop. It holds
/// fd numbers only: an fd closed meanwhile makes poll report POLLNVAL for
/// it, nothing worse.
#[derive(Debug)]
pub struct PollSet(Vec<libc::pollfd>);

impl PollSet {
    pub fn new(fds: &[BorrowedFd<'_>]) -> PollSet {
        PollSet(
            fds.iter()
                .map(|fd| libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
        )
    }

    /// Waits until one fd is readable (or hung up), or `timeout_ms`, or a
    /// signal interrupts; returns whether a signal interrupted it.
    pub fn wait(&mut self, timeout_ms: i32) -> SysResult<bool> {
        let fds = &mut self.0;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(SysError { call: "poll", err });
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the last `wait` found the `index`th fd ready.
    pub fn ready(&self, index: usize) -> bool {
        self.0.get(index).is_some_and(|fd| fd.revents != 0)
    }
}

/// The kernel's monotonic clock in ns, the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> u64 {
    // SAFETY: timespec is plain data.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The set holding exactly `signals`.
fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initializes it.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `mask` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut mask);
        for &sig in signals {
            libc::sigaddset(&mut mask, sig);
        }
    }
    mask
}

/// `pthread_sigmask` returns its error number rather than setting errno.
fn sigmask_result(ret: libc::c_int) -> SysResult<()> {
    if ret == 0 {
        return Ok(());
    }
    Err(SysError {
        call: "pthread_sigmask",
        err: io::Error::from_raw_os_error(ret),
    })
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Makes SIGINT, SIGTERM and SIGHUP unable to kill the process before it
/// has detached: they are blocked (one arriving during set-up waits for the
/// event loop's signalfd), and their action becomes a handler that does
/// nothing (one arriving after the signalfd is gone no longer kills, so the
/// clean-up still runs). exec resets the handler, so children get the default.
pub fn hold_termination_signals() -> SysResult<()> {
    const HELD: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    for sig in HELD {
        // SAFETY: sigaction is plain data; zeroed means no flags, empty mask.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action` is initialized and the handler touches nothing.
        if unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) } < 0 {
            return Err(SysError::last("sigaction"));
        }
    }
    let mask = signal_set(&HELD);
    // SAFETY: blocks signals for the calling (only) thread.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
    sigmask_result(ret)
}

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

    #[test]
    fn sigmask_errors_come_from_the_return_value() {
        assert!(sigmask_result(0).is_ok());
        let err = sigmask_result(libc::EINVAL).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EINVAL));
        assert_eq!(err.call, "pthread_sigmask");
    }

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
