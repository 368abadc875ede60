//! The mmap'ed perf ring of one CPU.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use kernel_headers::perf;

use super::{SysError, SysResult};

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
