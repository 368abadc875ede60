//! `nobtf run unlink` on the tracefs back end: kprobe events with fetch
//! arguments (no BPF), enabled in a tracing instance of nobtf's own
//! (`instances/nobtf_<pid>`: its own buffer, trace pipe and overrun
//! counts; other tracers and the global buffer are not touched), read
//! through the session's trace pipe, shown by the same printer, proved by
//! the same canary.

use std::io::Write;
use std::time::Instant;

use lang::tracefs;

use super::decode::Decoder;
use super::printer::Printer;
use super::{RunError, RunOptions, Summary, first_refusal, warn_if_profile_is_for_another_kernel};
use crate::attach::{AttachMode, stale};
use crate::backend::{self, TracefsPlan};
use crate::detect::Report;
use crate::load::LoadOptions;
use crate::plan::{FUNCTION, PROFILE_FIX, PlanError};
use crate::session::Steps;
use crate::session::{Session, Setup};
use crate::tracefs_events::KprobeEvents;

pub(super) fn run(
    opts: &RunOptions,
    out: &mut dyn Write,
    started: Instant,
    report: &Report,
    mut steps: Steps,
    why: &str,
) -> Result<Summary, RunError> {
    if let Ok(tracefs) = &report.tracefs {
        stale::sweep(tracefs, false);
    }
    let plan: TracefsPlan =
        backend::tracefs_plan(report, &opts.unlink_request()).map_err(first_refusal)?;
    if opts.attach == AttachMode::Pmu {
        return Err(PlanError::Attach(
            "--attach pmu attaches BPF programs; the tracefs back end defines kprobe_events: drop it, or pass --backend bpf".into(),
        )
        .into());
    }
    warn_if_profile_is_for_another_kernel(report, &plan.profile.kernel.release);
    let root = plan.tracefs.clone();
    let syntax = plan.syntax;
    steps.done("kernel features, stale probes and the profile");

    // Dropped after the session (declared before it): the trace pipe is
    // closed before the instance is removed, which the kernel requires.
    let mut events = KprobeEvents::new(&root, opts.buffer_pages)?;
    let instance = events.instance().to_path_buf();
    for event in [&plan.entry, &plan.exit] {
        events
            .define(event, syntax, opts.verbose, PROFILE_FIX)
            .map_err(RunError::from)?;
    }
    let mut session = Session::new(Setup {
        attach: crate::attach::Attach::Tracefs(root.clone()),
        load: LoadOptions {
            kern_version: 0,
            names: false,
        },
        tracefs: Ok(instance.clone()),
        ring_pages: opts.buffer_pages,
        clone_fix: PROFILE_FIX,
    })?;
    session.open_trace_pipe()?;
    for event in [&plan.entry, &plan.exit] {
        // nobtf's own events stay in: the canary reads them.
        let filter = opts
            .pid
            .map(|pid| tracefs::pid_filter(&[pid, std::process::id()]));
        events.enable(event, filter.as_deref())?;
    }
    steps.done("kprobe events defined and enabled");
    if opts.verbose {
        eprintln!("nobtf: tracefs back end: {why}");
    }
    eprintln!(
        "nobtf: attached to {FUNCTION} entry and return (tracefs kprobe events with fetch arguments, in {}) in {} ms",
        instance.display(),
        started.elapsed().as_millis()
    );

    let decoder = Decoder {
        entry: plan.entry.clone(),
        exit: plan.exit.clone(),
    };
    let mut printer = Printer::new(opts, out, &session).with_decoder(&decoder);
    let expected = super::expected(&plan.profile, &plan.profile_shown);
    let result = super::verify_and_stream(&mut session, &mut printer, opts, expected, &mut steps);
    printer.set_lost(events.losses());
    drop(session);
    drop(events);
    result.map(|()| printer.into_summary())
}
