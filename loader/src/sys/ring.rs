//! The mmap'ed rings: the perf ring of one CPU, and the BPF ring buffer
//! all CPUs share.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use kernel_headers::bpf::ringbuf;
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

/// The BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`, 5.8+) as its reader maps
/// it: the consumer position's page read-write, the producer position's
/// page and the data (mapped twice in a row by the kernel) read-only.
///
/// The map's fd polls readable whenever a byte is pending, so a reader
/// polling it under a storm would wake at once after every drain and read
/// a few records at a time. The reader polls `wakeups` instead: an epoll
/// fd holding the map edge-triggered, readable only after the kernel's
/// wakeups (the record crossing the wakeup mark), each taken back by
/// `drain_with` when it finds the ring empty.
#[derive(Debug)]
pub struct BpfRing {
    consumer: NonNull<u8>,
    producer: NonNull<u8>,
    producer_len: usize,
    data_len: usize,
    /// The map's fd, held as long as its mappings.
    _map: OwnedFd,
    wakeups: OwnedFd,
}

impl BpfRing {
    /// Maps the ring buffer map `fd` of `data_len` bytes (its max_entries:
    /// a power-of-two number of pages).
    pub fn map(fd: OwnedFd, data_len: usize) -> SysResult<BpfRing> {
        let wakeups = edge_triggered(fd.as_fd())?;
        let page = page_size();
        let consumer = mmap_shared(
            &fd,
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            ringbuf::CONSUMER_POS_PAGE * page,
        )?;
        let producer_len = page + 2 * data_len;
        let producer = match mmap_shared(
            &fd,
            producer_len,
            libc::PROT_READ,
            ringbuf::PRODUCER_POS_PAGE * page,
        ) {
            Ok(p) => p,
            Err(err) => {
                // SAFETY: the consumer page mapped just above, unmapped once.
                unsafe { libc::munmap(consumer.as_ptr().cast(), page) };
                return Err(err);
            }
        };
        let ring = BpfRing {
            consumer,
            producer,
            producer_len,
            data_len,
            _map: fd,
            wakeups,
        };
        Ok(ring)
    }

    /// What the reader polls: readable after a wakeup of the kernel's.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wakeups.as_fd()
    }

    /// Takes back the pending wakeup, if any, so the next poll waits for
    /// a new one.
    fn take_wakeup(&self) {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: one epoll_event of our own, written by the kernel; a zero
        // timeout never blocks. A failure only means a spurious wakeup later.
        unsafe { libc::epoll_wait(self.wakeups.as_raw_fd(), &mut event, 1, 0) };
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the u64 at the start of the consumer page, 8-aligned
        // (page-aligned), mapped as long as `self` lives; shared with the
        // kernel, hence atomic.
        unsafe { &*self.consumer.as_ptr().cast::<AtomicU64>() }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: as `consumer_pos`, at the start of the producer page.
        unsafe { &*self.producer.as_ptr().cast::<AtomicU64>() }
    }

    /// The data area's first byte.
    fn data(&self) -> *const u8 {
        // SAFETY: one page into the producer mapping, which is page +
        // 2 * data_len bytes long.
        unsafe { self.producer.as_ptr().add(page_size()) }
    }

    fn header(&self, pos: u64) -> &AtomicU32 {
        let at = (pos as usize) & (self.data_len - 1);
        // SAFETY: record headers start 8-aligned inside the data area (the
        // kernel aligns every record to 8), so the u32 at `at` is aligned
        // and in the mapping; the kernel writes it concurrently (the busy
        // bit), hence atomic.
        unsafe { &*self.data().add(at).cast::<AtomicU32>() }
    }

    /// The data area's size: the most one drain can find.
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// Hands `read` every committed record (headers included, as the
    /// kernel laid them out) the kernel has published since the last
    /// call, in place in the mapping, then hands the space back (whatever
    /// `read` returned). Stops at the first record still being written.
    /// `&mut self`: a nested call from `read` would hand the kernel back
    /// the space `read`'s slice still points to.
    pub fn drain_with<E>(
        &mut self,
        read: impl FnOnce(&[u8]) -> Result<(), E>,
    ) -> Result<Drained, E> {
        // Only this reader moves the consumer position.
        let start = self.consumer_pos().load(Ordering::Relaxed);
        // Acquire: the headers before `producer_pos` are those reserved.
        let mut producer = self.producer_pos().load(Ordering::Acquire);
        if producer == start {
            // Empty: the reader may sleep next, so the wakeup taken now
            // must not be one for records still to read; look once more
            // after taking it. (A syscall only when empty, not per read.)
            self.take_wakeup();
            producer = self.producer_pos().load(Ordering::Acquire);
        }
        let mut end = start;
        let mut busy = false;
        // At most a batch's worth at a time: the records are read in place,
        // so their space goes back to the kernel only after `read`; a
        // whole ring's worth held while it is printed left the probes no
        // room (the caller drains again at once).
        while end < producer && end - start < BATCH_BYTES.min(self.data_len as u64) {
            // Acquire: a committed header's record bytes are visible.
            let len = self.header(end).load(Ordering::Acquire);
            if len & ringbuf::BUSY_BIT != 0 {
                busy = true;
                break;
            }
            let body = (len & !(ringbuf::BUSY_BIT | ringbuf::DISCARD_BIT)) as usize;
            end += (ringbuf::HDR_SZ + body).next_multiple_of(8) as u64;
        }
        let len = (end - start) as usize;
        if len == 0 {
            if busy {
                // The first record is still being written. The map's fd
                // stays readable until it is committed, so without taking
                // the wakeup the reader would poll, find it busy and poll
                // again in a loop (measured under instruction counting:
                // 6,000 polls woken for 228 reads with data). Its commit
                // wakes no one (a record's wakeup is for the one crossing
                // the mark), so the caller polls with a short timeout.
                self.take_wakeup();
            }
            return Ok(Drained {
                bytes: 0,
                head_busy: busy,
            });
        }
        let at = (start as usize) & (self.data_len - 1);
        // SAFETY: [at, at + len) lies in the data area mapped twice in a
        // row (at < data_len, len <= data_len), so it is one readable
        // range, mapped as long as `self`; the kernel does not write it
        // until the consumer position moves past it, which happens only
        // after `read` returns (the slice does not outlive the call).
        let records = unsafe { std::slice::from_raw_parts(self.data().add(at), len) };
        let result = read(records);
        // Release: our reads of the records happen before the kernel may
        // reuse their space.
        self.consumer_pos().store(end, Ordering::Release);
        result.map(|()| Drained {
            bytes: len,
            head_busy: false,
        })
    }
}

/// The most [`BpfRing::drain_with`] hands over at once.
const BATCH_BYTES: u64 = 32 * 1024;

/// What one [`BpfRing::drain_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Bytes handed to the reader (0: it was not called).
    pub bytes: usize,
    /// Nothing was read because the first record was still being written.
    pub head_busy: bool,
}

/// An epoll fd watching `fd` for input, edge-triggered.
fn edge_triggered(fd: BorrowedFd<'_>) -> SysResult<OwnedFd> {
    // SAFETY: no pointers; the result is checked and owned at once.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(SysError::last("epoll_create1"));
    }
    // SAFETY: a fresh fd returned just above, owned from here on.
    let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: 0,
    };
    // SAFETY: both fds are open; the event is read by the kernel only
    // during the call.
    let ret = unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd.as_raw_fd(),
            &mut event,
        )
    };
    if ret < 0 {
        return Err(SysError::last("epoll_ctl(ring buffer)"));
    }
    Ok(epoll)
}

fn mmap_shared(fd: &OwnedFd, len: usize, prot: i32, offset: usize) -> SysResult<NonNull<u8>> {
    // SAFETY: a fresh shared mapping of a ring buffer map's fd; the kernel
    // validates length, protection and offset, and the result is checked
    // against MAP_FAILED.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(SysError::last("mmap(ring buffer)"));
    }
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| SysError::last("mmap(ring buffer)"))
}

impl Drop for BpfRing {
    fn drop(&mut self) {
        let page = page_size();
        // SAFETY: exactly the two mappings made in `map`, each unmapped once.
        let rets = unsafe {
            [
                libc::munmap(self.consumer.as_ptr().cast(), page),
                libc::munmap(self.producer.as_ptr().cast(), self.producer_len),
            ]
        };
        if rets.iter().any(|&r| r < 0) {
            eprintln!("warning: {}", SysError::last("munmap(ring buffer)"));
        }
    }
}
