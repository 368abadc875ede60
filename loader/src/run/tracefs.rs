//! `nobtf run unlink` on the tracefs back end: kprobe events with fetch
//! arguments (no BPF), enabled in a tracing instance of nobtf's own
//! (`instances/nobtf_<pid>`: its own buffer, trace pipe and overrun
//! counts; other tracers and the global buffer are not touched), read
//! through the session's trace pipe, shown by the same printer, proved by
//! the same canary.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kernel_headers::pt_regs;
use lang::tracefs::{self, ProbeEvent, Value};

use super::printer::Printer;
use super::{RunError, RunOptions, Summary, first_refusal, warn_if_profile_is_for_another_kernel};
use crate::attach::{AttachError, AttachMode, GROUP, diagnose, stale, write_kprobe_events};
use crate::backend::{self, COMM, NAME, REFCNT, RET, TracefsPlan};
use crate::detect::Report;
use crate::load::LoadOptions;
use crate::output::{Event, EventKind};
use crate::plan::{FUNCTION, PROFILE_FIX, PlanError};
use crate::session::Steps;
use crate::session::{Session, SessionError, Setup};

/// The tracing instance's name for process `pid`; `stale` removes those
/// whose process is gone.
pub fn instance_name(pid: u32) -> String {
    format!("{GROUP}_{pid}")
}

/// Turns the unlink events' trace-pipe lines into events.
pub struct Decoder {
    entry: ProbeEvent,
    exit: ProbeEvent,
}

impl Decoder {
    /// `None` for a line of another event; an error for one of ours that
    /// does not read.
    pub fn decode<'l>(&self, line: &'l str) -> Option<Result<Event<'l>, String>> {
        let parsed = tracefs::parse_line(line)?;
        let probe = [&self.entry, &self.exit]
            .into_iter()
            .find(|e| e.name == parsed.event)?;
        let values = match tracefs::parse_args(&probe.args, parsed.args) {
            Ok(values) => values,
            Err(err) => return Some(Err(format!("trace line of {}: {err}", probe.name))),
        };
        let value = |name: &str| {
            probe
                .args
                .iter()
                .position(|a| a.name == name)
                .map(|i| &values[i])
        };
        let kind = if probe.name == self.entry.name {
            EventKind::Entry {
                filename: match value(NAME) {
                    Some(Value::Str(s)) => s.clone().into(),
                    // A path the kernel could not read prints as empty, as
                    // the BPF probe's failed read does.
                    _ => "".into(),
                },
                refcnt: match value(REFCNT) {
                    Some(Value::Int(n)) => Some(*n as i32),
                    _ => None,
                },
            }
        } else {
            EventKind::Exit {
                ret: match value(RET) {
                    Some(Value::Int(n)) => *n,
                    _ => return Some(Err(format!("trace line of {}: no ret", probe.name))),
                },
            }
        };
        Some(Ok(Event {
            ts_ns: parsed.ts_ns,
            cpu: parsed.cpu,
            // The trace line shows the thread id; the filter's `common_pid` is it too.
            pid: parsed.tid,
            tid: parsed.tid,
            comm: match value(COMM) {
                Some(Value::Str(s)) => s.clone().into(),
                _ => parsed.comm.into(),
            },
            kind,
        }))
    }
}

fn write(path: &Path, text: &str) -> Result<(), SessionError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|err| SessionError::Io {
            what: format!("opening {}", path.display()),
            err,
        })?;
    file.write_all(text.as_bytes())
        .map_err(|err| SessionError::Io {
            what: format!("writing `{text}` to {}", path.display()),
            err,
        })
}

/// What was created in tracefs, removed on drop in this order: the
/// instance (which disables its events), then the events.
#[derive(Default)]
struct Created {
    instance: Option<PathBuf>,
    events: Vec<(PathBuf, String)>,
}

impl Drop for Created {
    fn drop(&mut self) {
        if let Some(dir) = self.instance.take()
            && let Err(err) = fs::remove_dir(&dir)
        {
            eprintln!(
                "warning: could not remove tracing instance {} ({err}); remove it with: rmdir {}",
                dir.display(),
                dir.display()
            );
        }
        for (tracefs, removal) in self.events.drain(..).rev() {
            if let Err(err) = write_kprobe_events(&tracefs, &removal) {
                eprintln!(
                    "warning: could not remove kprobe event ({err}); remove it with: echo '{removal}' >> {}",
                    tracefs.join("kprobe_events").display()
                );
            }
        }
    }
}

/// nobtf's tracing instance and the kprobe events enabled in it, for
/// `run` and `trace` alike: removed on drop (drop the session, whose trace
/// pipe reads the instance, first: the kernel keeps a read instance).
pub(crate) struct KprobeEvents {
    root: PathBuf,
    instance: PathBuf,
    created: Created,
}

impl KprobeEvents {
    /// Makes the instance `instances/nobtf_<pid>` under tracefs `root`, its
    /// buffer `pages` pages per CPU.
    pub fn new(root: &Path, pages: usize) -> Result<KprobeEvents, SessionError> {
        let mut created = Created::default();
        let instance = root
            .join("instances")
            .join(instance_name(std::process::id()));
        fs::create_dir(&instance).map_err(|err| SessionError::Io {
            what: format!("creating tracing instance {}", instance.display()),
            err,
        })?;
        created.instance = Some(instance.clone());
        let kb = pages * crate::sys::page_size() / 1024;
        write(&instance.join("buffer_size_kb"), &kb.to_string())?;
        Ok(KprobeEvents {
            root: root.to_path_buf(),
            instance,
            created,
        })
    }

    pub fn instance(&self) -> &Path {
        &self.instance
    }

    /// Defines `event` in one write (removed on drop); a function that
    /// cannot be probed is named as `check` names it (`clone_fix` says
    /// how to follow a compiler's clone).
    pub fn define(
        &mut self,
        event: &ProbeEvent,
        syntax: tracefs::Syntax,
        verbose: bool,
        clone_fix: &str,
    ) -> Result<(), SessionError> {
        let definition = event
            .definition(pt_regs::NATIVE, syntax)
            .map_err(|e| PlanError::Attach(e.to_string()))?;
        if verbose {
            eprintln!("nobtf: {definition}");
        }
        write_kprobe_events(&self.root, &definition).map_err(|err| {
            let err = AttachError::Define {
                definition: definition.clone(),
                path: self.root.join("kprobe_events").display().to_string(),
                err,
            };
            match diagnose::explain_attach_failure(
                &event.function,
                &err,
                Some(&self.root),
                clone_fix,
            ) {
                Some(why) => SessionError::Unprobeable {
                    program: event.name.clone(),
                    function: event.function.clone(),
                    why,
                },
                None => err.into(),
            }
        })?;
        self.created
            .events
            .push((self.root.clone(), event.removal()));
        Ok(())
    }

    /// Sets `event`'s filter in the instance (when there is one) and
    /// enables it there.
    pub fn enable(&self, event: &ProbeEvent, filter: Option<&str>) -> Result<(), SessionError> {
        let dir = self.instance.join("events").join(GROUP).join(&event.name);
        if let Some(filter) = filter {
            write(&dir.join("filter"), filter).map_err(|err| match err {
                SessionError::Io { err, .. } => SessionError::Plan(PlanError::Attach(format!(
                    "the kernel refused the event filter `{filter}` of {} ({err})",
                    event.name
                ))),
                other => other,
            })?;
        }
        write(&dir.join("enable"), "1")
    }

    /// Per-CPU losses of the instance's buffer so far.
    pub fn losses(&self) -> Vec<(u32, u64)> {
        losses(&self.instance)
    }
}

/// Per-CPU losses of the instance's buffer: events overwritten before they
/// were read (`overrun`) and events refused when full (`dropped events`).
fn losses(instance: &Path) -> Vec<(u32, u64)> {
    let mut lost = Vec::new();
    let Ok(dirs) = fs::read_dir(instance.join("per_cpu")) else {
        return lost;
    };
    for dir in dirs.flatten() {
        let name = dir.file_name();
        let Some(cpu) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cpu"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let text = fs::read_to_string(dir.path().join("stats")).unwrap_or_default();
        lost.push((cpu, parse_losses(&text)));
    }
    lost.sort_unstable();
    lost
}

/// `overrun` plus `dropped events` of a `per_cpu/cpuN/stats` file.
pub fn parse_losses(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| matches!(k.trim(), "overrun" | "dropped events"))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> Decoder {
        let profile = profile::builtin::FILENAME.profile("5.10.0");
        let (entry, exit) = backend::unlink_events(
            &profile,
            "nobtf_1_p_do_unlinkat_0".into(),
            "nobtf_1_r_do_unlinkat_1".into(),
            lang::tracefs::Syntax::default(),
        )
        .unwrap();
        Decoder { entry, exit }
    }

    #[test]
    fn lines_become_the_bpf_back_ends_events() {
        let d = decoder();
        let entry = d
            .decode(r#"              rm-99      [001] d...     3.402624: nobtf_1_p_do_unlinkat_0: (do_unlinkat+0x0/0x2b0) refcnt=1 name="/tmp/a.txt""#)
            .unwrap()
            .unwrap();
        assert_eq!(
            entry,
            Event {
                ts_ns: 3_402_624_000,
                cpu: 1,
                pid: 99,
                tid: 99,
                comm: "rm".into(),
                kind: EventKind::Entry {
                    filename: "/tmp/a.txt".into(),
                    refcnt: Some(1)
                }
            }
        );
        let exit = d
            .decode("rm-99 [001] d... 3.405658: nobtf_1_r_do_unlinkat_1: (do_syscall_64+0x33/0x80 <- do_unlinkat) ret=-2")
            .unwrap()
            .unwrap();
        assert_eq!(exit.kind, EventKind::Exit { ret: -2 });
        // With `$comm`, the name the task had when the probe fired.
        let profile = profile::builtin::FILENAME.profile("5.10.0");
        let syntax = lang::tracefs::Syntax {
            comm: true,
            ustring: true,
        };
        let (entry, exit) =
            backend::unlink_events(&profile, "e".into(), "x".into(), syntax).unwrap();
        let with_comm = Decoder { entry, exit };
        let exit = with_comm
            .decode(r#"nobtf-9 [001] d... 3.4: x: (a <- do_unlinkat) ret=0 comm="rm""#)
            .unwrap()
            .unwrap();
        assert_eq!((exit.comm.as_ref(), exit.tid), ("rm", 9));
        // Another nobtf's event, or anything else: not ours.
        assert!(
            d.decode("rm-9 [001] d... 3.4: nobtf_2_r_do_unlinkat_1: (x) ret=0")
                .is_none()
        );
        assert!(
            d.decode("rm-9 [001] d... 3.4: nobtf_1_r_do_unlinkat_1: (x) nope")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn losses_add_overruns_and_drops() {
        let stats = "entries: 0\noverrun: 12\ncommit overrun: 0\nbytes: 0\noldest event ts: 0.0\nnow ts: 1.0\ndropped events: 3\nread events: 40\n";
        assert_eq!(parse_losses(stats), 15);
        assert_eq!(parse_losses(""), 0);
    }
}
