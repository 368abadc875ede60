//! What `nobtf run unlink` does with each event: parse the record, keep
//! nobtf's own (the canary's, the loss flush's) apart, filter by pid,
//! print, count, hold lines while the canary runs, account for losses.

use std::io::Write;

use probes::event::{self as probe_event, EventBytes, EventKind as ProbeEventKind};

use super::{RunError, RunOptions};
use crate::canary::{Seen, Witness};
use crate::output::{self, Event, EventKind};
use crate::pipe_line;
use crate::session::{Events, Flow, Session, write_error};

/// Counts at the end of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub delivered: u64,
    /// (cpu, samples the kernel dropped because the ring was full).
    pub lost: Vec<(u32, u64)>,
    /// Records that did not parse (should be 0).
    pub bad: u64,
    pub trace_pipe: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lost: u64 = self.lost.iter().map(|(_, n)| n).sum();
        write!(f, "nobtf: {} events delivered", self.delivered)?;
        if !self.trace_pipe {
            write!(f, ", {lost} lost")?;
            let per_cpu: Vec<String> = self
                .lost
                .iter()
                .map(|(cpu, n)| format!("cpu{cpu}={n}"))
                .collect();
            write!(f, " ({})", per_cpu.join(" "))?;
        }
        if self.bad > 0 {
            write!(f, ", {} unreadable records", self.bad)?;
        }
        Ok(())
    }
}

/// Bytes of lines gathered before they are written out.
const PENDING_BYTES: usize = 64 * 1024;

/// The unlink front end's `Events`: shows other processes' events, keeps
/// nobtf's own (the canary's, the loss flush's) apart.
pub(super) struct Printer<'a> {
    opts: &'a RunOptions,
    out: &'a mut dyn Write,
    /// Lines not yet written to `out`: written when the session runs dry
    /// or `PENDING_BYTES` wait, so a storm costs one copy of each byte and
    /// one write(2) per batch.
    pending: output::Lines,
    lines: output::LineCache,
    /// write(2)s of `pending` (for `-v`).
    writes: u64,
    summary: Summary,
    /// nobtf's own pid: its events are collected in `own`, never shown or
    /// counted.
    me: u32,
    own: Vec<Seen>,
    /// While the canary runs, the lines to show later.
    held: Option<Vec<String>>,
    /// A termination signal came (or --count was reached) before the
    /// stream, or the stream is over: nothing more is shown.
    stopping: bool,
    /// --count was reached: the rest of a batch is not shown.
    done: bool,
    /// With the tracefs back end: turns its events' lines into events.
    decoder: Option<&'a super::decode::Decoder>,
}

impl<'a> Printer<'a> {
    pub(super) fn new(opts: &'a RunOptions, out: &'a mut dyn Write, session: &Session) -> Self {
        Printer {
            opts,
            out,
            pending: output::Lines::with_capacity(PENDING_BYTES + 4096),
            lines: output::LineCache::default(),
            writes: 0,
            summary: Summary {
                trace_pipe: opts.trace_pipe,
                lost: session
                    .ring_cpus()
                    .into_iter()
                    .map(|cpu| (cpu, 0))
                    .collect(),
                ..Summary::default()
            },
            me: std::process::id(),
            own: Vec::new(),
            held: None,
            stopping: false,
            done: false,
            decoder: None,
        }
    }

    /// Reads trace-pipe lines as the tracefs back end's events.
    pub(super) fn with_decoder(mut self, decoder: &'a super::decode::Decoder) -> Self {
        self.decoder = Some(decoder);
        self
    }

    /// The losses counted outside the stream (the trace buffer's overruns).
    pub(super) fn set_lost(&mut self, lost: Vec<(u32, u64)>) {
        self.summary.lost = lost;
    }

    fn counted(&mut self) -> Flow {
        self.summary.delivered += 1;
        match self.opts.count {
            Some(n) if self.summary.delivered >= n => {
                self.done = true;
                Flow::Stop
            }
            _ => Flow::Continue,
        }
    }

    /// Holds what would be shown until the canary passed.
    pub(super) fn hold(&mut self) {
        self.held = Some(Vec::new());
    }

    /// Drops the held lines and shows nothing more.
    pub(super) fn stop_holding(&mut self) {
        self.stopping = true;
        self.held = None;
    }

    /// Whether nothing more is to be shown (a signal, --count).
    pub(super) fn stopping(&self) -> bool {
        self.stopping
    }

    /// How many times gathered lines were written out.
    pub(super) fn writes(&self) -> u64 {
        self.writes
    }

    pub(super) fn into_summary(mut self) -> Summary {
        std::mem::take(&mut self.summary)
    }

    /// Shows the lines held while the canary ran.
    pub(super) fn release_held(&mut self) -> Result<(), RunError> {
        for line in self.held.take().unwrap_or_default() {
            self.pending.extend(line.as_bytes());
            self.pending.push(b'\n');
            if let Flow::Stop = self.counted() {
                self.stopping = true;
                break;
            }
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> Result<(), RunError> {
        self.write_pending()?;
        Ok(self.out.flush().map_err(write_error)?)
    }

    fn write_pending(&mut self) -> Result<(), RunError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.writes += 1;
        let result = self
            .out
            .write_all(self.pending.as_bytes())
            .map_err(write_error);
        self.pending.clear();
        Ok(result?)
    }

    /// Writes the gathered lines once there are enough of them.
    fn gathered(&mut self) -> Result<Flow, RunError> {
        if self.pending.len() >= PENDING_BYTES {
            self.write_pending()?;
        }
        Ok(self.counted())
    }

    /// The kernel reports a full ring's losses (PERF_RECORD_LOST) only with
    /// the next sample that fits: make one on each CPU (a failed unlink of
    /// nobtf's own, never shown) so the summary counts every loss.
    pub(super) fn flush_lost(&mut self, session: &mut Session) {
        session.unlink_on_each_ring_cpu(&format!("/tmp/.nobtf-flush-{}", self.me));
        // After the stop: count losses, show nothing more.
        self.stopping = true;
        if let Err(err) = session.drain(self) {
            eprintln!("warning: {err}");
        }
    }
}

/// Lines gathered when a run ends on an error are still written (as the
/// buffered writer they replace did when dropped).
impl Drop for Printer<'_> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.out.write_all(self.pending.as_bytes());
        }
    }
}

impl Events for Printer<'_> {
    type Error = RunError;

    fn sample(&mut self, cpu: Option<u32>, data: &[u8]) -> Result<Flow, RunError> {
        // The usual record: its line straight from its bytes, each field
        // read where it lies.
        if let Some(record) = EventBytes::new(data) {
            // A ring buffer record carries its CPU; a perf ring is the CPU's own.
            let cpu = cpu.unwrap_or(record.cpu());
            if self.shows_straight(record.pid())
                && self.lines.append_record(&mut self.pending, record, cpu)
            {
                return self.gathered();
            }
        }
        self.sample_parsed(cpu, data)
    }

    fn lost(&mut self, cpu: u32, count: u64) {
        if let Some((_, n)) = self.summary.lost.iter_mut().find(|(c, _)| *c == cpu) {
            *n += count;
        }
    }

    fn line(&mut self, line: &str) -> Result<Flow, RunError> {
        if let Some(decoder) = self.decoder {
            return match decoder.decode(line) {
                None => Ok(Flow::Continue),
                Some(Ok(event)) => self.show(event),
                Some(Err(err)) => {
                    self.summary.bad += 1;
                    eprintln!("warning: {err}");
                    Ok(Flow::Continue)
                }
            };
        }
        self.pipe_line(line)
    }

    fn idle(&mut self) -> Result<(), RunError> {
        self.flush()
    }
}

impl Printer<'_> {
    /// A record not shown straight from its bytes: nobtf's own, held,
    /// filtered, not ASCII, or bad (counted and warned about).
    #[inline(never)]
    fn sample_parsed(&mut self, cpu: Option<u32>, data: &[u8]) -> Result<Flow, RunError> {
        // Used where parsed: moving it out of the `Result` copied its 72
        // bytes (at opt-level "z", byte by byte).
        let parsed = probe_event::parse_ref(data);
        let raw = match &parsed {
            Ok(raw) => raw,
            Err(err) => {
                self.summary.bad += 1;
                eprintln!("warning: {err}");
                return Ok(Flow::Continue);
            }
        };
        self.show(event(cpu.unwrap_or(raw.cpu), raw))
    }

    /// Whether an event of `pid` is printed at once as a text line: not
    /// nobtf's own, not filtered out, not held or past the end (what
    /// `show` checks, on the record's pid before any parsing).
    fn shows_straight(&self, pid: u32) -> bool {
        self.opts.format == output::Format::Text
            && pid != self.me
            && self.opts.pid.is_none_or(|p| p == pid)
            && !self.stopping
            && !self.done
            && self.held.is_none()
    }

    /// Keeps nobtf's own event for the canary, or shows (or holds) it.
    fn show(&mut self, event: Event<'_>) -> Result<Flow, RunError> {
        if event.pid == self.me {
            self.own.push(match event.kind {
                EventKind::Entry { filename, refcnt } => Seen::Entry {
                    filename: filename.into_owned(),
                    refcnt,
                },
                EventKind::Exit { ret } => Seen::Exit { ret },
            });
            return Ok(Flow::Continue);
        }
        if self.opts.pid.is_some_and(|p| p != event.pid) || self.stopping || self.done {
            return Ok(Flow::Continue);
        }
        if let Some(held) = self.held.as_mut() {
            held.push(output::line(self.opts.format, &event));
            return Ok(Flow::Continue);
        }
        self.lines
            .append(&mut self.pending, self.opts.format, &event);
        self.gathered()
    }

    /// A line of the BPF probes' `bpf_trace_printk` (`--trace-pipe`).
    fn pipe_line(&mut self, line: &str) -> Result<Flow, RunError> {
        let Some(probe_line) = pipe_line::parse(line) else {
            return Ok(Flow::Continue);
        };
        if probe_line.pid == Some(self.me)
            && let Some(seen) = probe_line.seen
        {
            self.own.push(seen);
            return Ok(Flow::Continue);
        }
        if self
            .opts
            .pid
            .is_some_and(|want| probe_line.pid != Some(want))
            || self.stopping
        {
            return Ok(Flow::Continue);
        }
        if let Some(held) = self.held.as_mut() {
            held.push(line.to_string());
            return Ok(Flow::Continue);
        }
        self.pending.extend(line.as_bytes());
        self.pending.push(b'\n');
        self.gathered()
    }
}

impl Witness for Printer<'_> {
    fn own(&mut self) -> &mut Vec<Seen> {
        &mut self.own
    }

    fn lost_total(&self) -> u64 {
        self.summary.lost.iter().map(|(_, n)| n).sum()
    }
}

/// The event a record holds, borrowing its strings.
pub fn event<'a>(cpu: u32, raw: &probe_event::EventRef<'a>) -> Event<'a> {
    let kind = match raw.kind {
        ProbeEventKind::Entry => EventKind::Entry {
            filename: probe_event::c_str(raw.filename),
            refcnt: raw.refcnt(),
        },
        ProbeEventKind::Exit => EventKind::Exit { ret: raw.ret },
    };
    Event {
        ts_ns: raw.ts_ns,
        cpu,
        pid: raw.pid,
        tid: raw.tid,
        comm: probe_event::c_str(raw.comm),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_text() {
        let s = Summary {
            delivered: 2,
            lost: vec![(0, 0), (1, 3)],
            bad: 0,
            trace_pipe: false,
        };
        assert_eq!(
            s.to_string(),
            "nobtf: 2 events delivered, 3 lost (cpu0=0 cpu1=3)"
        );
    }
}
