//! Attaching a loaded program to where it runs: a kprobe, by the perf kprobe
//! PMU (4.17+) or through tracefs `kprobe_events` (any kernel with kprobe
//! events); a tracepoint by its tracefs id; a CPU-clock timer on each CPU.
//! What is attached is owned by an `Attachment` whose `Drop` detaches it and
//! removes what nobtf created; failures there are reported on stderr, not
//! dropped. `stale` removes what a killed nobtf left; `diagnose` says why a
//! function cannot be probed.

pub mod diagnose;
pub mod stale;
pub mod uprobe;

use std::ffi::CString;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use kernel_headers::bpf::prog_type;

use crate::attrs;
use crate::features::KprobePmu;
use crate::sys::{self, SysError};

/// Group of every tracefs event nobtf creates.
pub const GROUP: &str = "nobtf";

/// Where a program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachPoint {
    /// Entry of a kernel function.
    Kprobe(String),
    /// Return of a kernel function.
    Kretprobe(String),
    /// The entries (or, `ret`, returns) of many kernel functions, one
    /// program for all through one kprobe_multi link (5.18+); where the
    /// kernel refuses the link, the session attaches the same bytecode to
    /// each function as a kprobe.
    KprobeMulti {
        written: String,
        functions: Vec<String>,
        ret: bool,
    },
    /// A static tracepoint, `events/<category>/<name>` in tracefs.
    Tracepoint { category: String, name: String },
    /// Every `period_ns` of CPU time, on each online CPU.
    CpuClock { period_ns: u64 },
    /// Every `period_ns`, once: a CPU clock on the first online CPU (a
    /// trace program's `interval`).
    Interval { period_ns: u64 },
    /// A trace program's `profile:`, `software:` or `hardware:` probe: its
    /// perf event on each online CPU.
    Sampling(lang::sampling::Sampling),
    /// A user-space function: `offset` into the file at `path` (see
    /// [`uprobe`]).
    Uprobe(uprobe::UserProbe),
}

impl AttachPoint {
    /// The program type the kernel attaches here.
    pub fn prog_type(&self) -> u32 {
        match self {
            AttachPoint::Kprobe(_)
            | AttachPoint::Kretprobe(_)
            | AttachPoint::KprobeMulti { .. }
            | AttachPoint::Uprobe(_) => prog_type::KPROBE,
            AttachPoint::Tracepoint { .. } => prog_type::TRACEPOINT,
            AttachPoint::CpuClock { .. }
            | AttachPoint::Interval { .. }
            | AttachPoint::Sampling(_) => prog_type::PERF_EVENT,
        }
    }

    /// What the kernel checks the program against at load
    /// (`expected_attach_type`): a kprobe_multi link's type, else none.
    pub fn expected_attach_type(&self) -> u32 {
        match self {
            AttachPoint::KprobeMulti { .. } => kernel_headers::bpf::attach_type::TRACE_KPROBE_MULTI,
            _ => 0,
        }
    }

    /// The kernel function probed, for a kprobe or kretprobe.
    pub fn function(&self) -> Option<&str> {
        match self {
            AttachPoint::Kprobe(f) | AttachPoint::Kretprobe(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for AttachPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachPoint::Kprobe(function) => write!(f, "kprobe:{function}"),
            AttachPoint::Kretprobe(function) => write!(f, "kretprobe:{function}"),
            AttachPoint::KprobeMulti {
                written, functions, ..
            } => write!(f, "{written} ({} functions)", functions.len()),
            AttachPoint::Tracepoint { category, name } => write!(f, "tracepoint:{category}:{name}"),
            AttachPoint::CpuClock { period_ns } => write!(f, "cpu-clock every {period_ns} ns"),
            AttachPoint::Interval { period_ns } => write!(f, "interval of {period_ns} ns"),
            AttachPoint::Sampling(sampling) => f.write_str(&sampling.name),
            AttachPoint::Uprobe(probe) => write!(f, "{probe}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// The kprobe PMU where the kernel has it, else tracefs.
    Auto,
    /// perf_event_open on the kprobe PMU (4.17+).
    Pmu,
    /// tracefs kprobe_events (any kernel with CONFIG_KPROBE_EVENTS).
    Tracefs,
}

pub use kernel_headers::kprobe::ProbeKind;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("attaching to {function}: {err}")]
    Sys { function: String, err: SysError },
    #[error("creating tracefs event `{definition}` in {path}: {err}")]
    Define {
        definition: String,
        path: String,
        err: std::io::Error,
    },
    #[error("reading the id of tracefs event {path}: {err}")]
    EventId { path: String, err: String },
    #[error("attaching to {0} needs tracefs")]
    NoTracefs(String),
    /// `perf_event_open` of a hardware event found no counter for it.
    #[error(
        "{0}: this machine has no hardware counter for it (no PMU, as in a VM without one); use software:cpu-clock or profile:hz:N instead"
    )]
    NoCounter(String),
    #[error(
        "attaching {0}: this kernel has neither the uprobe PMU (4.17+) nor tracefs uprobe_events (CONFIG_UPROBE_EVENTS)"
    )]
    NoUprobes(String),
}

impl AttachError {
    /// The errno of the system call or `kprobe_events` write that failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            AttachError::Sys { err, .. } => err.errno(),
            AttachError::Define { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }
}

/// How kprobes attach on this kernel (what an `AttachMode` resolved to).
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
            Attach::Pmu(pmu) => attach_pmu(*pmu, kind, function, prog),
            Attach::Tracefs(dir) => attach_tracefs(dir, kind, function, prog),
        }
    }

    /// Attaches `prog` at `point`: kprobes this way, tracepoints through
    /// `tracefs`, a CPU clock on each of `cpus` (an interval's: one).
    pub fn attach_point(
        &self,
        point: &AttachPoint,
        prog: BorrowedFd<'_>,
        tracefs: Option<&Path>,
        cpus: &[u32],
    ) -> Result<Vec<Attachment>, AttachError> {
        Ok(match point {
            AttachPoint::Kprobe(function) => {
                vec![self.attach(ProbeKind::Kprobe, function, prog)?]
            }
            AttachPoint::Kretprobe(function) => {
                vec![self.attach(ProbeKind::Kretprobe, function, prog)?]
            }
            AttachPoint::KprobeMulti { functions, ret, .. } => {
                vec![attach_kprobe_multi(functions, *ret, prog)?]
            }
            AttachPoint::Tracepoint { category, name } => {
                let tracefs = tracefs.ok_or_else(|| AttachError::NoTracefs(point.to_string()))?;
                vec![attach_tracepoint(tracefs, category, name, prog)?]
            }
            AttachPoint::CpuClock { period_ns } | AttachPoint::Interval { period_ns } => {
                attach_cpu_clock(*period_ns, cpus, prog)?
            }
            AttachPoint::Sampling(sampling) => attach_sampling(sampling, cpus, prog)?,
            AttachPoint::Uprobe(probe) => vec![uprobe::attach(self, probe, prog, tracefs)?],
        })
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

/// tracefs's file of kprobe events.
pub const KPROBE_EVENTS: &str = "kprobe_events";
/// tracefs's file of uprobe events (the same syntax, `PATH:OFFSET` for
/// the function).
pub const UPROBE_EVENTS: &str = "uprobe_events";

/// A tracefs `kprobe_events` or `uprobe_events` entry nobtf created;
/// removed on drop.
#[derive(Debug)]
struct TracefsEvent {
    tracefs: PathBuf,
    file: &'static str,
    name: String,
}

impl Drop for TracefsEvent {
    fn drop(&mut self) {
        let removal = format!("-:{GROUP}/{}", self.name);
        if let Err(err) = write_probe_events(&self.tracefs, self.file, &removal) {
            eprintln!(
                "warning: could not remove tracefs event {GROUP}/{} ({err}); remove it with: echo '{removal}' >> {}",
                self.name,
                self.tracefs.join(self.file).display()
            );
        }
    }
}

/// One program attached to one probe point.
#[derive(Debug)]
pub struct Attachment {
    // Field order is drop order: the perf event goes before its tracefs
    // event, which the kernel refuses to remove while it is open. The event
    // is held only to be removed when dropped.
    perf: OwnedFd,
    _event: Option<TracefsEvent>,
    pub description: String,
    /// `perf` is a BPF link (closing it detaches), not a perf event.
    link: bool,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if self.link {
            return;
        }
        if let Err(err) = sys::perf_disable(self.perf.as_fd()) {
            eprintln!("warning: detaching {}: {err}", self.description);
        }
    }
}

/// `prog` on the entries (or returns) of every one of `functions` through
/// one kprobe_multi link; the kernel refuses the whole link if it cannot
/// attach to one of them.
pub fn attach_kprobe_multi(
    functions: &[String],
    ret: bool,
    prog: BorrowedFd<'_>,
) -> Result<Attachment, AttachError> {
    let shown = || format!("{} functions through kprobe_multi", functions.len());
    let names = functions
        .iter()
        .map(|f| CString::new(f.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| AttachError::Sys {
            function: shown(),
            err: SysError {
                call: "bpf(BPF_LINK_CREATE)",
                err: std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in function name"),
            },
        })?;
    let flags = if ret {
        kernel_headers::bpf_attr::KPROBE_MULTI_RETURN
    } else {
        0
    };
    let link =
        sys::link_create_kprobe_multi(prog, &names, flags).map_err(|err| AttachError::Sys {
            function: shown(),
            err,
        })?;
    Ok(Attachment {
        perf: link,
        _event: None,
        description: format!("kprobe_multi link of {}", shown()),
        link: true,
    })
}

/// `nobtf_<pid>_<p|r>_<function>_<n>`: unique per process and parseable,
/// so a later cleanup can tell whose event it is.
pub fn event_name(pid: u32, kind: ProbeKind, function: &str, n: u32) -> String {
    // Cut: the kernel limits event names (64 bytes since 5.x); `n` keeps
    // them unique.
    let clean: String = function
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(32)
        .collect();
    format!("{GROUP}_{pid}_{}_{clean}_{n}", kind.letter())
}

/// The `kprobe_events` line that creates the event.
pub fn event_definition(kind: ProbeKind, name: &str, function: &str) -> String {
    format!("{}:{GROUP}/{name} {function}", kind.letter())
}

pub(crate) fn write_kprobe_events(tracefs: &Path, line: &str) -> std::io::Result<()> {
    write_probe_events(tracefs, KPROBE_EVENTS, line)
}

/// Appends `line` to tracefs's `file` (`kprobe_events`, `uprobe_events`).
pub(crate) fn write_probe_events(tracefs: &Path, file: &str, line: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new().append(true).open(tracefs.join(file))?;
    // One definition per write: the kernel parses each write as whole lines.
    let line = format!("{line}\n");
    let written = file.write(line.as_bytes())?;
    if written != line.len() {
        return Err(std::io::Error::other(format!(
            "short write ({written} of {} bytes)",
            line.len()
        )));
    }
    Ok(())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh `event_name` of this process for a probe on `function`.
pub fn next_event_name(kind: ProbeKind, function: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    event_name(std::process::id(), kind, function, n)
}

fn finish(
    perf: OwnedFd,
    event: Option<TracefsEvent>,
    prog: BorrowedFd<'_>,
    description: String,
    function: &str,
) -> Result<Attachment, AttachError> {
    let attachment = Attachment {
        perf,
        _event: event,
        description,
        link: false,
    };
    let wrap = |err| AttachError::Sys {
        function: function.to_string(),
        err,
    };
    // On error `attachment` drops here, undoing the open and the event.
    sys::perf_set_bpf(attachment.perf.as_fd(), prog).map_err(wrap)?;
    sys::perf_enable(attachment.perf.as_fd()).map_err(wrap)?;
    Ok(attachment)
}

pub fn attach_pmu(
    pmu: KprobePmu,
    kind: ProbeKind,
    function: &str,
    prog: BorrowedFd<'_>,
) -> Result<Attachment, AttachError> {
    let retprobe = (kind == ProbeKind::Kretprobe).then_some(pmu.retprobe_bit);
    let attr = attrs::kprobe_pmu(pmu.pmu_type, retprobe);
    let name = CString::new(function).map_err(|_| AttachError::Sys {
        function: function.to_string(),
        err: SysError {
            call: "perf_event_open",
            err: std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in function name"),
        },
    })?;
    let perf = sys::perf_event_open(&attr, Some(&name), -1, 0).map_err(|err| AttachError::Sys {
        function: function.to_string(),
        err,
    })?;
    let description = format!("{} kprobe PMU {function}", kind.letter());
    finish(perf, None, prog, description, function)
}

pub fn attach_tracefs(
    tracefs: &Path,
    kind: ProbeKind,
    function: &str,
    prog: BorrowedFd<'_>,
) -> Result<Attachment, AttachError> {
    let event = TracefsProbe {
        file: KPROBE_EVENTS,
        kind,
        name_from: function,
        location: function,
        shown: function,
        pid: None,
    };
    event.attach(tracefs, prog)
}

/// A probe defined in tracefs (`kprobe_events` or `uprobe_events`), then
/// opened as a perf tracepoint by its id.
pub(crate) struct TracefsProbe<'a> {
    pub file: &'static str,
    pub kind: ProbeKind,
    /// What the event's name is made from (a function).
    pub name_from: &'a str,
    /// What the definition probes: a function, or `PATH:0xOFFSET`.
    pub location: &'a str,
    /// The probe as errors name it.
    pub shown: &'a str,
    /// Only this process (`-p`), or every one.
    pub pid: Option<u32>,
}

impl TracefsProbe<'_> {
    pub fn attach(&self, tracefs: &Path, prog: BorrowedFd<'_>) -> Result<Attachment, AttachError> {
        let name = next_event_name(self.kind, self.name_from);
        let definition = event_definition(self.kind, &name, self.location);
        write_probe_events(tracefs, self.file, &definition).map_err(|err| AttachError::Define {
            definition: definition.clone(),
            path: tracefs.join(self.file).display().to_string(),
            err,
        })?;
        // From here on the event exists and is removed if anything fails.
        let event = TracefsEvent {
            tracefs: tracefs.to_path_buf(),
            file: self.file,
            name: name.clone(),
        };
        let id = event_id(tracefs, GROUP, &name)?;
        let (pid, cpu) = perf_target(self.pid);
        let perf = sys::perf_event_open(&attrs::tracepoint(id), None, pid, cpu).map_err(|err| {
            AttachError::Sys {
                function: self.shown.to_string(),
                err,
            }
        })?;
        let description = format!("tracefs {GROUP}/{name}");
        finish(perf, Some(event), prog, description, self.shown)
    }
}

/// perf_event_open's pid and cpu for a probe of one process (any CPU) or
/// of all (the program runs wherever it fires; the event needs one CPU).
pub(crate) fn perf_target(pid: Option<u32>) -> (i32, i32) {
    match pid {
        Some(pid) => (pid as i32, -1),
        None => (-1, 0),
    }
}

/// The id of tracefs event `group/name` (`events/<group>/<name>/id`).
fn event_id(tracefs: &Path, group: &str, name: &str) -> Result<u64, AttachError> {
    let id_path = tracefs.join("events").join(group).join(name).join("id");
    fs::read_to_string(&id_path)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            t.trim()
                .parse()
                .map_err(|_| format!("not a number: `{}`", t.trim()))
        })
        .map_err(|err| AttachError::EventId {
            path: id_path.display().to_string(),
            err,
        })
}

/// A tracepoint, by its id: the program runs on every CPU it fires on.
pub fn attach_tracepoint(
    tracefs: &Path,
    category: &str,
    name: &str,
    prog: BorrowedFd<'_>,
) -> Result<Attachment, AttachError> {
    let target = format!("tracepoint {category}:{name}");
    let id = event_id(tracefs, category, name)?;
    let perf = sys::perf_event_open(&attrs::tracepoint(id), None, -1, 0).map_err(|err| {
        AttachError::Sys {
            function: target.clone(),
            err,
        }
    })?;
    finish(perf, None, prog, target.clone(), &target)
}

/// A CPU-clock timer of `period_ns` on each of `cpus`, each running `prog`.
pub fn attach_cpu_clock(
    period_ns: u64,
    cpus: &[u32],
    prog: BorrowedFd<'_>,
) -> Result<Vec<Attachment>, AttachError> {
    attach_each_cpu(
        &attrs::cpu_clock(period_ns),
        "cpu-clock",
        cpus,
        prog,
        |function, err| AttachError::Sys { function, err },
    )
}

/// A sampling probe's perf event on each of `cpus`, as bpftrace opens it
/// (every process, no group).
pub fn attach_sampling(
    sampling: &lang::sampling::Sampling,
    cpus: &[u32],
    prog: BorrowedFd<'_>,
) -> Result<Vec<Attachment>, AttachError> {
    let attr = attrs::sampling(sampling);
    attach_each_cpu(&attr, &sampling.name, cpus, prog, |function, err| {
        // No counter: ENOENT (no such event on this PMU) or EOPNOTSUPP
        // (sampling unsupported), as under an emulator without a PMU.
        let no_counter = matches!(err.errno(), Some(libc::ENOENT | libc::EOPNOTSUPP));
        if sampling.event_type == kernel_headers::perf::PERF_TYPE_HARDWARE && no_counter {
            AttachError::NoCounter(sampling.name.clone())
        } else {
            AttachError::Sys { function, err }
        }
    })
}

/// The perf event `attr` (named `event`) on each of `cpus` for every
/// process, each running `prog`; `open_error` says why one did not open
/// (given `EVENT on cpu N`).
fn attach_each_cpu(
    attr: &kernel_headers::perf::PerfEventAttr,
    event: &str,
    cpus: &[u32],
    prog: BorrowedFd<'_>,
    open_error: impl Fn(String, SysError) -> AttachError,
) -> Result<Vec<Attachment>, AttachError> {
    let mut attached = Vec::with_capacity(cpus.len());
    for &cpu in cpus {
        let target = format!("{event} on cpu {cpu}");
        let perf = sys::perf_event_open(attr, None, -1, cpu as i32)
            .map_err(|err| open_error(target.clone(), err))?;
        // On error the events attached so far drop with `attached`.
        attached.push(finish(perf, None, prog, target.clone(), &target)?);
    }
    Ok(attached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_name_their_program_type() {
        let kprobe = AttachPoint::Kprobe("vfs_read".into());
        assert_eq!(kprobe.prog_type(), prog_type::KPROBE);
        assert_eq!(kprobe.function(), Some("vfs_read"));
        assert_eq!(
            AttachPoint::Kretprobe("f".into()).prog_type(),
            prog_type::KPROBE
        );
        let tp = AttachPoint::Tracepoint {
            category: "syscalls".into(),
            name: "sys_enter_openat".into(),
        };
        assert_eq!(tp.prog_type(), prog_type::TRACEPOINT);
        assert_eq!(tp.to_string(), "tracepoint:syscalls:sys_enter_openat");
        assert_eq!(tp.function(), None);
        let clock = AttachPoint::CpuClock { period_ns: 1000 };
        assert_eq!(clock.prog_type(), prog_type::PERF_EVENT);
    }

    #[test]
    fn tracepoint_ids_are_read_from_tracefs() {
        let dir = std::env::temp_dir().join(format!("nobtf-tp-{}", std::process::id()));
        let event = dir.join("events/sched/sched_switch");
        fs::create_dir_all(&event).unwrap();
        fs::write(event.join("id"), "316\n").unwrap();
        let id = event_id(&dir, "sched", "sched_switch");
        let missing = event_id(&dir, "sched", "nope");
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(id.unwrap(), 316);
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .starts_with("reading the id of tracefs event ")
        );
    }

    #[test]
    fn names_and_definitions() {
        let name = event_name(123, ProbeKind::Kretprobe, "do_unlinkat.isra.0", 4);
        assert_eq!(name, "nobtf_123_r_do_unlinkat_isra_0_4");
        assert_eq!(
            event_definition(ProbeKind::Kprobe, "nobtf_1_p_do_unlinkat_0", "do_unlinkat"),
            "p:nobtf/nobtf_1_p_do_unlinkat_0 do_unlinkat"
        );
    }
}
