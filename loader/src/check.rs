//! `nobtf check`: what this kernel offers (the `detect` report), what nobtf
//! will use, and whether `nobtf run unlink` can work here, decided by the
//! same `plan::run_plan` that `run` follows.

use std::fmt;

use kernel_headers::bpf::Helper;

use crate::attach::AttachMode;
use crate::detect::Report;
use crate::features::Probeable;
use crate::load::Support;
use crate::plan::{self, FUNCTION, PlanError, ReadChoice, RunPlan, UnlinkRequest};

/// The report and the verdict for `request` with automatic choices.
pub struct Check {
    report: Report,
    verdict: Result<RunPlan, Vec<PlanError>>,
}

impl Check {
    /// Looks at everything (every helper by test load, the unlink function)
    /// and plans a run of the unlink probes with the profile `offsets`.
    pub fn run(offsets: Option<std::path::PathBuf>) -> Check {
        let mut report = Report::detect(crate::detect::Scope::Everything);
        let request = UnlinkRequest {
            offsets,
            read: ReadChoice::Auto,
            trace_pipe: false,
        };
        let verdict = plan::run_plan(&mut report, &request, AttachMode::Auto);
        Check { report, verdict }
    }
}

fn show<T: fmt::Display, E: fmt::Display>(r: &Result<T, E>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = &self.report;
        writeln!(f, "kernel")?;
        match &report.kernel {
            Ok(k) => writeln!(
                f,
                "  release            {} (built as {}, kern_version {:#x})",
                k.release,
                k.version,
                k.version.code()
            )?,
            Err(e) => writeln!(f, "  release            unknown: {e}")?,
        }
        writeln!(f, "  running as uid     {}", report.euid)?;
        let bpf = match &report.bpf {
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
        let pmu = match &report.pmu {
            Ok(Some(p)) => format!("yes (type {}, retprobe bit {})", p.pmu_type, p.retprobe_bit),
            Ok(None) => "no (pre-4.17 or CONFIG_KPROBE_EVENTS off)".into(),
            Err(e) => format!("unknown ({e})"),
        };
        writeln!(f, "  kprobe PMU         {pmu}")?;
        writeln!(
            f,
            "  tracefs            {}",
            report
                .tracefs
                .as_ref()
                .map_or_else(|e| format!("NO: {e}"), |d| d.display().to_string())
        )?;
        let function = match &report.function {
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
                &report
                    .possible_cpus
                    .as_ref()
                    .map(|c| format!("{} ({c:?})", c.len()))
            )
        )?;
        if !report.helpers.is_empty() {
            writeln!(f, "helpers (by test load)")?;
            for (helper, support) in &report.helpers {
                let s = match support {
                    Support::Yes => "yes".to_string(),
                    Support::No => "no".to_string(),
                    Support::Unknown(e) => format!("unknown ({e})"),
                };
                writeln!(f, "  {:<28} {s}", helper.name())?;
            }
        }
        writeln!(f, "nobtf will use")?;
        if let Ok(a) = plan::attach_mechanism(report, AttachMode::Auto) {
            writeln!(f, "  attach             {a}")?;
        }
        if let Ok(h) = plan::reader(report, ReadChoice::Auto) {
            writeln!(f, "  read helper        {}", plan::reader_name(h))?;
        }
        let output = if report.has_helper(Helper::PerfEventOutput) {
            "perf event array (bpf_perf_event_output)"
        } else {
            "none"
        };
        writeln!(f, "  output             {output}")?;
        match &self.verdict {
            Ok(_) => writeln!(f, "nobtf run unlink can work here"),
            Err(problems) => {
                writeln!(f, "nobtf run unlink cannot work here:")?;
                for p in problems {
                    writeln!(f, "  - {p}")?;
                }
                Ok(())
            }
        }
    }
}
