//! `poll(2)` over the event loop's fds.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::{SysError, SysResult};

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
