//! What this kernel offers nobtf, detected once: release, bpf(2), the kprobe
//! PMU, tracefs, helpers by test load. `plan` decides from it; `check`
//! prints it.
//!
//! `nobtf run` and `nobtf load` look only at what the start needs (small
//! files, no helper probes): whether a function is probeable (kallsyms,
//! available_filter_functions: megabytes, about a second each under
//! emulation) and which helpers a program lacks are asked only to explain a
//! failed attach or load.

use std::path::PathBuf;

use kernel_headers::bpf::Helper;

use crate::features::{self, Kernel, KprobePmu, Probeable};
use crate::load::{self, BasicLoad, Support};
use crate::plan_error::PlanError;
use crate::sys::{self, SysError};
use probes::unlink::FUNCTION;

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
    /// A `BPF_MAP_TYPE_RINGBUF` could be created (5.8+; vendor kernels may
    /// have it earlier): records go through it instead of the perf rings.
    pub ring_buffer: bool,
    /// One program attaches to many functions through a kprobe_multi link
    /// (5.18+, CONFIG_FPROBE), found by trying (`load::probe_kprobe_multi`);
    /// else why not. Tried for `Scope::Everything`, else when first asked
    /// ([`Report::kprobe_multi`]): only trace programs use it.
    pub kprobe_multi: Option<Result<(), String>>,
    /// Where the unlink probes read `task_struct.comm` through
    /// `bpf_get_current_task_btf` (its offset, from the kernel's BTF), if
    /// a test load says they can; asked when first needed
    /// ([`Report::task_comm`]).
    pub task_comm: Option<Option<i16>>,
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
        let bpf = load::probe_basic(kern_version);
        let mut report = Report {
            kernel,
            euid: sys::geteuid(),
            bpf,
            pmu: features::kprobe_pmu().map_err(|e| e.to_string()),
            tracefs,
            function,
            helpers: Vec::new(),
            possible_cpus: features::possible_cpus().map_err(|e| e.to_string()),
            ring_buffer: load::probe_ring_buffer(),
            kprobe_multi: None,
            task_comm: None,
        };
        if scope == Scope::Everything {
            report.kprobe_multi();
            report.task_comm();
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

    /// Whether kprobe_multi links work here (else why not), by a test link
    /// the first time it is asked, from memory after that.
    pub fn kprobe_multi(&mut self) -> &Result<(), String> {
        let found = match self.kprobe_multi.take() {
            Some(found) => found,
            None => match &self.bpf {
                Ok(_) => load::probe_kprobe_multi(self.kern_version()),
                Err(e) => Err(e.to_string()),
            },
        };
        self.kprobe_multi.insert(found)
    }

    /// `task_struct.comm`'s offset where the unlink probes can read it
    /// through `bpf_get_current_task_btf` (5.11+ with BTF), found the first
    /// time it is asked: a few KiB of the kernel's BTF and one test load.
    pub fn task_comm(&mut self) -> Option<i16> {
        if let Some(found) = self.task_comm {
            return found;
        }
        let found = self
            .bpf
            .is_ok()
            .then(|| crate::fields::kernel_member_offset("task_struct", "comm"))
            .flatten()
            // Both words' offsets must fit the loads' i16.
            .and_then(|offset| i16::try_from(offset).ok())
            .filter(|&offset| offset <= i16::MAX - 8)
            .filter(|&offset| load::probe_task_comm(self.kern_version(), offset));
        self.task_comm = Some(found);
        found
    }

    /// The first of `helpers` this kernel lacks, probing each (once).
    pub fn missing_helper(&mut self, helpers: &[Helper]) -> Option<Helper> {
        helpers
            .iter()
            .copied()
            .find(|&h| *self.probe(h) == Support::No)
    }

    /// Where records go here: the ring buffer when the kernel has it and
    /// its helpers (a probe said nothing against them), else the perf rings.
    pub fn sink(&self) -> probes::ringbuf::Sink {
        let helpers = probes::ringbuf::Sink::RingBuffer.helpers();
        probes::ringbuf::Sink::for_ring_buffer(
            self.ring_buffer && helpers.iter().all(|&h| self.has_helper(h)),
        )
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
}

/// A report of a 5.10 kernel where bpf(2) fails with `bpf_errno` (or
/// works), with no kprobe PMU and no tracefs.
#[cfg(test)]
pub(crate) fn test_report(bpf_errno: Option<i32>, euid: u32) -> Report {
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
        ring_buffer: false,
        kprobe_multi: Some(Err("5.10".into())),
        task_comm: Some(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(r: &Report) -> String {
        r.basic().map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn each_missing_capability_is_named_with_its_fix() {
        let text = first_error(&test_report(Some(libc::EPERM), 1000));
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
        assert!(first_error(&test_report(Some(libc::EPERM), 0)).contains("lockdown"));
        assert!(first_error(&test_report(Some(libc::ENOSYS), 0)).contains("CONFIG_BPF_SYSCALL"));
        assert!(first_error(&test_report(Some(libc::EINVAL), 0)).contains("CONFIG_BPF_EVENTS"));
    }
}
