//! The session's event loop: perf rings per CPU, the trace pipe, the
//! signalfd, polled together; records and lines handed to the front end's
//! `Events` until a stop condition.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use super::{Session, SessionError};
use crate::features;
use crate::ring::{self, Record};
use crate::sys::{self, BpfRing, MapFd, PerfRing, PollSet};

/// How late a quiet event may be shown: the rings wake the reader only
/// once `wakeup_bytes` wait (see `attrs::perf_output`), so the poll times
/// out this often to pick up the rest (and to check the stop conditions).
pub const LATENCY_MS: i32 = 10;

/// The poll's first timeout, doubling at each poll up to `LATENCY_MS`: the
/// first events after the start, which a user waits for, show within a
/// few ms. Measured under instruction counting, a 10 ms first timeout made
/// nobtf's first line 11 ms later than its attach. Not after every record:
/// 1 ms polls under a storm cost the reader 2.5 times the CPU (the rings
/// were read in smaller batches).
pub const QUICK_MS: i32 = 1;

/// How many passes over the rings one drain makes at most.
const DRAIN_PASSES: usize = 16;

/// Where the signalfd is in the poll set.
const SIGNALS_INDEX: usize = 0;

/// What the event loop did: under a storm, how many records each wakeup
/// and each ring read carried (`run -v` prints it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReaderStats {
    /// poll(2) calls.
    pub waits: u64,
    /// Of them, those that ended on a ready fd rather than the timeout.
    pub woken: u64,
    /// Reads of a ring that found records.
    pub ring_reads: u64,
    pub records: u64,
    pub bytes: u64,
    /// Drains that found the ring buffer's first record still being
    /// written (each followed by a `QUICK_MS` poll).
    pub busy: u64,
}

impl std::fmt::Display for ReaderStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        write!(
            f,
            "{} polls ({} woken by data or a signal, the rest timed out), {} ring reads with data: {:.1} records ({:.0} bytes) per read, {} stops at a record being written",
            self.waits,
            self.woken,
            self.ring_reads,
            per(self.records, self.ring_reads),
            per(self.bytes, self.ring_reads),
            self.busy,
        )
    }
}

/// Whether the loop goes on after a drain.
pub enum Flow {
    Continue,
    Stop,
}

/// What a front end does with what the programs send.
pub trait Events {
    type Error: From<SessionError>;
    /// One record (the bytes a program passed to `perf_event_output`,
    /// padded to 8, or to `ringbuf_output`) from `cpu`'s perf ring, or with
    /// `None` from the ring buffer all CPUs share (a record that needs its
    /// CPU carries it). After a `Stop` the rest of the batch still comes
    /// (to count losses); it is not to be shown.
    fn sample(&mut self, cpu: Option<u32>, data: &[u8]) -> Result<Flow, Self::Error>;
    /// The kernel dropped `count` records on `cpu`: its ring (or the ring
    /// buffer) was full.
    fn lost(&mut self, cpu: u32, count: u64);
    /// One trace-pipe line, its end trimmed.
    fn line(&mut self, line: &str) -> Result<Flow, Self::Error>;
    /// Everything is drained: a good moment to flush the output.
    fn idle(&mut self) -> Result<(), Self::Error>;
}

/// Bytes waiting in a ring before it wakes the reader: a page (about a
/// dozen unlink records), at most half the ring.
fn wakeup_bytes(ring_bytes: usize) -> u32 {
    (sys::page_size().min(ring_bytes / 2)).max(1) as u32
}

/// One ring of `pages` data pages per online CPU, its fd stored in the perf
/// event array `map`.
pub(super) fn open_rings(
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

/// Ring buffer bytes: the perf rings' total (`pages` per online CPU),
/// rounded up to a power of two and at least `probes::ringbuf::MIN_RING_BYTES`
/// (the kernel wants a power-of-two number of pages).
pub(super) fn ring_buffer_bytes(pages: usize) -> Result<u32, SessionError> {
    let possible = features::possible_cpus()?;
    let cpus = features::online_cpus().unwrap_or(possible).len();
    let bytes = (pages * sys::page_size() * cpus)
        .max(probes::ringbuf::MIN_RING_BYTES)
        .max(sys::page_size())
        .next_power_of_two();
    Ok(u32::try_from(bytes).unwrap_or(1 << 31))
}

/// The BPF ring buffer, and the per-CPU loss counts of
/// `probes::ringbuf::LOSSES_MAP` reported so far.
#[derive(Debug)]
pub struct RingBuffer {
    ring: BpfRing,
    /// The possible CPUs, in the order a per-CPU lookup gives their values.
    cpus: Vec<u32>,
    reported: Vec<u64>,
    /// The last drain stopped at a record still being written (its commit
    /// wakes no one) or left records for the next (no record after them
    /// crosses the wakeup mark): the next poll is a short one.
    poll_soon: bool,
}

impl RingBuffer {
    pub(super) fn new(ring: BpfRing) -> Result<RingBuffer, SessionError> {
        let cpus = features::possible_cpus()?;
        Ok(RingBuffer {
            ring,
            reported: vec![0; cpus.len()],
            cpus,
            poll_soon: false,
        })
    }

    pub(super) fn loss_cpus(&self) -> Vec<u32> {
        self.cpus.clone()
    }

    /// Hands `events` what each CPU lost since the last call.
    fn report_losses<H: Events>(&mut self, losses: &MapFd, events: &mut H) -> Result<(), H::Error> {
        let mut value = vec![0u8; losses.lookup_len()];
        if !losses
            .lookup(&0u32.to_ne_bytes(), &mut value)
            .map_err(SessionError::from)?
        {
            return Ok(());
        }
        let counts = value
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("chunks of 8")));
        for ((cpu, reported), count) in self.cpus.iter().zip(&mut self.reported).zip(counts) {
            if count > *reported {
                events.lost(*cpu, count - *reported);
                *reported = count;
            }
        }
        Ok(())
    }
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
    fn drain<E: From<SessionError>>(
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
}

impl Session {
    /// The last trace-pipe line, not ended by the kernel (yet).
    pub fn take_pipe_rest(&mut self) -> String {
        self.pipe
            .as_mut()
            .map(|p| std::mem::take(&mut p.rest))
            .unwrap_or_default()
    }

    fn poll_set(&mut self) -> &mut PollSet {
        if self.poll.is_none() {
            // The signalfd first, at SIGNALS_INDEX.
            let mut fds: Vec<BorrowedFd<'_>> = vec![self.signals.fd()];
            fds.extend(self.rings.iter().map(|(_, r)| r.fd()));
            fds.extend(self.ring_buffer.iter().map(|r| r.ring.fd()));
            if let Some(p) = &self.pipe {
                fds.push(p.file.as_fd());
            }
            self.poll = Some(PollSet::new(&fds));
        }
        self.poll.as_mut().expect("built just above")
    }

    /// Waits up to `timeout_ms` for data or a signal; returns whether a
    /// termination signal came (SIGCHLD only wakes the loop).
    pub fn wait(&mut self, timeout_ms: i32) -> Result<bool, SessionError> {
        // The signalfd, the rings, the ring buffer, the trace pipe.
        let fds = 1
            + self.rings.len()
            + usize::from(self.ring_buffer.is_some())
            + usize::from(self.pipe.is_some());
        let poll = self.poll_set();
        let interrupted = poll.wait(timeout_ms)?;
        let woken = interrupted || (0..fds).any(|i| poll.ready(i));
        let ready = poll.ready(SIGNALS_INDEX);
        let mut signalled = false;
        // The signalfd is read only when it has something: under a storm each
        // wakeup is then one poll(2), not a poll and a failed read.
        if interrupted || ready {
            while let Some(sig) = self.signals.read()? {
                signalled |= sig != libc::SIGCHLD;
            }
        }
        self.stats.waits += 1;
        self.stats.woken += u64::from(woken);
        Ok(signalled)
    }

    /// Hands `events` the trace pipe's lines, then the rings' records until
    /// a pass finds them all empty (then `idle`, so a quiet trace shows each
    /// event within a poll) or for at most `DRAIN_PASSES` passes under a
    /// storm, so signals and the command's exit are still seen.
    pub fn drain<H: Events>(&mut self, events: &mut H) -> Result<Flow, H::Error> {
        if let Some(pipe) = self.pipe.as_mut()
            && let Flow::Stop = pipe.drain(|line| events.line(line))?
        {
            return Ok(Flow::Stop);
        }
        let mut bytes = std::mem::take(&mut self.scratch);
        let losses = self
            .maps
            .iter()
            .find(|(name, _)| name == probes::ringbuf::LOSSES_MAP)
            .map(|(_, map)| map);
        let ring_buffer = self.ring_buffer.as_mut().zip(losses);
        let flow = drain_rings(
            &self.rings,
            ring_buffer,
            &mut bytes,
            events,
            &mut self.stats,
        );
        self.scratch = bytes;
        flow
    }

    /// Calls `drain` each time data may have come, until a termination
    /// signal, the command's exit, the deadline, or `events` says stop. The
    /// stop conditions are checked before the drain, so the last drain sees
    /// everything the command's programs wrote before it exited.
    pub fn stream<H: Events>(
        &mut self,
        events: &mut H,
        deadline: Option<Instant>,
    ) -> Result<(), H::Error> {
        let mut latency = Latency::default();
        loop {
            // A record still being written is waited for with a short
            // poll, not a whole timeout: its commit wakes no one, and the
            // records behind it fill the ring meanwhile. Not a spin: the
            // producer may need this CPU to finish it.
            let poll_soon = self.ring_buffer.as_ref().is_some_and(|r| r.poll_soon);
            let ms = if poll_soon { QUICK_MS } else { latency.ms };
            let timeout = deadline.map_or(ms, |d| {
                d.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(ms as u128) as i32
            });
            let mut stop = self.wait(timeout)?;
            if let Some(c) = self.child.as_mut() {
                let exited = c.try_wait().map_err(|err| SessionError::Io {
                    what: "waiting for the command".into(),
                    err,
                })?;
                stop |= exited.is_some();
            }
            stop |= deadline.is_some_and(|d| Instant::now() >= d);
            let flow = self.drain(events)?;
            if stop || matches!(flow, Flow::Stop) {
                return Ok(());
            }
            latency.next();
        }
    }
}

/// The poll timeout: `QUICK_MS` at start, doubling up to `LATENCY_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Latency {
    ms: i32,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency { ms: QUICK_MS }
    }
}

impl Latency {
    fn next(&mut self) {
        self.ms = (self.ms * 2).min(LATENCY_MS);
    }
}

/// Hands `events` one record from `cpu`'s perf ring or (`None`) the ring
/// buffer; `flow` becomes `Stop` when `events` says so.
#[inline(always)]
fn hand_over<H: Events>(
    record: Record<'_>,
    cpu: Option<u32>,
    events: &mut H,
    stats: &mut ReaderStats,
    flow: &mut Flow,
) -> Result<(), H::Error> {
    match record {
        Record::Sample(data) => {
            stats.records += 1;
            if let Flow::Stop = events.sample(cpu, data)? {
                *flow = Flow::Stop;
            }
        }
        Record::Lost(n) => {
            if let Some(cpu) = cpu {
                events.lost(cpu, n);
            }
        }
        Record::Other(_) => {}
    }
    Ok(())
}

fn drain_rings<H: Events>(
    rings: &[(u32, PerfRing)],
    mut ring_buffer: Option<(&mut RingBuffer, &MapFd)>,
    bytes: &mut Vec<u8>,
    events: &mut H,
    stats: &mut ReaderStats,
) -> Result<Flow, H::Error> {
    for _ in 0..DRAIN_PASSES {
        let mut got = false;
        if let Some((ring, _)) = ring_buffer.as_mut() {
            // Records are parsed and printed where they lie in the ring, a
            // batch at a time (each batch's space released before the
            // next), up to a ring's worth a pass as a perf ring's pass.
            let mut read = 0;
            loop {
                let mut flow = Flow::Continue;
                let drained = ring.ring.drain_with(|records| {
                    stats.ring_reads += 1;
                    stats.bytes += records.len() as u64;
                    ring::ring_buffer_records(records).try_each(
                        |record| hand_over(record, None, events, stats, &mut flow),
                        |cut| H::Error::from(SessionError::from(cut)),
                    )
                })?;
                ring.poll_soon = drained.head_busy;
                stats.busy += u64::from(drained.head_busy);
                if let Flow::Stop = flow {
                    return Ok(Flow::Stop);
                }
                if drained.bytes == 0 {
                    break;
                }
                got = true;
                read += drained.bytes;
                if read >= ring.ring.data_len() {
                    break;
                }
            }
        }
        for (cpu, ring) in rings {
            bytes.clear();
            if ring.drain_into(bytes) == 0 {
                continue;
            }
            got = true;
            stats.ring_reads += 1;
            stats.bytes += bytes.len() as u64;
            let mut flow = Flow::Continue;
            ring::records(bytes).try_each(
                |record| hand_over(record, Some(*cpu), events, stats, &mut flow),
                |cut| H::Error::from(SessionError::from(cut)),
            )?;
            if let Flow::Stop = flow {
                return Ok(Flow::Stop);
            }
        }
        if !got {
            // Drained: the ring buffer's loss counts are read now, not per
            // record (a syscall each).
            if let Some((ring, losses)) = ring_buffer.as_mut() {
                ring.report_losses(losses, events)?;
            }
            events.idle()?;
            return Ok(Flow::Continue);
        }
    }
    // Still records after the last pass (a storm): the next poll is short.
    if let Some((ring, _)) = ring_buffer {
        ring.poll_soon = true;
    }
    Ok(Flow::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_stats_give_records_and_bytes_per_read() {
        let stats = ReaderStats {
            waits: 10,
            woken: 4,
            ring_reads: 4,
            records: 50,
            bytes: 16_000,
            busy: 2,
        };
        assert_eq!(
            stats.to_string(),
            "10 polls (4 woken by data or a signal, the rest timed out), 4 ring reads with data: 12.5 records (4000 bytes) per read, 2 stops at a record being written"
        );
        assert!(ReaderStats::default().to_string().contains("0.0 records"));
    }

    #[test]
    fn latency_is_quick_at_start_then_backs_off() {
        let mut latency = Latency::default();
        assert_eq!(latency.ms, QUICK_MS);
        let later: Vec<i32> = (0..6)
            .map(|_| {
                latency.next();
                latency.ms
            })
            .collect();
        assert_eq!(later, [2, 4, 8, LATENCY_MS, LATENCY_MS, LATENCY_MS]);
    }
}
