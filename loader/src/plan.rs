//! The plan: which path nobtf takes on this kernel, decided once from what
//! `detect` found. `nobtf run` follows it, `nobtf check` prints its verdict
//! (every reason `run` would refuse, from the same function), `nobtf dump`
//! shows the programs it builds.
//!
//! The choices: the offsets profile (a file, or the builtin one where it is
//! known to fit), the memory reader, the output (perf events or the trace
//! pipe), the attach mechanism, object names and kern_version for loading.

use std::path::PathBuf;

use kernel_headers::bpf::Helper;
use kernel_headers::bpf::Readers;
use kernel_headers::pt_regs;
use probes::Program;
use probes::ringbuf::Sink;
use probes::unlink::{self, Choices, CommRead, Output};
use profile::Profile;

use crate::attach::{Attach, AttachMode, diagnose};
use crate::detect::Report;
use crate::features::Probeable;
use crate::load::{LoadOptions, Support};
pub use crate::plan_error::{PlanError, ProfileChoiceError, ReadChoice};

/// The function the unlink probes attach to.
pub const FUNCTION: &str = unlink::FUNCTION;

/// What to do with a clone of the unlink function.
pub const PROFILE_FIX: &str =
    "a clone's arguments may differ: generate a profile with `offsets gen`";

/// How `nobtf check` and the attach line name a reader.
pub fn reader_name(read: Readers) -> &'static str {
    match read {
        Readers::Split => "bpf_probe_read_kernel",
        Readers::ProbeReadStr => "bpf_probe_read",
        Readers::ProbeRead => "bpf_probe_read (fixed-size reads)",
    }
}

/// How `nobtf check` and `-v` name the way the probes read the comm.
pub fn comm_name(comm: CommRead) -> String {
    match comm {
        CommRead::Helper => "bpf_get_current_comm".into(),
        CommRead::TaskBtf { comm_offset } => format!(
            "bpf_get_current_task_btf, task_struct.comm at byte {comm_offset} (the kernel's BTF)"
        ),
    }
}

/// The profile to build the probes from: the given file, else the builtin
/// one known to fit this kernel's version.
pub fn choose_profile(offsets: Option<&PathBuf>, report: &Report) -> Result<Profile, PlanError> {
    if let Some(path) = offsets {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ProfileChoiceError::Read {
            path: shown.clone(),
            err,
        })?;
        let profile = Profile::from_toml_str(&text).map_err(|err| ProfileChoiceError::Parse {
            path: shown.clone(),
            err,
        })?;
        if profile.kernel.arch != pt_regs::NATIVE.arch {
            return Err(ProfileChoiceError::OtherArch {
                path: shown,
                arch: profile.kernel.arch,
            }
            .into());
        }
        crate::live_check::identity(&profile, &shown, report)?;
        return Ok(profile);
    }
    let kernel = report
        .kernel
        .as_ref()
        .map_err(|e| PlanError::Kernel(e.clone()))?;
    let builtin =
        profile::builtin::for_version(pt_regs::NATIVE.arch, kernel.version).ok_or_else(|| {
            ProfileChoiceError::NoBuiltin {
                release: kernel.release.clone(),
            }
        })?;
    Ok(builtin.profile(&kernel.release))
}

/// The attach mechanism `mode` resolves to here.
pub fn attach_mechanism(report: &Report, mode: AttachMode) -> Result<Attach, PlanError> {
    let has_pmu = match &report.pmu {
        Ok(pmu) => Ok(pmu.is_some()),
        Err(e) => Err(PlanError::Attach(e.clone())),
    };
    match (uses_pmu(mode, has_pmu)?, &report.pmu) {
        (true, Ok(Some(pmu))) => Ok(Attach::Pmu(*pmu)),
        _ => report
            .tracefs
            .clone()
            .map(Attach::Tracefs)
            .map_err(|e| PlanError::Attach(format!("no kprobe PMU, and {e}"))),
    }
}

/// Whether `mode` attaches through the kprobe PMU, given whether the
/// kernel has one (`Err`: it could not be told); else tracefs.
pub fn uses_pmu(mode: AttachMode, has_pmu: Result<bool, PlanError>) -> Result<bool, PlanError> {
    match mode {
        AttachMode::Tracefs => Ok(false),
        AttachMode::Auto => Ok(has_pmu.unwrap_or(false)),
        AttachMode::Pmu if has_pmu? => Ok(true),
        AttachMode::Pmu => Err(PlanError::Attach(
            "the kprobe PMU (/sys/bus/event_source/devices/kprobe, 4.17+) is missing; use --attach tracefs".into(),
        )),
    }
}

/// Asks the kernel (once each) for the helpers [`reader`] needs for
/// `choice` (for `auto`, a second one only where the first is missing), so
/// a reader the kernel lacks is refused before anything loads.
pub fn probe_readers(report: &mut Report, choice: ReadChoice) {
    match choice {
        ReadChoice::Auto => {
            if *report.probe(Helper::ProbeReadKernel) != Support::Yes {
                report.probe(Helper::ProbeReadStr);
            }
        }
        ReadChoice::ProbeRead => {
            report.probe(Helper::ProbeReadStr);
        }
        ReadChoice::ProbeReadKernel => {
            report.probe(Helper::ProbeReadKernel);
        }
        ReadChoice::ProbeReadFixed => {
            report.probe(Helper::ProbeRead);
        }
    }
}

/// The reader the probes use: the newest the kernel has for `auto`, or the
/// one chosen, refused when a helper it needs is known to be absent.
pub fn reader(report: &Report, choice: ReadChoice) -> Result<Readers, PlanError> {
    chosen_reader(
        choice,
        |helper| report.has_helper(helper),
        || match report.helper(Helper::ProbeReadKernel) {
            Some(Support::Yes) => Readers::Split,
            _ if report.has_helper(Helper::ProbeReadStr) => Readers::ProbeReadStr,
            _ => Readers::ProbeRead,
        },
    )
}

/// The reader `choice` names, refused when `has` says the kernel lacks
/// the helper it needs; `auto` picks for [`ReadChoice::Auto`].
pub fn chosen_reader(
    choice: ReadChoice,
    has: impl Fn(Helper) -> bool,
    auto: impl FnOnce() -> Readers,
) -> Result<Readers, PlanError> {
    let needs = |helper: Helper, read: Readers| {
        if has(helper) {
            Ok(read)
        } else {
            Err(PlanError::ReadHelper { choice, helper })
        }
    };
    match choice {
        ReadChoice::ProbeReadFixed => needs(Helper::ProbeRead, Readers::ProbeRead),
        ReadChoice::ProbeRead => needs(Helper::ProbeReadStr, Readers::ProbeReadStr),
        ReadChoice::ProbeReadKernel => needs(Helper::ProbeReadKernel, Readers::Split),
        ReadChoice::Auto => Ok(auto()),
    }
}

/// `Ok` when a kprobe can attach to `name`, else why not and what to try.
pub fn explain_probeable(name: &str, probeable: &Probeable) -> Result<(), PlanError> {
    match diagnose::why_unprobeable(probeable, PROFILE_FIX) {
        None => Ok(()),
        Some(why) => Err(PlanError::Function {
            name: name.into(),
            why,
        }),
    }
}

/// What the user asked of the unlink probes.
#[derive(Debug, Clone)]
pub struct UnlinkRequest {
    /// `--offsets FILE`; `None` = the builtin profile where it fits.
    pub offsets: Option<PathBuf>,
    pub read: ReadChoice,
    pub trace_pipe: bool,
}

/// What the unlink probes are built from.
#[derive(Debug, Clone)]
pub struct Probes {
    pub profile: Profile,
    /// The profile as the user named it: the file, or `builtin`.
    pub profile_shown: String,
    pub reader: Readers,
    pub choices: Choices,
}

impl Probes {
    /// The profile, the reader and the output for `request`, after asking
    /// the kernel for the helpers the reader needs ([`probe_readers`]).
    pub fn choose(report: &mut Report, request: &UnlinkRequest) -> Result<Probes, PlanError> {
        probe_readers(report, request.read);
        let profile = choose_profile(request.offsets.as_ref(), report)?;
        let reader = reader(report, request.read)?;
        Ok(Probes {
            profile,
            profile_shown: request
                .offsets
                .as_ref()
                .map_or_else(|| "builtin".to_string(), |p| p.display().to_string()),
            reader,
            choices: Choices {
                comm: match request.trace_pipe {
                    // trace_printk's lines name the task themselves.
                    true => CommRead::Helper,
                    false => report.task_comm().map_or(CommRead::Helper, |comm_offset| {
                        CommRead::TaskBtf { comm_offset }
                    }),
                },
                ..choices(reader, request.trace_pipe, report.sink())
            },
        })
    }

    /// The entry and exit programs.
    pub fn programs(&self) -> Result<[Program; 2], PlanError> {
        build(&self.profile, &self.choices)
    }
}

fn choices(reader: Readers, trace_pipe: bool, sink: Sink) -> Choices {
    Choices {
        read: reader,
        output: match (trace_pipe, sink) {
            (true, _) => Output::TracePrintk,
            (false, Sink::PerfEvents) => Output::PerfEvents,
            (false, Sink::RingBuffer) => Output::RingBuffer,
        },
        comm: CommRead::Helper,
    }
}

fn build(profile: &Profile, choices: &Choices) -> Result<[Program; 2], PlanError> {
    Ok([
        unlink::entry(profile, choices)?,
        unlink::exit(profile, choices)?,
    ])
}

/// Everything `nobtf run unlink` does on this kernel.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub probes: Probes,
    pub programs: [Program; 2],
    pub attach: Attach,
    pub load: LoadOptions,
}

/// The plan for `nobtf run unlink`, or every reason it cannot work here, in
/// the order `run` meets them (`run` reports the first, `check` all).
///
/// Helpers count as missing only when a test load said so: `check` probes
/// them all first; `run` probes none up front and names the missing one
/// only if the load fails.
pub fn run_plan(
    report: &mut Report,
    request: &UnlinkRequest,
    mode: AttachMode,
) -> Result<RunPlan, Vec<PlanError>> {
    let mut problems = Vec::new();
    let basic = report.basic().copied().map_err(|e| problems.push(e));
    if let Err(e) = report.check_function() {
        problems.push(e);
    }
    let probes = Probes::choose(report, request)
        .map_err(|e| problems.push(e))
        .ok();
    let attach = attach_mechanism(report, mode).map_err(|e| problems.push(e));
    // The helpers the programs call, from the chosen profile, else (to name
    // them all at once) from the builtin one.
    let programs = match &probes {
        Some(p) => p.programs(),
        None => {
            // A refused reader is reported once, above: list the others' helpers
            // with the reader `auto` would take.
            let reader = reader(report, request.read)
                .or_else(|_| reader(report, ReadChoice::Auto))
                .unwrap_or(Readers::ProbeReadStr);
            let release = report.kernel.as_ref().map_or("", |k| &k.release);
            let builtin = profile::builtin::for_arch(pt_regs::NATIVE.arch)
                .unwrap_or(&profile::builtin::FILENAME);
            build(
                &builtin.profile(release),
                &choices(reader, request.trace_pipe, report.sink()),
            )
        }
    };
    let programs = programs.map_err(|e| problems.push(e));
    if let Ok(programs) = &programs {
        let mut missing = Vec::new();
        for helper in programs.iter().flat_map(|p| p.helpers()) {
            if !report.has_helper(helper) && !missing.contains(&helper) {
                missing.push(helper);
            }
        }
        problems.extend(missing.into_iter().map(PlanError::Helper));
    }
    match (basic, attach, probes, programs) {
        (Ok(basic), Ok(attach), Some(probes), Ok(programs)) if problems.is_empty() => Ok(RunPlan {
            probes,
            programs,
            attach,
            load: LoadOptions {
                kern_version: report.kern_version(),
                names: basic.names,
            },
        }),
        _ => Err(problems),
    }
}

impl Report {
    /// Whether the unlink function is probeable, where that was looked at.
    pub fn check_function(&self) -> Result<(), PlanError> {
        match &self.function {
            None => Ok(()),
            Some(Ok(p)) => explain_probeable(FUNCTION, p),
            Some(Err(why)) => Err(PlanError::Function {
                name: FUNCTION.into(),
                why: why.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::test_report;

    #[test]
    fn parse_errors_fit_one_line() {
        let err = Profile::from_toml_str("format = 99").unwrap_err();
        let text = ProfileChoiceError::Parse {
            path: "p.toml".into(),
            err,
        }
        .to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with("offsets profile p.toml: "), "{text}");
    }

    /// A kernel before 4.11: `bpf_probe_read` but no `bpf_probe_read_str`.
    fn report_4_10() -> Report {
        let mut r = test_report(None, 0);
        r.helpers = vec![
            (Helper::ProbeRead, Support::Yes),
            (Helper::ProbeReadStr, Support::No),
            (Helper::ProbeReadKernel, Support::No),
        ];
        r
    }

    #[test]
    fn before_4_11_auto_reads_fixed_sizes_and_probe_read_is_refused() {
        let r = report_4_10();
        assert_eq!(reader(&r, ReadChoice::Auto).unwrap(), Readers::ProbeRead);
        assert_eq!(
            reader(&r, ReadChoice::ProbeReadFixed).unwrap(),
            Readers::ProbeRead
        );
        assert_eq!(
            reader(&r, ReadChoice::ProbeRead).unwrap_err().to_string(),
            "--read-helper probe_read needs helper bpf_probe_read_str, which this kernel does not have; mainline has it since 4.11: use --read-helper auto"
        );
        assert_eq!(
            reader(&r, ReadChoice::ProbeReadKernel)
                .unwrap_err()
                .to_string(),
            "--read-helper probe_read_kernel needs helper bpf_probe_read_kernel, which this kernel does not have; mainline has it since 5.5: use --read-helper auto"
        );
        assert_eq!(
            reader_name(Readers::ProbeRead),
            "bpf_probe_read (fixed-size reads)"
        );
    }

    #[test]
    fn auto_takes_the_newest_reader_there_is() {
        let mut r = report_4_10();
        r.helpers[1].1 = Support::Yes;
        assert_eq!(reader(&r, ReadChoice::Auto).unwrap(), Readers::ProbeReadStr);
        r.helpers[2].1 = Support::Yes;
        assert_eq!(reader(&r, ReadChoice::Auto).unwrap(), Readers::Split);
        // Not probed (no privilege for `nobtf dump`): the string helper is assumed.
        assert_eq!(
            reader(&test_report(None, 0), ReadChoice::Auto).unwrap(),
            Readers::ProbeReadStr
        );
    }

    #[test]
    fn no_attach_without_pmu_or_tracefs() {
        let text = attach_mechanism(&test_report(None, 0), AttachMode::Auto)
            .unwrap_err()
            .to_string();
        assert_eq!(text, "no way to attach: no kprobe PMU, and no tracefs");
    }

    #[test]
    fn unprobeable_functions_list_their_clones() {
        let missing = Probeable::Missing {
            candidates: vec!["f.isra.0".into(), "f.constprop.1".into()],
        };
        let text = explain_probeable("f", &missing).unwrap_err().to_string();
        assert!(
            text.starts_with("f cannot be probed: it is not in /proc/kallsyms, but the compiler's clones are: f.isra.0, f.constprop.1"),
            "{text}"
        );
        let none = Probeable::Missing { candidates: vec![] };
        assert!(explain_probeable("f", &none).is_err());
        assert!(explain_probeable("f", &Probeable::Yes).is_ok());
    }

    fn request() -> UnlinkRequest {
        UnlinkRequest {
            offsets: None,
            read: ReadChoice::ProbeRead,
            trace_pipe: false,
        }
    }

    /// A kernel before 4.11 has no bpf_probe_read_str: the plan that `check`
    /// prints and `run` follows reads with fixed sizes there, and refuses an
    /// explicit `--read-helper probe_read`, naming the helper.
    #[test]
    fn without_probe_read_str_the_plan_reads_fixed_sizes() {
        let mut report = test_report(None, 0);
        report.tracefs = Ok("/sys/kernel/tracing".into());
        report.helpers = vec![
            (Helper::ProbeReadKernel, Support::No),
            (Helper::ProbeReadStr, Support::No),
        ];
        let auto = UnlinkRequest {
            read: ReadChoice::Auto,
            ..request()
        };
        let plan = run_plan(&mut report, &auto, AttachMode::Auto).unwrap();
        assert_eq!(plan.probes.reader, Readers::ProbeRead);
        let calls: Vec<Helper> = plan.programs.iter().flat_map(|p| p.helpers()).collect();
        assert!(!calls.contains(&Helper::ProbeReadStr), "{calls:?}");
        let problems = run_plan(&mut report, &request(), AttachMode::Auto).unwrap_err();
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "--read-helper probe_read needs helper bpf_probe_read_str, which this kernel does not have; mainline has it since 4.11: use --read-helper auto"
            ]
        );
    }

    #[test]
    fn every_problem_is_listed_in_runs_order() {
        let mut report = test_report(Some(libc::EPERM), 1000);
        report.kernel = Ok(crate::features::Kernel {
            release: "4.14.177".into(),
            version: crate::features::KernelVersion::parse("4.14.177").unwrap(),
        });
        report.helpers.push((Helper::PerfEventOutput, Support::No));
        let problems = run_plan(&mut report, &request(), AttachMode::Auto).unwrap_err();
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), 4, "{texts:#?}");
        assert!(texts[0].starts_with("not allowed to load BPF programs"));
        assert!(texts[1].starts_with("no offsets profile for kernel 4.14.177"));
        assert!(texts[2].starts_with("no way to attach"));
        assert!(texts[3].starts_with("helper bpf_perf_event_output is not available"));
    }
}
