//! Uprobes: a program on a user-space function, placed at an offset into
//! its file. Through the uprobe PMU (4.17+: `config1` the path, `config2`
//! the offset) where the kernel has it and kprobes attach by PMU too; else
//! through tracefs `uprobe_events`, by the code kprobe events use. With a
//! pid, only that process's calls fire.

use std::ffi::CString;
use std::fmt;
use std::os::fd::BorrowedFd;
use std::path::Path;

use super::{
    Attach, AttachError, Attachment, ProbeKind, TracefsProbe, UPROBE_EVENTS, finish, perf_target,
};
use crate::attrs;
use crate::features::{self, KprobePmu};
use crate::sys::{self, SysError};

/// Where a uprobe goes, found from the program's `uprobe:BINARY:SYMBOL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProbe {
    pub path: String,
    /// Into the file, where the symbol's code is.
    pub offset: u64,
    /// A uretprobe.
    pub ret: bool,
    /// `-p PID`: that process only.
    pub pid: Option<u32>,
    /// The symbol (or address) as written, for the tracefs event's name.
    pub symbol: String,
}

impl UserProbe {
    fn kind(&self) -> ProbeKind {
        if self.ret {
            ProbeKind::Kretprobe
        } else {
            ProbeKind::Kprobe
        }
    }
}

impl fmt::Display for UserProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.ret { "uretprobe" } else { "uprobe" };
        write!(f, "{kind}:{}:{}", self.path, self.symbol)
    }
}

/// Attaches `prog` at `probe`: by the uprobe PMU when kprobes attach by
/// PMU (`how`) and the kernel has it, else by `tracefs`'s `uprobe_events`.
pub fn attach(
    how: &Attach,
    probe: &UserProbe,
    prog: BorrowedFd<'_>,
    tracefs: Option<&Path>,
) -> Result<Attachment, AttachError> {
    let shown = probe.to_string();
    let tracefs = match how {
        Attach::Pmu(_) => {
            if let Ok(Some(pmu)) = features::uprobe_pmu() {
                return attach_pmu(pmu, probe, prog);
            }
            tracefs
        }
        Attach::Tracefs(dir) => Some(dir.as_path()),
    };
    let tracefs = tracefs
        .filter(|dir| dir.join(UPROBE_EVENTS).exists())
        .ok_or_else(|| AttachError::NoUprobes(shown.clone()))?;
    let location = format!("{}:0x{:x}", probe.path, probe.offset);
    TracefsProbe {
        file: UPROBE_EVENTS,
        kind: probe.kind(),
        name_from: &probe.symbol,
        location: &location,
        shown: &shown,
        pid: probe.pid,
    }
    .attach(tracefs, prog)
}

fn attach_pmu(
    pmu: KprobePmu,
    probe: &UserProbe,
    prog: BorrowedFd<'_>,
) -> Result<Attachment, AttachError> {
    let shown = probe.to_string();
    let path = CString::new(probe.path.as_str()).map_err(|_| AttachError::Sys {
        function: shown.clone(),
        err: SysError {
            call: "perf_event_open",
            err: std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in the path"),
        },
    })?;
    let attr = attrs::uprobe_pmu(
        pmu.pmu_type,
        probe.ret.then_some(pmu.retprobe_bit),
        probe.offset,
    );
    let (pid, cpu) = perf_target(probe.pid);
    let perf =
        sys::perf_event_open(&attr, Some(&path), pid, cpu).map_err(|err| AttachError::Sys {
            function: shown.clone(),
            err,
        })?;
    let description = format!("{} uprobe PMU {shown}", probe.kind().letter());
    finish(perf, None, prog, description, &shown)
}
