//! Which back end traces: BPF programs (the kernel runs nobtf's bytecode)
//! or tracefs kprobe events whose fetch arguments the kernel reads itself,
//! for kernels without bpf(2) or without BPF kprobe programs. Decided once
//! from the `detect` report; `check` prints the choice and why, `run`
//! follows it. The unlink probes' tracefs form is built here, pure.

use std::fmt;
use std::path::PathBuf;

use kernel_headers::kprobe::ProbeKind;
use lang::tracefs::{Fetch, FetchArg, FetchType, ProbeEvent, Syntax};
use profile::{Profile, UnlinkArg};

use crate::attach::{self, GROUP};
use crate::detect::Report;
use crate::plan::{self, FUNCTION, PlanError, UnlinkRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// BPF where bpf(2) loads kprobe programs, else tracefs kprobe events.
    Auto,
    Bpf,
    Tracefs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Bpf,
    Tracefs,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Bpf => "bpf (nobtf's BPF programs on kprobes)",
            Backend::Tracefs => "tracefs (kprobe events with fetch arguments, no BPF)",
        })
    }
}

/// The back end and why it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub backend: Backend,
    pub why: String,
}

/// The back end `choice` resolves to here. `auto` falls back to tracefs
/// only when the kernel lacks BPF (no bpf(2), no BPF kprobe programs), not
/// when nobtf lacks the privilege: that is refused as BPF refuses it.
pub fn choose(report: &Report, choice: BackendChoice) -> Result<Chosen, PlanError> {
    let bpf = report.basic().map(|_| ());
    let chosen = |backend, why: String| Ok(Chosen { backend, why });
    match choice {
        BackendChoice::Bpf => chosen(Backend::Bpf, "asked for (--backend bpf)".into()),
        BackendChoice::Tracefs => chosen(Backend::Tracefs, "asked for (--backend tracefs)".into()),
        BackendChoice::Auto => match bpf {
            Ok(()) => chosen(Backend::Bpf, "bpf(2) loads kprobe programs".into()),
            Err(err @ (PlanError::NoBpf(_) | PlanError::NoKprobeProgs(_))) => {
                match &report.tracefs {
                    Ok(_) => chosen(Backend::Tracefs, format!("{err}")),
                    // tracefs is root's: the tracefs plan says to run as root.
                    Err(_) if report.euid != 0 => chosen(Backend::Tracefs, format!("{err}")),
                    Err(why) => Err(PlanError::Attach(format!(
                        "{err}, and tracefs kprobe events are not there either: {why}"
                    ))),
                }
            }
            Err(err) => Err(err),
        },
    }
}

/// What the tracefs back end sets up for the unlink probes.
#[derive(Debug, Clone)]
pub struct TracefsPlan {
    pub tracefs: PathBuf,
    pub profile: Profile,
    /// The profile as the user named it: the file, or `builtin`.
    pub profile_shown: String,
    /// What this kernel's kprobe events understand.
    pub syntax: Syntax,
    /// The entry event, then the return event.
    pub entry: ProbeEvent,
    pub exit: ProbeEvent,
}

/// The plan for `nobtf run unlink --backend tracefs`, or every reason it
/// cannot work here (`run` reports the first, `check` all).
pub fn tracefs_plan(
    report: &Report,
    request: &UnlinkRequest,
) -> Result<TracefsPlan, Vec<PlanError>> {
    let mut problems = Vec::new();
    if let Err(e) = &report.kernel {
        problems.push(PlanError::Kernel(e.clone()));
    }
    if let Err(e) = report.check_function() {
        problems.push(e);
    }
    if report.euid != 0 {
        problems.push(PlanError::Attach(
            "the tracefs back end writes kprobe_events and makes a tracing instance: run as root"
                .into(),
        ));
    }
    if request.read != plan::ReadChoice::Auto {
        problems.push(PlanError::Attach(
            "--read-helper chooses a BPF helper; the tracefs back end's reads are the kernel's fetch arguments: drop it, or pass --backend bpf".into(),
        ));
    }
    if request.trace_pipe {
        problems.push(PlanError::Attach(
            "--trace-pipe streams bpf_trace_printk, which needs the BPF back end".into(),
        ));
    }
    let tracefs = report.tracefs.clone().map_err(|e| {
        problems.push(PlanError::Attach(format!(
            "the tracefs back end needs kprobe events: {e}"
        )))
    });
    let profile = plan::choose_profile(request.offsets.as_ref(), report)
        .map_err(|e| problems.push(e))
        .ok();
    let syntax = tracefs
        .as_ref()
        .map_or_else(|()| Syntax::default(), |dir| syntax(dir));
    let events = profile.as_ref().map(|p| {
        unlink_events(
            p,
            attach::next_event_name(ProbeKind::Kprobe, FUNCTION),
            attach::next_event_name(ProbeKind::Kretprobe, FUNCTION),
            syntax,
        )
    });
    let events = match events {
        Some(Err(e)) => {
            problems.push(e);
            None
        }
        Some(Ok(events)) => Some(events),
        None => None,
    };
    match (tracefs, profile, events) {
        (Ok(tracefs), Some(profile), Some((entry, exit))) if problems.is_empty() => {
            Ok(TracefsPlan {
                tracefs,
                profile,
                profile_shown: request
                    .offsets
                    .as_ref()
                    .map_or_else(|| "builtin".to_string(), |p| p.display().to_string()),
                syntax,
                entry,
                exit,
            })
        }
        _ => Err(problems),
    }
}

/// What the kernel's kprobe events understand, from tracefs `dir`'s README.
pub fn syntax(dir: &std::path::Path) -> Syntax {
    Syntax::from_readme(&std::fs::read_to_string(dir.join("README")).unwrap_or_default())
}

/// Names of the unlink events' fetch arguments, as their lines print them.
pub const REFCNT: &str = "refcnt";
pub const NAME: &str = "name";
pub const RET: &str = "ret";
pub const COMM: &str = "comm";

/// The unlink probes as kprobe events: at entry the path (through
/// `filename.name`, or the user pointer itself on 4.x) and `filename.refcnt`
/// at the profile's offsets, the string last (its end is the line's); at
/// return the low half of the return value, sign-extended as the BPF probe
/// does (`int` since 6.0, `long` before).
pub fn unlink_events(
    profile: &Profile,
    entry_name: String,
    exit_name: String,
    syntax: Syntax,
) -> Result<(ProbeEvent, ProbeEvent), PlanError> {
    let facts = profile
        .unlink()
        .map_err(|e| PlanError::Build(probes::BuildError::Profile(e)))?;
    let arg = Fetch::Arg(facts.name_arg);
    // The task's name as it was when the probe fired, where the kernel can
    // fetch it: the line's comm column is looked up when it is read, and
    // may still be the parent's for a process that just exec'd. Last: 4.14
    // stores `$comm` without its NUL, so a string after it would run on.
    let comm: Vec<FetchArg> = syntax
        .comm
        .then(|| FetchArg {
            name: COMM.into(),
            fetch: Fetch::Comm,
            ty: FetchType::String,
        })
        .into_iter()
        .collect();
    let args = match facts.kind {
        UnlinkArg::Filename { name, refcnt } => [
            vec![FetchArg {
                name: REFCNT.into(),
                fetch: arg.clone().at(i64::from(refcnt.offset)),
                ty: FetchType::Signed(4),
            }],
            vec![FetchArg {
                name: NAME.into(),
                fetch: arg.at(i64::from(name.offset)).at(0),
                ty: FetchType::String,
            }],
            comm.clone(),
        ]
        .concat(),
        UnlinkArg::UserPath => [
            vec![FetchArg {
                name: NAME.into(),
                fetch: arg.at(0),
                ty: FetchType::UserString,
            }],
            comm.clone(),
        ]
        .concat(),
    };
    let event = |kind, name, args| ProbeEvent {
        kind,
        group: GROUP.into(),
        name,
        function: FUNCTION.into(),
        args,
    };
    Ok((
        event(ProbeKind::Kprobe, entry_name, args),
        event(
            ProbeKind::Kretprobe,
            exit_name,
            [
                vec![FetchArg {
                    name: RET.into(),
                    fetch: Fetch::Retval,
                    ty: FetchType::Signed(4),
                }],
                comm,
            ]
            .concat(),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::test_report;
    use kernel_headers::pt_regs::x86_64::ABI;

    fn lines(profile: &Profile, syntax: Syntax) -> (String, String) {
        let (entry, exit) = unlink_events(profile, "e".into(), "x".into(), syntax).unwrap();
        (
            entry.definition(&ABI, syntax).unwrap(),
            exit.definition(&ABI, syntax).unwrap(),
        )
    }

    #[test]
    fn the_builtin_profile_reads_struct_filename() {
        let profile = profile::builtin::FILENAME.profile("5.10.0");
        assert_eq!(
            lines(&profile, Syntax::default()),
            (
                "p:nobtf/e do_unlinkat refcnt=+16(%si):s32 name=+0(+0(%si)):string".to_string(),
                "r:nobtf/x do_unlinkat ret=$retval:s32".to_string()
            )
        );
    }

    #[test]
    fn the_4_14_profile_reads_the_user_pointer() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/profiles/linux-4.14.toml"
        ))
        .unwrap();
        let profile = Profile::from_toml_str(&text).unwrap();
        assert_eq!(
            lines(&profile, Syntax::default()).0,
            "p:nobtf/e do_unlinkat name=+0(%si):string"
        );
        assert_eq!(
            lines(
                &profile,
                Syntax {
                    ustring: true,
                    comm: true
                }
            )
            .0,
            "p:nobtf/e do_unlinkat name=+0(%si):ustring comm=$comm:string"
        );
    }

    #[test]
    fn auto_falls_back_only_when_the_kernel_lacks_bpf() {
        let mut report = test_report(Some(libc::ENOSYS), 0);
        report.tracefs = Ok("/sys/kernel/tracing".into());
        let chosen = choose(&report, BackendChoice::Auto).unwrap();
        assert_eq!(chosen.backend, Backend::Tracefs);
        assert!(chosen.why.contains("CONFIG_BPF_SYSCALL"), "{}", chosen.why);
        let chosen = choose(&test_report(None, 0), BackendChoice::Auto).unwrap();
        assert_eq!(chosen.backend, Backend::Bpf);
        // Not privileged: BPF's refusal, not a silent switch.
        let mut report = test_report(Some(libc::EPERM), 1000);
        report.tracefs = Ok("/sys/kernel/tracing".into());
        assert!(
            choose(&report, BackendChoice::Auto)
                .unwrap_err()
                .to_string()
                .starts_with("not allowed to load BPF programs")
        );
        let report = test_report(Some(libc::ENOSYS), 1000);
        let problems = tracefs_plan(
            &report,
            &UnlinkRequest {
                offsets: None,
                read: plan::ReadChoice::Auto,
                trace_pipe: false,
            },
        )
        .unwrap_err();
        assert_eq!(
            (
                choose(&report, BackendChoice::Auto).unwrap().backend,
                problems[0].to_string()
            ),
            (
                Backend::Tracefs,
                "no way to attach: the tracefs back end writes kprobe_events and makes a tracing instance: run as root".to_string()
            )
        );
        let report = test_report(Some(libc::ENOSYS), 0);
        let err = choose(&report, BackendChoice::Auto)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("and tracefs kprobe events are not there either: no tracefs"),
            "{err}"
        );
        assert_eq!(
            choose(&report, BackendChoice::Tracefs).unwrap().backend,
            Backend::Tracefs
        );
    }

    #[test]
    fn tracefs_plan_names_what_is_missing() {
        let report = test_report(Some(libc::ENOSYS), 0);
        let request = UnlinkRequest {
            offsets: None,
            read: plan::ReadChoice::Auto,
            trace_pipe: false,
        };
        let problems = tracefs_plan(&report, &request).unwrap_err();
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            ["no way to attach: the tracefs back end needs kprobe events: no tracefs"]
        );
        let mut report = report;
        report.tracefs = Ok("/t".into());
        let plan = tracefs_plan(&report, &request).unwrap();
        assert_eq!(plan.profile_shown, "builtin");
        assert_eq!(plan.entry.kind, ProbeKind::Kprobe);
        assert!(
            plan.exit.name.contains("_r_do_unlinkat_"),
            "{}",
            plan.exit.name
        );
    }
}
