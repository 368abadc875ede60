//! `nobtf check`: what this kernel offers (the `detect` report), what nobtf
//! will use, and whether `nobtf run unlink` can work here, decided by the
//! same `plan::run_plan` that `run` follows.

use std::fmt;

use kernel_headers::bpf::Helper;

use crate::attach::AttachMode;
use crate::backend::{self, Backend, BackendChoice, Chosen};
use crate::detect::Report;
use crate::features::Probeable;
use crate::load::Support;
use crate::plan::{self, FUNCTION, PlanError, ReadChoice, UnlinkRequest};
use probes::unlink::CommRead;

/// The report and the verdict for `request` with automatic choices.
pub struct Check {
    report: Report,
    /// The back end `run` would take, and why (or why none can).
    chosen: Result<Chosen, String>,
    verdict: Result<(), Vec<PlanError>>,
}

impl Check {
    /// Looks at everything (every helper by test load, the unlink function)
    /// and plans a run of the unlink probes with the profile `offsets`.
    pub fn run(offsets: Option<std::path::PathBuf>, choice: BackendChoice) -> Check {
        let mut report = Report::detect(crate::detect::Scope::Everything);
        let request = UnlinkRequest {
            offsets,
            read: ReadChoice::Auto,
            trace_pipe: false,
        };
        let chosen = backend::choose(&report, choice);
        let verdict = match &chosen {
            Err(_) => Err(Vec::new()),
            Ok(Chosen {
                backend: Backend::Bpf,
                ..
            }) => plan::run_plan(&mut report, &request, AttachMode::Auto).map(|_| ()),
            Ok(Chosen {
                backend: Backend::Tracefs,
                ..
            }) => backend::tracefs_plan(&report, &request).map(|_| ()),
        };
        let (chosen, verdict) = match chosen {
            Ok(c) => (Ok(c), verdict),
            Err(e) => (Err(e.to_string()), Err(vec![e])),
        };
        Check {
            report,
            chosen,
            verdict,
        }
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
            Some(Ok(Probeable::NoKprobes)) => Some(format!(
                "not probeable: no kprobes in this kernel (no {} in /proc/kallsyms: CONFIG_KPROBES off), so nothing is",
                crate::features::KPROBES_SYMBOL
            )),
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
        // Without bpf(2) every helper is "unknown": nothing to list.
        if !report.helpers.is_empty() && report.bpf.is_ok() {
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
        match &self.chosen {
            Ok(c) => writeln!(f, "  back end           {}: {}", c.backend, c.why)?,
            Err(e) => writeln!(f, "  back end           none: {e}")?,
        }
        if let Ok(Chosen {
            backend: Backend::Tracefs,
            ..
        }) = &self.chosen
        {
            if let Ok(dir) = &report.tracefs {
                writeln!(
                    f,
                    "  attach             tracefs {}, the kernel fetching the arguments",
                    dir.join("kprobe_events").display()
                )?;
                writeln!(
                    f,
                    "  output             trace_pipe of tracing instance {}",
                    dir.join("instances/nobtf_<pid>").display()
                )?;
            }
        } else if let Ok(a) = plan::attach_mechanism(report, AttachMode::Auto) {
            writeln!(f, "  attach             {a}")?;
        }
        if matches!(
            &self.chosen,
            Ok(Chosen {
                backend: Backend::Bpf,
                ..
            })
        ) {
            if let Ok(h) = plan::reader(report, ReadChoice::Auto) {
                writeln!(f, "  read helper        {}", plan::reader_name(h))?;
            }
            let output = if report.sink() == probes::ringbuf::Sink::RingBuffer {
                "BPF ring buffer (bpf_ringbuf_reserve/submit)"
            } else if report.has_helper(Helper::PerfEventOutput) {
                "perf event array (bpf_perf_event_output)"
            } else {
                "none"
            };
            writeln!(f, "  output             {output}")?;
            if let Some(comm) = report.task_comm {
                let comm = comm.map_or(CommRead::Helper, |comm_offset| CommRead::TaskBtf {
                    comm_offset,
                });
                writeln!(f, "  comm               {}", plan::comm_name(comm))?;
            }
            match &report.kprobe_multi {
                None => {}
                Some(Ok(())) => writeln!(
                    f,
                    "  wildcard kprobes   one program, one kprobe_multi link (trace)"
                )?,
                Some(Err(why)) => writeln!(
                    f,
                    "  wildcard kprobes   one kprobe per function: no kprobe_multi link ({why})"
                )?,
            }
        }
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
