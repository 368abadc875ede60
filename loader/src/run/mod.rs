//! `nobtf run unlink`: plan for this kernel, build the probes, set them up
//! in a session, prove the profile with the canary, then print events until
//! a stop condition. `printer` is what is done with each event.

mod decode;
mod printer;
mod tracefs;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use probes::unlink;
use probes::{ProbeKind as ProgKind, Program};

use crate::attach::{AttachMode, AttachPoint, stale};
use crate::backend::{self, Backend, BackendChoice};
use crate::canary::{self, CanaryError, Expected, Outcome};
use crate::detect::{Report, Scope};
use crate::load;
use crate::output::Format;
use crate::plan::{self, PROFILE_FIX, PlanError, ReadChoice, UnlinkRequest};
use crate::session::{ProgramSpec, Session, SessionError, Setup, Steps};
use printer::Printer;
pub use printer::{Summary, event};

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
    /// `--perf-buffer`: the perf rings even where the ring buffer exists.
    pub perf_buffer: bool,
    /// Run the canary before showing events.
    pub verify: bool,
    /// Report the start-up steps' times.
    pub verbose: bool,
    /// BPF programs or tracefs kprobe events.
    pub backend: BackendChoice,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("building the probes: {0}")]
    Encode(#[from] probes::BuildError),
    #[error("--buffer-pages {0}: the kernel needs a power of two")]
    BufferPages(usize),
    #[error(transparent)]
    Session(SessionError),
    #[error(transparent)]
    Canary(#[from] CanaryError),
}

impl RunOptions {
    /// What either back end asks the planner for.
    fn unlink_request(&self) -> UnlinkRequest {
        UnlinkRequest {
            offsets: self.offsets.clone(),
            read: self.read,
            trace_pipe: self.trace_pipe,
        }
    }
}

/// The planner's first refusal, the one `run` reports.
fn first_refusal(problems: Vec<PlanError>) -> PlanError {
    problems.into_iter().next().expect("a refusal names why")
}

fn warn_if_profile_is_for_another_kernel(report: &Report, profile_release: &str) {
    if let Ok(kernel) = &report.kernel
        && profile_release != kernel.release
    {
        eprintln!(
            "warning: the offsets profile is for kernel {profile_release}, this kernel is {}",
            kernel.release
        );
    }
}

impl From<SessionError> for RunError {
    /// A function that cannot be probed is named as `check` names it.
    fn from(err: SessionError) -> RunError {
        err.into_plan()
            .map_or_else(RunError::Session, RunError::Plan)
    }
}

/// Run to completion, printing events to `out`. `started` is when the
/// process began, for the time-to-attach report.
pub fn run(opts: &RunOptions, out: &mut dyn Write, started: Instant) -> Result<Summary, RunError> {
    if !opts.buffer_pages.is_power_of_two() {
        return Err(RunError::BufferPages(opts.buffer_pages));
    }
    let mut steps = Steps::new(opts.verbose, started);
    steps.done("process start and arguments");
    let mut report = Report::detect(Scope::Start);
    report.ring_buffer &= !opts.perf_buffer;
    let chosen = backend::choose(&report, opts.backend)?;
    if chosen.backend == Backend::Tracefs {
        return tracefs::run(opts, out, started, &report, steps, &chosen.why);
    }
    report.basic()?;
    if let Ok(tracefs) = &report.tracefs {
        stale::sweep(tracefs, false);
    }
    let plan =
        plan::run_plan(&mut report, &opts.unlink_request(), opts.attach).map_err(first_refusal)?;
    steps.done("kernel features, stale probes, profile and building the programs");
    warn_if_profile_is_for_another_kernel(&report, &plan.probes.profile.kernel.release);
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
        plan::reader_name(plan.probes.reader),
        match plan.probes.choices.output {
            unlink::Output::TracePrintk => "trace pipe",
            unlink::Output::PerfEvents => "perf events",
            unlink::Output::RingBuffer => "ring buffer",
        },
        started.elapsed().as_millis()
    );
    if opts.verbose {
        eprintln!(
            "nobtf: comm read with {}",
            plan::comm_name(plan.probes.choices.comm)
        );
    }

    let mut printer = Printer::new(opts, out, &session);
    let expected = expected(&plan.probes.profile, &plan.probes.profile_shown);
    let result = verify_and_stream(&mut session, &mut printer, opts, expected, &mut steps);
    session.end_command();
    if result.is_ok() && !opts.trace_pipe {
        printer.flush_lost(&mut session);
    }
    if opts.verbose {
        eprintln!(
            "nobtf: reader: {}; {} writes of output",
            session.stats,
            printer.writes()
        );
    }
    // Detach (dropping the session) before the signals are unblocked.
    drop(session);
    result.map(|()| printer.into_summary())
}

/// What both back ends do once attached: the canary (unless `--no-verify`),
/// then `-c CMD`, then events until a stop condition; the command is ended
/// whatever happened.
fn verify_and_stream(
    session: &mut Session,
    printer: &mut Printer<'_>,
    opts: &RunOptions,
    expected: Expected,
    steps: &mut Steps,
) -> Result<(), RunError> {
    if opts.verify {
        printer.hold();
        match canary::check(session, printer, expected)? {
            // Asked to stop: nothing was shown yet, nothing to judge.
            Outcome::Interrupted => printer.stop_holding(),
            Outcome::Passed => printer.release_held()?,
        }
        steps.done("canary");
    }
    if let (Some(command), false) = (&opts.command, printer.stopping()) {
        session.run_command(command)?;
    }
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let result = if printer.stopping() {
        Ok(())
    } else {
        session
            .stream(printer, deadline)
            .and_then(|()| printer.flush())
    };
    session.end_command();
    result
}

fn attach_point(program: &Program) -> AttachPoint {
    let function = program.function().to_string();
    match program.kind() {
        ProgKind::Kprobe => AttachPoint::Kprobe(function),
        ProgKind::Kretprobe => AttachPoint::Kretprobe(function),
    }
}

/// What the canary will check, and where the profile says it is read.
fn expected(profile: &profile::Profile, profile_shown: &str) -> Expected {
    let expected_field = |key: &str| {
        profile
            .field(key)
            .map(|f| format!("{key} (offset {})", f.offset))
    };
    let (name_field, refcnt_field) = match profile.unlink() {
        Ok(profile::UnlinkFacts {
            kind: profile::UnlinkArg::Filename { .. },
            ..
        }) => (
            expected_field(profile::FILENAME_NAME).unwrap_or_default(),
            expected_field(profile::FILENAME_REFCNT).ok(),
        ),
        Ok(facts) => (format!("the path argument ({})", facts.name_arg), None),
        Err(e) => (e.to_string(), None),
    };
    Expected {
        filename: String::new(),
        name_field,
        refcnt_field,
        profile: profile_shown.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
