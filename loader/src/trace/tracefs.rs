//! `nobtf trace` on the tracefs back end: a program that needs no BPF
//! (`lang::tracefs_program`) as kprobe events with fetch arguments and
//! event filters, in nobtf's own tracing instance (the pieces `nobtf run`
//! uses), its trace-pipe lines printed by the same printer as the BPF
//! programs' records. What needs BPF is refused in one line.

use std::io::Write;

use kernel_headers::kprobe::ProbeKind;
use lang::Target;
use lang::tracefs_program::{self, TranslateError};

use super::clock::LocalClock;
use super::printer::Printer;
use super::target::Tracepoints;
use super::{TraceError, TraceOptions, begin, drive};
use crate::attach::{self, AttachMode, GROUP, stale};
use crate::backend;
use crate::detect::Report;
use crate::fields::Fields;
use crate::load::LoadOptions;
use crate::plan::{PlanError, ReadChoice};
use crate::session::{Session, Setup, Steps};
use crate::tracefs_events::KprobeEvents;

pub(super) fn run(
    opts: &TraceOptions,
    out: &mut dyn Write,
    report: &Report,
    mut steps: Steps,
    why: &str,
) -> Result<(), TraceError> {
    // `why` is the reason tracefs traces: `--backend tracefs`, or what the
    // kernel lacks.
    refuse_bpf_options(opts)?;
    let root = report
        .tracefs
        .clone()
        .map_err(|e| PlanError::Attach(format!("the tracefs back end needs kprobe events: {e}")))?;
    if report.euid != 0 {
        return Err(PlanError::Attach(
            "the tracefs back end writes kprobe_events and makes a tracing instance: run as root"
                .into(),
        )
        .into());
    }
    stale::sweep(&root, false);
    let version = report
        .kernel
        .as_ref()
        .map_err(|e| PlanError::Kernel(e.clone()))?
        .version;
    let abi = kernel_headers::pt_regs::abi(std::env::consts::ARCH).ok_or_else(|| {
        PlanError::Kernel(format!(
            "no register layout for architecture {}",
            std::env::consts::ARCH
        ))
    })?;
    let kernel = lang::kernel::Kernel::for_release(version, abi);
    let needs_fields = lang::fields_used(&opts.program, kernel).map_or(true, |f| !f.is_empty());
    let fields = if needs_fields {
        Fields::choose(opts.offsets.as_ref(), report)?
    } else {
        Fields::Nothing
    };
    if opts.verbose && needs_fields {
        eprintln!("nobtf: struct fields from {}", fields.describe());
    }
    let tracepoints = Tracepoints::new(Some(&root));
    let target = Target {
        fields: &fields,
        tracepoints: &tracepoints,
        kernel,
    };
    let syntax = backend::syntax(&root);
    let pids = match opts.pid {
        Some(pid) => threads(pid),
        None => Vec::new(),
    };
    let mut name = |kind: ProbeKind, function: &str| attach::next_event_name(kind, function);
    let program = translate(
        opts,
        &target,
        syntax,
        &mut name,
        &pids,
        why,
        "; without BPF, nobtf trace runs printf of arguments, struct members, str(), retval, comm, tid and cpu, with predicates comparing them to constants",
    )?;
    steps.done("kernel features and translating to kprobe events");
    let via = super::live::Via::Tracefs {
        root: &root,
        syntax,
    };
    super::live::check(opts, report, &fields, kernel, &tracepoints, via)?;

    // Dropped after the session (declared before it): the trace pipe is
    // closed before the instance is removed.
    let mut events = KprobeEvents::new(&root, opts.buffer_pages)?;
    for probe in &program.probes {
        events.define(&probe.event, syntax, opts.verbose, "")?;
    }
    if opts.verbose {
        super::say_lowered(&program.lowered);
    }
    let mut session = Session::new(Setup {
        attach: crate::attach::Attach::Tracefs(root.clone()),
        load: LoadOptions {
            kern_version: 0,
            names: false,
        },
        tracefs: Ok(events.instance().to_path_buf()),
        ring_pages: opts.buffer_pages,
        clone_fix: "",
    })?;
    session.open_trace_pipe()?;
    for probe in &program.probes {
        if opts.verbose
            && let Some(filter) = &probe.filter
        {
            eprintln!("nobtf: filter of {}: {filter}", probe.event.name);
        }
        events.enable(&probe.event, probe.filter.as_deref())?;
    }
    steps.done("kprobe events defined and enabled");
    eprintln!(
        "nobtf: tracing with tracefs kprobe events, no BPF ({why}), in {}",
        events.instance().display()
    );
    let clock = LocalClock::new();
    let mut printer =
        Printer::new(&program.compiled, opts.format, out, opts.pid, &clock).with_tracefs(&program);
    let count = lang::expand::bpftrace_probe_count(&opts.program, &tracepoints, abi);
    let result = begin(opts, count, &session, &mut printer).and_then(|stopped| {
        drive(opts, &mut session, &mut printer, stopped, |_, printer| {
            printer.lost += events.losses().iter().map(|(_, n)| n).sum::<u64>();
        })
    });
    drop(session);
    drop(events);
    result
}

/// The threads of process `pid` now: `common_pid`, the event filter's
/// field, is a thread id. Threads it starts later are not traced (the BPF
/// back end compares the thread group id instead).
fn threads(pid: u32) -> Vec<u32> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if tids.is_empty() {
        tids.push(pid);
    }
    tids.sort_unstable();
    tids
}
/// The program as kprobe events (a real run and a dry run alike), refused
/// where it needs BPF: `... needs BPF ({why}){more}`, the map refusal
/// without `more`. BEGIN and END run in user space, but there are no maps
/// to hold what they write.
pub(super) fn translate(
    opts: &TraceOptions,
    target: &Target,
    syntax: lang::tracefs::Syntax,
    name: &mut dyn FnMut(ProbeKind, &str) -> String,
    pids: &[u32],
    why: &str,
    more: &str,
) -> Result<tracefs_program::TracefsProgram, TraceError> {
    let program = tracefs_program::translate(
        &opts.program,
        target,
        &opts.params,
        syntax,
        GROUP,
        name,
        pids,
    )
    .map_err(|e| match e {
        TranslateError::Program(e) => TraceError::Program(e.render(&opts.program)),
        TranslateError::NeedsBpf(refusal) => TraceError::NeedsBpf(format!(
            "tracefs back end: {} needs BPF ({why}){more}",
            refusal.render(&opts.program)
        )),
    })?;
    if let Some(map) = program.compiled.maps.first() {
        return Err(TraceError::NeedsBpf(format!(
            "tracefs back end: the map `{}` needs BPF ({why})",
            map.name
        )));
    }
    Ok(program)
}

/// The options that choose how BPF programs attach or read, refused on the
/// tracefs back end (a real run and a dry run alike).
pub(super) fn refuse_bpf_options(opts: &TraceOptions) -> Result<(), TraceError> {
    let refuse = |what: &str| -> TraceError {
        PlanError::Attach(format!(
            "{what}; the tracefs back end defines kprobe events: drop it, or pass --backend bpf"
        ))
        .into()
    };
    if opts.attach == AttachMode::Pmu {
        return Err(refuse("--attach pmu attaches BPF programs"));
    }
    if opts.read != ReadChoice::Auto {
        return Err(refuse("--read-helper chooses a BPF helper"));
    }
    Ok(())
}
