//! `nobtf run unlink`: plan for this kernel, build the probes, set them up
//! in a session, prove the profile with the canary, then print events until
//! a stop condition. This module is the unlink front end's event handling:
//! parsing records, filtering by pid, counting, holding lines while the
//! canary runs, and accounting for losses.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use probes::event::{self as probe_event, EventKind as ProbeEventKind};
use probes::unlink;
use probes::{ProbeKind as ProgKind, Program};

use crate::attach::{AttachMode, AttachPoint, stale};
use crate::canary::{self, CanaryError, Expected, Outcome, Seen, Witness};
use crate::detect::{Report, Scope};
use crate::load;
use crate::output::{self, Event, EventKind, Format};
use crate::pipe_line;
use crate::plan::{self, PROFILE_FIX, PlanError, ReadChoice, UnlinkRequest};
use crate::session::{Events, Flow, ProgramSpec, Session, SessionError, Setup, write_error};
use crate::sys;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `--offsets FILE`; `None` = the builtin profile where it fits.
    pub offsets: Option<PathBuf>,
    pub format: Format,
    pub command: Option<String>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub pid: Option<u32>,
    pub attach: AttachMode,
    pub read: ReadChoice,
    pub trace_pipe: bool,
    /// Data pages per CPU ring (a power of two).
    pub buffer_pages: usize,
    /// Run the canary before showing events.
    pub verify: bool,
    /// Report the start-up steps' times.
    pub verbose: bool,
}

/// With `--verbose`, each start-up step's time since the previous one.
struct Steps {
    verbose: bool,
    last: Instant,
}

impl Steps {
    fn done(&mut self, step: &str) {
        if self.verbose {
            let now = Instant::now();
            eprintln!(
                "nobtf: {step}: {:.1} ms",
                now.duration_since(self.last).as_secs_f64() * 1000.0
            );
            self.last = now;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Encode(#[from] probes::BuildError),
    #[error("--buffer-pages {0}: the kernel needs a power of two")]
    BufferPages(usize),
    #[error(transparent)]
    Session(SessionError),
    #[error(transparent)]
    Canary(#[from] CanaryError),
}

impl From<SessionError> for RunError {
    /// A function that cannot be probed is named as `check` names it.
    fn from(err: SessionError) -> RunError {
        match err {
            SessionError::Unprobeable { function, why, .. } => {
                RunError::Plan(PlanError::Function {
                    name: function,
                    why,
                })
            }
            SessionError::Plan(err) => RunError::Plan(err),
            err => RunError::Session(err),
        }
    }
}

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

/// Run to completion, printing events to `out`. `started` is when the
/// process began, for the time-to-attach report.
pub fn run(opts: &RunOptions, out: &mut dyn Write, started: Instant) -> Result<Summary, RunError> {
    if !opts.buffer_pages.is_power_of_two() {
        return Err(RunError::BufferPages(opts.buffer_pages));
    }
    let mut steps = Steps {
        verbose: opts.verbose,
        last: started,
    };
    steps.done("process start and arguments");
    let mut report = Report::detect(Scope::Start);
    report.basic()?;
    if let Ok(tracefs) = &report.tracefs {
        stale::sweep(tracefs, false);
    }
    let request = UnlinkRequest {
        offsets: opts.offsets.clone(),
        read: opts.read,
        trace_pipe: opts.trace_pipe,
    };
    let plan = plan::run_plan(&mut report, &request, opts.attach)
        .map_err(|problems| problems.into_iter().next().expect("a refusal names why"))?;
    steps.done("kernel features, stale probes, profile and building the programs");
    if let Ok(kernel) = &report.kernel
        && plan.probes.profile.kernel.release != kernel.release
    {
        eprintln!(
            "warning: the offsets profile is for kernel {}, this kernel is {}",
            plan.probes.profile.kernel.release, kernel.release
        );
    }
    let mut session = Session::new(Setup {
        attach: plan.attach.clone(),
        load: plan.load,
        tracefs: report.tracefs.clone(),
        ring_pages: opts.buffer_pages,
        clone_fix: PROFILE_FIX,
    })?;
    session.create_maps(
        plan.programs
            .iter()
            .flat_map(|p| p.maps().iter().map(Into::into)),
    )?;
    steps.done("maps and perf rings");
    for program in &plan.programs {
        let insns = program.encode(|name| session.map(name).map(|m| m.raw()))?;
        let spec = ProgramSpec {
            name: program.name(),
            point: attach_point(program),
            insns: &insns,
            license: load::GPL,
            disassembly: program,
        };
        session.load(&spec, &mut report)?;
    }
    steps.done("loading the programs (verifier)");
    if opts.trace_pipe {
        session.open_trace_pipe()?;
    }
    session.attach_all()?;
    steps.done("attaching");
    eprintln!(
        "nobtf: attached to {} entry and return ({}, {}, {}) in {} ms",
        unlink::FUNCTION,
        plan.attach,
        plan.probes.reader.name(),
        if opts.trace_pipe {
            "trace pipe"
        } else {
            "perf events"
        },
        started.elapsed().as_millis()
    );

    let mut printer = Printer {
        opts,
        out,
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
    };
    if opts.verify {
        printer.held = Some(Vec::new());
        match canary::check(&mut session, &mut printer, expected(&plan.probes))? {
            Outcome::Interrupted => {
                // Asked to stop: nothing was shown yet, nothing to judge.
                printer.stopping = true;
                printer.held = None;
            }
            Outcome::Passed => printer.release_held()?,
        }
        steps.done("canary");
    }
    if let (Some(command), false) = (&opts.command, printer.stopping) {
        session.run_command(command)?;
    }
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let result = if printer.stopping {
        Ok(())
    } else {
        session
            .stream(&mut printer, deadline)
            .and_then(|()| printer.flush())
    };
    session.end_command();
    if result.is_ok() && !opts.trace_pipe {
        printer.flush_lost(&mut session);
    }
    // Detach (dropping the session) before the signals are unblocked.
    drop(session);
    result.map(|()| printer.summary)
}

fn attach_point(program: &Program) -> AttachPoint {
    let function = program.function().to_string();
    match program.kind() {
        ProgKind::Kprobe => AttachPoint::Kprobe(function),
        ProgKind::Kretprobe => AttachPoint::Kretprobe(function),
    }
}

/// What the canary will check, and where the profile says it is read.
fn expected(probes: &plan::Probes) -> Expected {
    let profile = &probes.profile;
    let expected_field = |key: &str| {
        profile
            .field(key)
            .map(|f| format!("{key} (offset {})", f.offset))
    };
    let (name_field, refcnt_field) = match profile.unlink() {
        Ok(offsets::profile::UnlinkFacts {
            kind: offsets::profile::UnlinkArg::Filename { .. },
            ..
        }) => (
            expected_field(offsets::profile::FILENAME_NAME).unwrap_or_default(),
            expected_field(offsets::profile::FILENAME_REFCNT).ok(),
        ),
        Ok(facts) => (format!("the path argument ({})", facts.name_arg), None),
        Err(e) => (e.to_string(), None),
    };
    Expected {
        filename: String::new(),
        name_field,
        refcnt_field,
        profile: probes.profile_shown.clone(),
    }
}

/// The unlink front end's `Events`: shows other processes' events, keeps
/// nobtf's own (the canary's, the loss flush's) apart.
struct Printer<'a> {
    opts: &'a RunOptions,
    /// Buffered by the caller: flushed whenever the session runs dry.
    out: &'a mut dyn Write,
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
}

impl Printer<'_> {
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

    /// Shows the lines held while the canary ran.
    fn release_held(&mut self) -> Result<(), RunError> {
        for line in self.held.take().unwrap_or_default() {
            writeln!(self.out, "{line}").map_err(write_error)?;
            if let Flow::Stop = self.counted() {
                self.stopping = true;
                break;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RunError> {
        Ok(self.out.flush().map_err(write_error)?)
    }

    /// The kernel reports a full ring's losses (PERF_RECORD_LOST) only with
    /// the next sample that fits: make one on each CPU (a failed unlink of
    /// nobtf's own, never shown) so the summary counts every loss.
    fn flush_lost(&mut self, session: &mut Session) {
        let Ok(before) = sys::affinity() else {
            return;
        };
        let path = format!("/tmp/.nobtf-flush-{}", self.me);
        for cpu in session.ring_cpus() {
            if sys::set_affinity(&sys::CpuSet::only(cpu)).is_ok() {
                let _ = std::fs::remove_file(&path);
            }
        }
        if let Err(err) = sys::set_affinity(&before) {
            eprintln!("warning: {err}");
        }
        // After the stop: count losses, show nothing more.
        self.stopping = true;
        if let Err(err) = session.drain(self) {
            eprintln!("warning: {err}");
        }
    }
}

impl Events for Printer<'_> {
    type Error = RunError;

    fn sample(&mut self, cpu: u32, data: &[u8]) -> Result<Flow, RunError> {
        let raw = match probe_event::parse(data) {
            Ok(raw) => raw,
            Err(err) => {
                self.summary.bad += 1;
                eprintln!("warning: {err}");
                return Ok(Flow::Continue);
            }
        };
        let Some(event) = event(cpu, &raw) else {
            return Ok(Flow::Continue);
        };
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
        output::write_line(self.out, self.opts.format, &event).map_err(write_error)?;
        Ok(self.counted())
    }

    fn lost(&mut self, cpu: u32, count: u64) {
        if let Some((_, n)) = self.summary.lost.iter_mut().find(|(c, _)| *c == cpu) {
            *n += count;
        }
    }

    fn line(&mut self, line: &str) -> Result<Flow, RunError> {
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
        writeln!(self.out, "{line}").map_err(write_error)?;
        Ok(self.counted())
    }

    fn idle(&mut self) -> Result<(), RunError> {
        self.flush()
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

/// The event a record holds, borrowing its strings; `None` for a kind
/// nobtf does not know.
pub fn event(cpu: u32, raw: &probe_event::UnlinkEvent) -> Option<Event<'_>> {
    let kind = match raw.kind()? {
        ProbeEventKind::Entry => EventKind::Entry {
            filename: raw.filename_str(),
            refcnt: raw.refcnt(),
        },
        ProbeEventKind::Exit => EventKind::Exit { ret: raw.ret },
    };
    Some(Event {
        ts_ns: raw.ts_ns,
        cpu,
        pid: raw.pid,
        tid: raw.tid,
        comm: raw.comm_str(),
        kind,
    })
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

    #[test]
    fn unprobeable_functions_are_named_as_check_names_them() {
        let err = RunError::from(SessionError::Unprobeable {
            program: "unlink_entry".into(),
            function: "do_unlinkat".into(),
            why: "it is in /proc/kallsyms but not in available_filter_functions (notrace or blacklisted)".into(),
        });
        assert_eq!(
            err.to_string(),
            "do_unlinkat cannot be probed: it is in /proc/kallsyms but not in available_filter_functions (notrace or blacklisted)"
        );
    }
}
