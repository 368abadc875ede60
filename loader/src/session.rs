//! What `nobtf run` and `nobtf load` share once their programs are built:
//! the `Session` that owns what was set up, the perf rings of a perf event
//! array, the trace pipe, the command, and the event loop's skeleton (poll,
//! stop conditions, drain). What each command does with an event stays with
//! it; errors come back as `SessionError`, which each command wraps.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Instant;

use crate::attach::Attachment;
use crate::features::{self, FeatureError};
use crate::ring::RingError;
use crate::sys::{self, MapFd, PerfRing, PollSet, SignalFd, SysError};

/// How late a quiet event may be shown: the rings wake the reader only
/// once `wakeup_bytes` wait (see `attrs::perf_output`), so the poll times
/// out this often to pick up the rest (and to check the stop conditions).
pub const LATENCY_MS: i32 = 10;

/// Bytes waiting in a ring before it wakes the reader: a page (about a
/// dozen unlink records), at most half the ring.
fn wakeup_bytes(ring_bytes: usize) -> u32 {
    (sys::page_size().min(ring_bytes / 2)).max(1) as u32
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("running `{command}`: {err}")]
    Command { command: String, err: io::Error },
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("{0}")]
    Ring(#[from] RingError),
    #[error(transparent)]
    Feature(#[from] FeatureError),
}

/// The output could not be written.
pub fn write_error(err: io::Error) -> SessionError {
    SessionError::Io {
        what: "writing output".into(),
        err,
    }
}

/// What was set up, dropped in field order = reverse order of creation:
/// attachments first, then rings, programs, maps. A failure half-way drops
/// what exists so far in that same order.
#[derive(Default)]
pub struct Session {
    pub attachments: Vec<Attachment>,
    /// (cpu, its ring).
    pub rings: Vec<(u32, PerfRing)>,
    pub progs: Vec<OwnedFd>,
    /// (name, map), in order of creation.
    pub maps: Vec<(String, MapFd)>,
}

/// Slots for a perf event array sized to the CPUs: the highest possible
/// CPU number plus one.
pub fn cpu_slots() -> Result<u32, FeatureError> {
    let cpus = features::possible_cpus()?;
    Ok(cpus.iter().max().map_or(1, |&m| m + 1))
}

/// One ring of `pages` data pages per online CPU, its fd stored in the perf
/// event array `map`.
pub fn open_rings(
    map: &MapFd,
    pages: usize,
    rings: &mut Vec<(u32, PerfRing)>,
) -> Result<(), SessionError> {
    let possible = features::possible_cpus()?;
    let online = features::online_cpus().unwrap_or(possible);
    let attr = crate::attrs::perf_output(wakeup_bytes(pages * sys::page_size()));
    for cpu in online {
        let fd = sys::perf_event_open(&attr, None, -1, cpu as i32)?;
        let ring = PerfRing::map(fd, pages)?;
        let ring_fd = ring.fd().as_raw_fd() as u32;
        map.update(
            &cpu.to_ne_bytes(),
            &ring_fd.to_ne_bytes(),
            kernel_headers::bpf_attr::BPF_ANY,
        )?;
        rings.push((cpu, ring));
    }
    Ok(())
}

/// Runs `/bin/sh -c command`.
pub fn spawn(command: &str) -> Result<Child, SessionError> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .spawn()
        .map_err(|err| SessionError::Command {
            command: command.into(),
            err,
        })
}

/// Whether the loop goes on after a drain.
pub enum Flow {
    Continue,
    Stop,
}

/// The kernel's trace pipe, read without blocking, split into lines.
pub struct TracePipe {
    file: File,
    /// A line not yet ended.
    rest: String,
}

impl TracePipe {
    pub fn open(tracefs: &Path) -> Result<TracePipe, SessionError> {
        let path = tracefs.join("trace_pipe");
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|err| SessionError::Io {
                what: format!("opening {}", path.display()),
                err,
            })?;
        Ok(TracePipe {
            file,
            rest: String::new(),
        })
    }

    /// Reads what is there, giving each whole line (its end trimmed) to
    /// `line` until the pipe is empty or `line` says stop; the lines after
    /// a stop wait for the next drain.
    pub fn drain<E: From<SessionError>>(
        &mut self,
        mut line: impl FnMut(&str) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        let mut buf = [0u8; 8192];
        loop {
            let n = match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(SessionError::Io {
                        what: "reading trace_pipe".into(),
                        err,
                    }
                    .into());
                }
            };
            self.rest.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(end) = self.rest.find('\n') {
                let whole: String = self.rest.drain(..=end).collect();
                if let Flow::Stop = line(whole.trim_end())? {
                    return Ok(Flow::Stop);
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// The last line, not ended by the kernel (yet).
    pub fn take_rest(&mut self) -> String {
        std::mem::take(&mut self.rest)
    }
}

/// Where the signalfd is in a `poll_set`.
const SIGNALS_INDEX: usize = 0;

/// The poll set of an event loop: the signalfd, the rings, the trace pipe.
pub fn poll_set(
    signals: &SignalFd,
    rings: &[(u32, PerfRing)],
    pipe: Option<&TracePipe>,
) -> PollSet {
    // First, at SIGNALS_INDEX.
    let mut fds: Vec<BorrowedFd<'_>> = vec![signals.fd()];
    fds.extend(rings.iter().map(|(_, r)| r.fd()));
    if let Some(p) = pipe {
        fds.push(p.file.as_fd());
    }
    PollSet::new(&fds)
}

/// Waits up to `timeout_ms` for data or a signal; returns whether a
/// termination signal came (SIGCHLD only wakes the loop).
pub fn wait(poll: &mut PollSet, signals: &SignalFd, timeout_ms: i32) -> Result<bool, SessionError> {
    let interrupted = poll.wait(timeout_ms)?;
    let mut signalled = false;
    // The signalfd is read only when it has something: under a storm each
    // wakeup is then one poll(2), not a poll and a failed read.
    if interrupted || poll.ready(SIGNALS_INDEX) {
        while let Some(sig) = signals.read()? {
            signalled |= sig != libc::SIGCHLD;
        }
    }
    Ok(signalled)
}

/// Calls `drain` each time data may have come, until a termination signal,
/// the command's exit, the deadline, or `drain` says stop. The stop
/// conditions are checked before the drain, so the last drain sees
/// everything the command's probes wrote before it exited.
pub fn stream<E: From<SessionError>>(
    poll: &mut PollSet,
    signals: &SignalFd,
    mut child: Option<&mut Child>,
    deadline: Option<Instant>,
    mut drain: impl FnMut() -> Result<Flow, E>,
) -> Result<(), E> {
    loop {
        let timeout = deadline.map_or(LATENCY_MS, |d| {
            d.saturating_duration_since(Instant::now())
                .as_millis()
                .min(LATENCY_MS as u128) as i32
        });
        let mut stop = wait(poll, signals, timeout)?;
        if let Some(c) = child.as_deref_mut() {
            let exited = c.try_wait().map_err(|err| SessionError::Io {
                what: "waiting for the command".into(),
                err,
            })?;
            stop |= exited.is_some();
        }
        stop |= deadline.is_some_and(|d| Instant::now() >= d);
        let flow = drain()?;
        if stop || matches!(flow, Flow::Stop) {
            return Ok(());
        }
    }
}

/// Ends the command if the loop stopped for another reason (count, signal,
/// duration): it is not left behind.
pub fn end_command(child: Option<&mut Child>) {
    if let Some(child) = child
        && child.try_wait().ok().flatten().is_none()
    {
        let _ = child.kill();
        let _ = child.wait();
    }
}
