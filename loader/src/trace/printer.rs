//! What `nobtf trace` does with the programs' records: bpftrace's text or
//! JSON through `lang::report`. A record that asks for a map (print,
//! clear) or to stop is queued with everything after it, and the stream
//! stopped, so that the front end, which holds the session, acts on them
//! in order.

use std::collections::VecDeque;
use std::io::Write;

use lang::Compiled;
use lang::format::time::Clock;
use lang::output::Event;
use lang::report::{self, Format, ReportError, Step};
use lang::tracefs_program::TracefsProgram;

use super::TraceError;
use crate::session::{Events, Flow, write_error};

pub struct Printer<'a> {
    compiled: &'a Compiled,
    format: Format,
    /// The records' printer, each printf's format parsed once.
    records: report::Records<'a>,
    /// A record's bytes, formatted here and written at once.
    line: Vec<u8>,
    out: &'a mut dyn Write,
    /// Steps waiting for the front end, in order.
    pub pending: VecDeque<Step>,
    pub lost: u64,
    /// The trace has stopped: records still read only bring the rings'
    /// last loss counts, nothing more is shown.
    pub stopped: bool,
    /// An `exit()` ended the trace: the records after it are not shown.
    pub exited: bool,
    /// `-p PID`: stop when it is gone.
    pid: Option<u32>,
    pub pid_gone: bool,
    /// The tracefs back end's events, whose trace-pipe lines stand for
    /// the records.
    tracefs: Option<&'a TracefsProgram>,
    /// Output held back (BEGIN's, until the probes are attached).
    held: Option<Vec<u8>>,
}

impl<'a> Printer<'a> {
    pub fn new(
        compiled: &'a Compiled,
        format: Format,
        out: &'a mut dyn Write,
        pid: Option<u32>,
        clock: &'a dyn Clock,
    ) -> Printer<'a> {
        Printer {
            compiled,
            format,
            records: report::Records::new(compiled, format, clock),
            line: Vec::new(),
            out,
            pending: VecDeque::new(),
            lost: 0,
            stopped: false,
            exited: false,
            pid,
            pid_gone: false,
            tracefs: None,
            held: None,
        }
    }

    /// Reads the trace pipe's lines of `program`'s events as records.
    pub fn with_tracefs(mut self, program: &'a TracefsProgram) -> Printer<'a> {
        self.tracefs = Some(program);
        self
    }

    pub fn compiled(&self) -> &'a Compiled {
        self.compiled
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn clock(&self) -> &'a dyn Clock {
        self.records.clock()
    }

    /// A decoded event's output or request.
    pub fn event(&self, event: &Event) -> Result<Step, ReportError> {
        self.records.event(event)
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), TraceError> {
        match &mut self.held {
            Some(held) => held.extend_from_slice(bytes),
            None => self.out.write_all(bytes).map_err(write_error)?,
        }
        Ok(())
    }

    /// Writes `bytes` and flushes them, even while output is held.
    pub fn write_now(&mut self, bytes: &[u8]) -> Result<(), TraceError> {
        self.out.write_all(bytes).map_err(write_error)?;
        self.flush()
    }

    /// Holds what is written from now until [`Printer::release`].
    pub fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Writes what was held, and writes directly again.
    pub fn release(&mut self) -> Result<(), TraceError> {
        if let Some(held) = self.held.take() {
            self.write(&held)?;
        }
        self.flush()
    }

    pub fn flush(&mut self) -> Result<(), TraceError> {
        self.out.flush().map_err(write_error)?;
        Ok(())
    }

    /// Writes a step's bytes now, unless others wait before it.
    pub fn step(&mut self, step: Step) -> Result<Flow, TraceError> {
        match step {
            Step::Write(bytes) if self.pending.is_empty() => {
                self.write(&bytes)?;
                Ok(Flow::Continue)
            }
            step => {
                self.pending.push_back(step);
                Ok(Flow::Stop)
            }
        }
    }
}

impl Events for Printer<'_> {
    type Error = TraceError;

    fn sample(&mut self, _cpu: Option<u32>, data: &[u8]) -> Result<Flow, TraceError> {
        if self.stopped {
            return Ok(Flow::Continue);
        }
        self.line.clear();
        if let Some(step) = self.records.record(data, &mut self.line)? {
            return self.step(step);
        }
        if !self.pending.is_empty() {
            return self.step(Step::Write(self.line.clone()));
        }
        self.out.write_all(&self.line).map_err(write_error)?;
        Ok(Flow::Continue)
    }

    fn lost(&mut self, _cpu: u32, count: u64) {
        self.lost += count;
    }

    fn line(&mut self, line: &str) -> Result<Flow, TraceError> {
        let Some(program) = self.tracefs else {
            return Ok(Flow::Continue);
        };
        let Some(parsed) = lang::tracefs::parse_line(line) else {
            return Ok(Flow::Continue);
        };
        let Some(probe) = program.probe_of(&parsed) else {
            return Ok(Flow::Continue);
        };
        let comm = task_name(parsed.comm, parsed.tid);
        let events = program
            .events(probe, &parsed, &comm)
            .map_err(|e| TraceError::Line(e.to_string()))?;
        let mut flow = Flow::Continue;
        for event in &events {
            if let Flow::Stop = self.step(self.records.event(event)?)? {
                flow = Flow::Stop;
            }
        }
        Ok(flow)
    }

    fn idle(&mut self) -> Result<(), TraceError> {
        if let Some(pid) = self.pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            self.pid_gone = true;
        }
        self.flush()
    }
}

/// The task's name for a program without `$comm`: the line's comm column,
/// which the kernel looks up when the line is read. `<...>` means its
/// saved-cmdlines table had no entry; then the thread's name now, from
/// /proc, if the thread is still there, else `<...>` as the kernel shows it.
fn task_name(column: &str, tid: u32) -> String {
    if column != "<...>" {
        return column.to_string();
    }
    std::fs::read_to_string(format!("/proc/{tid}/comm"))
        .map(|c| c.trim_end_matches('\n').to_string())
        .unwrap_or_else(|_| column.to_string())
}

impl From<ReportError> for TraceError {
    fn from(err: ReportError) -> TraceError {
        TraceError::Report(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_comm_column_is_the_threads_name_while_it_lives() {
        let own = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(task_name("<...>", std::process::id()), own.trim_end());
        assert_eq!(task_name("rm", std::process::id()), "rm");
        // No such thread: the kernel's `<...>`.
        assert_eq!(task_name("<...>", u32::MAX), "<...>");
    }
}
