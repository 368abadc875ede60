//! Termination signals: held during set-up, then read through a signalfd.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::{SysError, SysResult, owned};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmask_errors_come_from_the_return_value() {
        assert!(sigmask_result(0).is_ok());
        let err = sigmask_result(libc::EINVAL).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EINVAL));
        assert_eq!(err.call, "pthread_sigmask");
    }
}
