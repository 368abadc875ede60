//! Attaching a loaded program to a kprobe, by the perf kprobe PMU (4.17+) or
//! through tracefs `kprobe_events` (any kernel with kprobe events). What is
//! attached is owned by an `Attachment` whose `Drop` detaches it and removes
//! what nobtf created; failures there are reported on stderr, not dropped.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::attrs;
use crate::features::KprobePmu;
use crate::sys::{self, SysError};

/// Group of every tracefs event nobtf creates.
pub const GROUP: &str = "nobtf";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// The kprobe PMU where the kernel has it, else tracefs.
    Auto,
    /// perf_event_open on the kprobe PMU (4.17+).
    Pmu,
    /// tracefs kprobe_events (any kernel with CONFIG_KPROBE_EVENTS).
    Tracefs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Entry,
    Return,
}

impl ProbeKind {
    fn letter(self) -> char {
        match self {
            ProbeKind::Entry => 'p',
            ProbeKind::Return => 'r',
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("attaching to {function}: {err}")]
    Sys { function: String, err: SysError },
    #[error("creating kprobe event `{definition}` in {path}: {err}")]
    Define {
        definition: String,
        path: String,
        err: std::io::Error,
    },
    #[error("reading the id of kprobe event {path}: {err}")]
    EventId { path: String, err: String },
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

/// A tracefs `kprobe_events` entry nobtf created; removed on drop.
#[derive(Debug)]
struct TracefsEvent {
    tracefs: PathBuf,
    name: String,
}

impl Drop for TracefsEvent {
    fn drop(&mut self) {
        let removal = format!("-:{GROUP}/{}", self.name);
        if let Err(err) = write_kprobe_events(&self.tracefs, &removal) {
            eprintln!(
                "warning: could not remove kprobe event {GROUP}/{} ({err}); remove it with: echo '{removal}' >> {}",
                self.name,
                self.tracefs.join("kprobe_events").display()
            );
        }
    }
}

/// One program attached to one probe point.
#[derive(Debug)]
pub struct Attachment {
    // Field order is drop order: the perf event goes before its tracefs
    // event, which the kernel refuses to remove while it is open.
    perf: OwnedFd,
    event: Option<TracefsEvent>,
    pub description: String,
}

impl Attachment {
    /// The tracefs event (`nobtf/<name>`) behind this attachment, if any.
    pub fn tracefs_event(&self) -> Option<String> {
        self.event.as_ref().map(|e| format!("{GROUP}/{}", e.name))
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Err(err) = sys::perf_disable(self.perf.as_fd()) {
            eprintln!("warning: detaching {}: {err}", self.description);
        }
    }
}

/// `nobtf_<pid>_<p|r>_<function>_<n>`: unique per process and parseable,
/// so a later cleanup can tell whose event it is.
pub fn event_name(pid: u32, kind: ProbeKind, function: &str, n: u32) -> String {
    let clean: String = function
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{GROUP}_{pid}_{}_{clean}_{n}", kind.letter())
}

/// The `kprobe_events` line that creates the event.
pub fn event_definition(kind: ProbeKind, name: &str, function: &str) -> String {
    format!("{}:{GROUP}/{name} {function}", kind.letter())
}

fn write_kprobe_events(tracefs: &Path, line: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .open(tracefs.join("kprobe_events"))?;
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

fn finish(
    perf: OwnedFd,
    event: Option<TracefsEvent>,
    prog: BorrowedFd<'_>,
    description: String,
    function: &str,
) -> Result<Attachment, AttachError> {
    let attachment = Attachment {
        perf,
        event,
        description,
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
    let retprobe = (kind == ProbeKind::Return).then_some(pmu.retprobe_bit);
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
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = event_name(std::process::id(), kind, function, n);
    let definition = event_definition(kind, &name, function);
    write_kprobe_events(tracefs, &definition).map_err(|err| AttachError::Define {
        definition: definition.clone(),
        path: tracefs.join("kprobe_events").display().to_string(),
        err,
    })?;
    // From here on the event exists and is removed if anything fails.
    let event = TracefsEvent {
        tracefs: tracefs.to_path_buf(),
        name: name.clone(),
    };
    let id_path = tracefs.join("events").join(GROUP).join(&name).join("id");
    let id: u64 = fs::read_to_string(&id_path)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            t.trim()
                .parse()
                .map_err(|_| format!("not a number: `{}`", t.trim()))
        })
        .map_err(|err| AttachError::EventId {
            path: id_path.display().to_string(),
            err,
        })?;
    let perf = sys::perf_event_open(&attrs::tracepoint(id), None, -1, 0).map_err(|err| {
        AttachError::Sys {
            function: function.to_string(),
            err,
        }
    })?;
    let description = format!("tracefs {GROUP}/{name}");
    finish(perf, Some(event), prog, description, function)
}

/// Parses a `kprobe_events` listing into (group/name) of nobtf's events.
pub fn our_events(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|def| def.split_once(':').map(|(_, name)| name))
        .filter(|name| name.starts_with(&format!("{GROUP}/")))
        .map(str::to_string)
        .collect()
}

/// The pid in a nobtf event name (`nobtf/nobtf_<pid>_...`), if it is one.
pub fn owner_pid(event: &str) -> Option<u32> {
    let rest = event.strip_prefix(&format!("{GROUP}/{GROUP}_"))?;
    let (pid, kind_and_more) = rest.split_once('_')?;
    if !kind_and_more.starts_with("p_") && !kind_and_more.starts_with("r_") {
        return None;
    }
    // Exactly as `event_name` writes it: digits, no sign, no leading zero.
    pid.parse::<u32>().ok().filter(|p| p.to_string() == pid)
}

/// What a stale-event sweep found.
#[derive(Debug, Default)]
pub struct Sweep {
    /// (event, owner pid) removed: their owner is gone.
    pub removed: Vec<(String, u32)>,
    /// (event, owner pid) left alone: their owner still runs.
    pub kept: Vec<(String, u32)>,
    /// (event, why) that could not be removed.
    pub failed: Vec<(String, String)>,
}

/// Removes nobtf's tracefs kprobe events whose owning process is gone (a
/// tracefs event outlives a SIGKILL'd owner). Only names nobtf makes are
/// considered; other groups, and nobtf events of live processes, are never
/// touched. The kernel itself refuses to remove an event still in use.
pub fn remove_stale(tracefs: &Path, alive: &dyn Fn(u32) -> bool) -> std::io::Result<Sweep> {
    let listing = fs::read_to_string(tracefs.join("kprobe_events"))?;
    let mut sweep = Sweep::default();
    for event in our_events(&listing) {
        let Some(pid) = owner_pid(&event) else {
            continue;
        };
        if alive(pid) {
            sweep.kept.push((event, pid));
            continue;
        }
        match write_kprobe_events(tracefs, &format!("-:{event}")) {
            Ok(()) => sweep.removed.push((event, pid)),
            Err(err) => sweep.failed.push((event, err.to_string())),
        }
    }
    Ok(sweep)
}

/// Whether a process of this pid exists (in this pid namespace).
pub fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(owner_pid("nobtf/nobtf_123_p_do_unlinkat_0"), Some(123));
        assert_eq!(owner_pid("nobtf/nobtf_9_r_do_unlinkat_isra_0_4"), Some(9));
        // Not nobtf's naming: never claimed.
        assert_eq!(owner_pid("nobtf/custom"), None);
        assert_eq!(owner_pid("nobtf/nobtf_x_p_f_0"), None);
        assert_eq!(owner_pid("nobtf/nobtf_12_q_f_0"), None);
        assert_eq!(owner_pid("nobtf/nobtf_+12_p_f_0"), None);
        assert_eq!(owner_pid("nobtf/nobtf_012_p_f_0"), None);
        assert_eq!(owner_pid("foreign/nobtf_12_p_f_0"), None);
    }

    #[test]
    fn names_and_definitions() {
        let name = event_name(123, ProbeKind::Return, "do_unlinkat.isra.0", 4);
        assert_eq!(name, "nobtf_123_r_do_unlinkat_isra_0_4");
        assert_eq!(
            event_definition(ProbeKind::Entry, "nobtf_1_p_do_unlinkat_0", "do_unlinkat"),
            "p:nobtf/nobtf_1_p_do_unlinkat_0 do_unlinkat"
        );
    }

    #[test]
    fn stale_sweep_touches_only_dead_owners_events() {
        // A plain file stands in for kprobe_events: removals are appended.
        let dir = std::env::temp_dir().join(format!("nobtf-sweep-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let listing = "p:foreign/x do_unlinkat\n\
                       p:nobtf/nobtf_10_p_do_unlinkat_0 do_unlinkat\n\
                       r16:nobtf/nobtf_10_r_do_unlinkat_1 do_unlinkat\n\
                       p:nobtf/nobtf_20_p_do_unlinkat_0 do_unlinkat\n\
                       p:nobtf/handmade do_unlinkat\n";
        fs::write(dir.join("kprobe_events"), listing).unwrap();
        let sweep = remove_stale(&dir, &|pid| pid == 20).unwrap();
        let written = fs::read_to_string(dir.join("kprobe_events")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            written.strip_prefix(listing).unwrap(),
            "-:nobtf/nobtf_10_p_do_unlinkat_0\n-:nobtf/nobtf_10_r_do_unlinkat_1\n"
        );
        assert_eq!(sweep.removed.len(), 2);
        assert_eq!(
            sweep.kept,
            vec![("nobtf/nobtf_20_p_do_unlinkat_0".to_string(), 20)]
        );
        assert!(sweep.failed.is_empty());
    }

    #[test]
    fn listing_filter() {
        let listing = "p:kprobes/other do_sys_open\np:nobtf/nobtf_1_p_do_unlinkat_0 do_unlinkat\nr4:nobtf/nobtf_1_r_do_unlinkat_1 do_unlinkat\n";
        assert_eq!(
            our_events(listing),
            vec![
                "nobtf/nobtf_1_p_do_unlinkat_0",
                "nobtf/nobtf_1_r_do_unlinkat_1"
            ]
        );
    }
}
