//! What this kernel offers nobtf, detected once, and the decisions made from
//! it (attach mode, read helper), each with the reason when something cannot
//! work. `nobtf check` prints it; `nobtf run` uses it to fail early.
//!
//! `nobtf run` and `nobtf load` look only at what the start needs (small
//! files, no helper probes): whether a function is probeable (kallsyms,
//! available_filter_functions: megabytes, about a second each under
//! emulation) and which helpers a program lacks are asked only to explain a
//! failed attach or load.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use kernel_headers::bpf::Helper;
use probes::unlink::ReadHelper;

use crate::attach::{self, AttachError, AttachMode, Attachment, ProbeKind};
use crate::features::{self, Kernel, KprobePmu, Probeable};
use crate::load::{self, BasicLoad, Support};
use crate::sys::{self, SysError};

/// Which memory reader the probes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadChoice {
    /// `bpf_probe_read_kernel` where it loads, else `bpf_probe_read`.
    Auto,
    #[value(name = "probe_read")]
    ProbeRead,
    #[value(name = "probe_read_kernel")]
    ProbeReadKernel,
    /// `bpf_probe_read` alone, fixed-size path reads (for kernels before
    /// 4.11, which have no `bpf_probe_read_str`).
    #[value(name = "probe_read_fixed")]
    ProbeReadFixed,
}

impl ReadChoice {
    fn flag(self) -> &'static str {
        match self {
            ReadChoice::Auto => "auto",
            ReadChoice::ProbeRead => "probe_read",
            ReadChoice::ProbeReadKernel => "probe_read_kernel",
            ReadChoice::ProbeReadFixed => "probe_read_fixed",
        }
    }
}

/// How `nobtf check` and the attach line name a reader.
pub fn reader_name(read: ReadHelper) -> &'static str {
    match read {
        ReadHelper::ProbeReadKernel => "bpf_probe_read_kernel",
        ReadHelper::ProbeRead => "bpf_probe_read",
        ReadHelper::ProbeReadFixed => "bpf_probe_read (fixed-size reads)",
    }
}

/// The function nobtf probes.
pub const FUNCTION: &str = offsets::profile::DO_UNLINKAT;

#[derive(Debug)]
pub struct Report {
    pub kernel: Result<Kernel, String>,
    pub euid: u32,
    /// A trivial kprobe program loaded (and whether with a name).
    pub bpf: Result<BasicLoad, SysError>,
    pub pmu: Result<Option<KprobePmu>, String>,
    pub tracefs: Result<PathBuf, String>,
    /// `None` when not looked at (only `nobtf check` reads kallsyms up front).
    pub function: Option<Result<Probeable, String>>,
    /// Helpers probed by test loads so far, each once.
    pub helpers: Vec<(Helper, Support)>,
    pub possible_cpus: Result<Vec<u32>, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot tell the kernel version: {0}")]
    Kernel(String),
    #[error(
        "not allowed to load BPF programs ({0}): run as root or with CAP_BPF+CAP_PERFMON (CAP_SYS_ADMIN before 5.8)"
    )]
    NotRoot(SysError),
    #[error(
        "the kernel refused bpf(2) to root ({0}): kernel lockdown, an LSM, or RLIMIT_MEMLOCK that cannot be raised"
    )]
    Denied(SysError),
    #[error("this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL is off): {0}")]
    NoBpf(SysError),
    #[error(
        "this kernel does not load kprobe BPF programs ({0}); it needs CONFIG_BPF_EVENTS and CONFIG_KPROBE_EVENTS"
    )]
    NoKprobeProgs(SysError),
    #[error("{name} cannot be probed: {why}")]
    Function { name: String, why: String },
    #[error("no way to attach: {0}")]
    Attach(String),
    #[error("helper {} is not available on this kernel (needed by the probes){}", .0.name(), since(*.0))]
    Helper(Helper),
    #[error("cannot read {0}")]
    Cpus(String),
    #[error(
        "--read-helper {} needs helper {}, which this kernel does not have{}: use --read-helper auto",
        .choice.flag(), .helper.name(), since(*.helper)
    )]
    ReadHelper { choice: ReadChoice, helper: Helper },
}

fn since(helper: Helper) -> String {
    format!("; mainline has it since {}", helper.since())
}

/// How much `Report::detect` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// For `nobtf check`: every helper, and whether the unlink function is
    /// probeable.
    Everything,
    /// For starting a probe: small files and one tiny test load only.
    Start,
}

impl Report {
    /// Looks at what `scope` asks for; never fails (failures are recorded).
    pub fn detect(scope: Scope) -> Report {
        // Before 5.11 BPF memory is charged to RLIMIT_MEMLOCK (EPERM when
        // over); lift it as libbpf users do. Failure shows up as EPERM below.
        let _ = sys::raise_memlock_limit();
        let kernel = features::kernel().map_err(|e| e.to_string());
        let kern_version = kernel.as_ref().map_or(0, |k| k.version.code());
        let tracefs = features::tracefs().map_err(|e| e.to_string());
        let function = (scope == Scope::Everything).then(|| {
            features::function_probeable(FUNCTION, tracefs.as_deref().ok())
                .map_err(|e| e.to_string())
        });
        let mut report = Report {
            kernel,
            euid: sys::geteuid(),
            bpf: load::probe_basic(kern_version),
            pmu: features::kprobe_pmu().map_err(|e| e.to_string()),
            tracefs,
            function,
            helpers: Vec::new(),
            possible_cpus: features::possible_cpus().map_err(|e| e.to_string()),
        };
        if scope == Scope::Everything {
            for &helper in Helper::ALL {
                report.probe(helper);
            }
        }
        report
    }

    /// Whether `helper` loads here, by a test load the first time it is
    /// asked, from memory after that.
    pub fn probe(&mut self, helper: Helper) -> &Support {
        let at = match self.helpers.iter().position(|(h, _)| *h == helper) {
            Some(at) => at,
            None => {
                let support = match &self.bpf {
                    Ok(_) => load::probe_helper(helper, self.kern_version()),
                    Err(e) => Support::Unknown(e.to_string()),
                };
                self.helpers.push((helper, support));
                self.helpers.len() - 1
            }
        };
        &self.helpers[at].1
    }

    /// The first of `helpers` this kernel lacks, probing each (once).
    pub fn missing_helper(&mut self, helpers: &[Helper]) -> Option<Helper> {
        helpers
            .iter()
            .copied()
            .find(|&h| *self.probe(h) == Support::No)
    }

    pub fn kern_version(&self) -> u32 {
        self.kernel.as_ref().map_or(0, |k| k.version.code())
    }

    pub fn helper(&self, helper: Helper) -> Option<&Support> {
        self.helpers
            .iter()
            .find(|(h, _)| *h == helper)
            .map(|(_, s)| s)
    }

    /// A helper is usable unless a probe said it is absent.
    pub fn has_helper(&self, helper: Helper) -> bool {
        !matches!(self.helper(helper), Some(Support::No))
    }

    pub fn basic(&self) -> Result<&BasicLoad, PlanError> {
        self.kernel
            .as_ref()
            .map_err(|e| PlanError::Kernel(e.clone()))?;
        self.bpf.as_ref().map_err(|err| {
            let err = SysError {
                call: err.call,
                err: std::io::Error::from_raw_os_error(err.errno().unwrap_or(0)),
            };
            match err.errno() {
                Some(libc::EPERM) if self.euid != 0 => PlanError::NotRoot(err),
                Some(libc::EPERM) => PlanError::Denied(err),
                Some(libc::ENOSYS) => PlanError::NoBpf(err),
                _ => PlanError::NoKprobeProgs(err),
            }
        })
    }

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

    /// The attach mechanism `mode` resolves to here.
    pub fn attach_plan(&self, mode: AttachMode) -> Result<Attach, PlanError> {
        let pmu = self.pmu.as_ref().map_err(|e| PlanError::Attach(e.clone()));
        let tracefs = || {
            self.tracefs
                .clone()
                .map(Attach::Tracefs)
                .map_err(|e| {
                    PlanError::Attach(format!(
                        "no kprobe PMU and no tracefs kprobe_events ({e}); the kernel needs CONFIG_KPROBE_EVENTS"
                    ))
                })
        };
        match mode {
            AttachMode::Pmu => match pmu? {
                Some(p) => Ok(Attach::Pmu(*p)),
                None => Err(PlanError::Attach(
                    "the kprobe PMU (/sys/bus/event_source/devices/kprobe, 4.17+) is missing; use --attach tracefs".into(),
                )),
            },
            AttachMode::Tracefs => tracefs(),
            AttachMode::Auto => match pmu {
                Ok(Some(p)) => Ok(Attach::Pmu(*p)),
                _ => tracefs(),
            },
        }
    }

    /// Probes the helpers [`Report::read_plan`] needs for `choice` (for
    /// `auto`, a second one only where the first is not there), so a reader
    /// the kernel lacks is refused before anything loads.
    pub fn probe_readers(&mut self, choice: ReadChoice) {
        match choice {
            ReadChoice::Auto => {
                if *self.probe(Helper::ProbeReadKernel) != Support::Yes {
                    self.probe(Helper::ProbeReadStr);
                }
            }
            ReadChoice::ProbeRead => {
                self.probe(Helper::ProbeReadStr);
            }
            ReadChoice::ProbeReadKernel => {
                self.probe(Helper::ProbeReadKernel);
            }
            ReadChoice::ProbeReadFixed => {
                self.probe(Helper::ProbeRead);
            }
        }
    }

    /// The reader the probes use: the newest the kernel has for `auto`, or
    /// the one chosen, refused when a helper it needs is known absent.
    pub fn read_plan(&self, choice: ReadChoice) -> Result<ReadHelper, PlanError> {
        let needs = |helper: Helper, read: ReadHelper| {
            if self.has_helper(helper) {
                Ok(read)
            } else {
                Err(PlanError::ReadHelper { choice, helper })
            }
        };
        match choice {
            ReadChoice::ProbeReadFixed => needs(Helper::ProbeRead, ReadHelper::ProbeReadFixed),
            ReadChoice::ProbeRead => needs(Helper::ProbeReadStr, ReadHelper::ProbeRead),
            ReadChoice::ProbeReadKernel => {
                needs(Helper::ProbeReadKernel, ReadHelper::ProbeReadKernel)
            }
            ReadChoice::Auto => Ok(match self.helper(Helper::ProbeReadKernel) {
                Some(Support::Yes) => ReadHelper::ProbeReadKernel,
                _ if self.has_helper(Helper::ProbeReadStr) => ReadHelper::ProbeRead,
                _ => ReadHelper::ProbeReadFixed,
            }),
        }
    }
}

/// What to do with a clone of the unlink function.
pub const PROFILE_FIX: &str =
    "a clone's arguments may differ: generate a profile with `offsets gen`";

/// `Ok` when a kprobe can attach to `name`, else why not and what to try.
pub fn explain_probeable(name: &str, probeable: &Probeable) -> Result<(), PlanError> {
    match why_unprobeable(probeable, PROFILE_FIX) {
        None => Ok(()),
        Some(why) => Err(PlanError::Function {
            name: name.into(),
            why,
        }),
    }
}

/// Why a kprobe cannot attach, naming the compiler's clones (and `fix`, what
/// to do with one); `None` if it can.
pub fn why_unprobeable(probeable: &Probeable, fix: &str) -> Option<String> {
    Some(match probeable {
        Probeable::Yes => return None,
        Probeable::NotTraceable => {
            "it is in /proc/kallsyms but not in available_filter_functions (notrace or blacklisted)"
                .to_string()
        }
        Probeable::Missing { candidates } if candidates.is_empty() => {
            "it is not in /proc/kallsyms (misspelt, inlined, or not built) and no compiler clone of it is either".into()
        }
        Probeable::Missing { candidates } => format!(
            "it is not in /proc/kallsyms, but the compiler's clones are: {} ({fix})",
            candidates.join(", ")
        ),
    })
}

/// After attaching to `function` failed (the kernel answers ENOENT or
/// EINVAL for a symbol it does not know or refuses; any failed call is
/// looked into): why, from kallsyms and available_filter_functions, read
/// only now. `None` when they do not
/// explain it (the attach error itself is then the best answer).
pub fn explain_attach_failure(
    function: &str,
    err: &AttachError,
    tracefs: Option<&Path>,
    fix: &str,
) -> Option<String> {
    err.errno()?;
    let probeable = features::function_probeable(function, tracefs).ok()?;
    why_unprobeable(&probeable, fix)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    Pmu(KprobePmu),
    Tracefs(PathBuf),
}

impl Attach {
    /// Attaches `prog` to `function`'s entry or return this way.
    pub fn attach(
        &self,
        kind: ProbeKind,
        function: &str,
        prog: BorrowedFd<'_>,
    ) -> Result<Attachment, AttachError> {
        match self {
            Attach::Pmu(pmu) => attach::attach_pmu(*pmu, kind, function, prog),
            Attach::Tracefs(dir) => attach::attach_tracefs(dir, kind, function, prog),
        }
    }
}

impl fmt::Display for Attach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attach::Pmu(p) => write!(f, "kprobe PMU (type {})", p.pmu_type),
            Attach::Tracefs(dir) => write!(f, "tracefs {}", dir.join("kprobe_events").display()),
        }
    }
}

fn show<T: fmt::Display, E: fmt::Display>(r: &Result<T, E>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel")?;
        match &self.kernel {
            Ok(k) => writeln!(
                f,
                "  release            {} (built as {}, kern_version {:#x})",
                k.release,
                k.version,
                k.version.code()
            )?,
            Err(e) => writeln!(f, "  release            unknown: {e}")?,
        }
        writeln!(f, "  running as uid     {}", self.euid)?;
        let bpf = match &self.bpf {
            Ok(b) => format!(
                "yes (kprobe programs load; object names {})",
                if b.names {
                    "accepted"
                } else {
                    "rejected: pre-4.15"
                }
            ),
            Err(e) => format!("NO: {e}"),
        };
        writeln!(f, "  bpf(2)             {bpf}")?;
        let pmu = match &self.pmu {
            Ok(Some(p)) => format!("yes (type {}, retprobe bit {})", p.pmu_type, p.retprobe_bit),
            Ok(None) => "no (pre-4.17 or CONFIG_KPROBE_EVENTS off)".into(),
            Err(e) => format!("unknown ({e})"),
        };
        writeln!(f, "  kprobe PMU         {pmu}")?;
        writeln!(
            f,
            "  tracefs            {}",
            self.tracefs
                .as_ref()
                .map_or_else(|e| format!("NO: {e}"), |d| d.display().to_string())
        )?;
        let function = match &self.function {
            None => None,
            Some(Ok(Probeable::Yes)) => Some("probeable".into()),
            Some(Ok(Probeable::NotTraceable)) => Some("in kallsyms, not traceable".into()),
            Some(Ok(Probeable::Missing { candidates })) => {
                Some(format!("missing (clones: {candidates:?})"))
            }
            Some(Err(e)) => Some(format!("unknown ({e})")),
        };
        if let Some(function) = function {
            writeln!(f, "  {FUNCTION:<18} {function}")?;
        }
        writeln!(
            f,
            "  possible CPUs      {}",
            show(
                &self
                    .possible_cpus
                    .as_ref()
                    .map(|c| format!("{} ({c:?})", c.len()))
            )
        )?;
        if !self.helpers.is_empty() {
            writeln!(f, "helpers (by test load)")?;
            for (helper, support) in &self.helpers {
                let s = match support {
                    Support::Yes => "yes".to_string(),
                    Support::No => "no".to_string(),
                    Support::Unknown(e) => format!("unknown ({e})"),
                };
                writeln!(f, "  {:<28} {s}", helper.name())?;
            }
        }
        writeln!(f, "nobtf will use")?;
        let mut problems = Vec::new();
        if let Err(e) = self.basic() {
            problems.push(e.to_string());
        }
        if let Err(e) = self.check_function() {
            problems.push(e.to_string());
        }
        match self.attach_plan(AttachMode::Auto) {
            Ok(a) => writeln!(f, "  attach             {a}")?,
            Err(e) => problems.push(e.to_string()),
        }
        match self.read_plan(ReadChoice::Auto) {
            Ok(h) => writeln!(f, "  read helper        {}", reader_name(h))?,
            Err(e) => problems.push(e.to_string()),
        }
        let output = if self.has_helper(Helper::PerfEventOutput) {
            "perf event array (bpf_perf_event_output)"
        } else {
            problems.push(PlanError::Helper(Helper::PerfEventOutput).to_string());
            "none"
        };
        writeln!(f, "  output             {output}")?;
        if problems.is_empty() {
            writeln!(f, "nobtf run unlink can work here")
        } else {
            writeln!(f, "nobtf run unlink cannot work here:")?;
            for p in problems {
                writeln!(f, "  - {p}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(bpf_errno: Option<i32>, euid: u32) -> Report {
        Report {
            kernel: Ok(Kernel {
                release: "5.10.0-test".into(),
                version: features::KernelVersion::parse("5.10.0").unwrap(),
            }),
            euid,
            bpf: match bpf_errno {
                None => Ok(BasicLoad { names: true }),
                Some(errno) => Err(SysError {
                    call: "bpf(BPF_PROG_LOAD)",
                    err: std::io::Error::from_raw_os_error(errno),
                }),
            },
            pmu: Ok(None),
            tracefs: Err("no tracefs".into()),
            function: Some(Ok(Probeable::Yes)),
            helpers: Vec::new(),
            possible_cpus: Ok(vec![0]),
        }
    }

    fn first_error(r: &Report) -> String {
        r.basic().map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn each_missing_capability_is_named_with_its_fix() {
        let text = first_error(&report(Some(libc::EPERM), 1000));
        assert!(
            text.starts_with(
                "not allowed to load BPF programs (bpf(BPF_PROG_LOAD): Operation not permitted"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("run as root or with CAP_BPF+CAP_PERFMON (CAP_SYS_ADMIN before 5.8)"),
            "{text}"
        );
        assert!(first_error(&report(Some(libc::EPERM), 0)).contains("lockdown"));
        assert!(first_error(&report(Some(libc::ENOSYS), 0)).contains("CONFIG_BPF_SYSCALL"));
        assert!(first_error(&report(Some(libc::EINVAL), 0)).contains("CONFIG_BPF_EVENTS"));
        let text = report(None, 0)
            .attach_plan(AttachMode::Auto)
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            "no way to attach: no kprobe PMU and no tracefs kprobe_events (no tracefs); the kernel needs CONFIG_KPROBE_EVENTS"
        );
    }

    /// A kernel before 4.11: `bpf_probe_read` but no `bpf_probe_read_str`.
    fn report_4_10() -> Report {
        let mut r = report(None, 0);
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
        assert_eq!(
            r.read_plan(ReadChoice::Auto).unwrap(),
            ReadHelper::ProbeReadFixed
        );
        assert_eq!(
            r.read_plan(ReadChoice::ProbeReadFixed).unwrap(),
            ReadHelper::ProbeReadFixed
        );
        assert_eq!(
            r.read_plan(ReadChoice::ProbeRead).unwrap_err().to_string(),
            "--read-helper probe_read needs helper bpf_probe_read_str, which this kernel does not have; mainline has it since 4.11: use --read-helper auto"
        );
        assert_eq!(
            r.read_plan(ReadChoice::ProbeReadKernel)
                .unwrap_err()
                .to_string(),
            "--read-helper probe_read_kernel needs helper bpf_probe_read_kernel, which this kernel does not have; mainline has it since 5.5: use --read-helper auto"
        );
        let text = r.to_string();
        assert!(
            text.contains("read helper        bpf_probe_read (fixed-size reads)"),
            "{text}"
        );
    }

    #[test]
    fn auto_takes_the_newest_reader_there_is() {
        let mut r = report_4_10();
        r.helpers[1].1 = Support::Yes;
        assert_eq!(
            r.read_plan(ReadChoice::Auto).unwrap(),
            ReadHelper::ProbeRead
        );
        r.helpers[2].1 = Support::Yes;
        assert_eq!(
            r.read_plan(ReadChoice::Auto).unwrap(),
            ReadHelper::ProbeReadKernel
        );
        // Not probed (no privilege for `nobtf dump`): the string helper is assumed.
        assert_eq!(
            report(None, 0).read_plan(ReadChoice::Auto).unwrap(),
            ReadHelper::ProbeRead
        );
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
}
