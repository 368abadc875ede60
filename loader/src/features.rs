//! What the running kernel offers, found by looking (files, tiny test loads)
//! rather than trusting version numbers, which vendor kernels bend. The text
//! parsers are pure and tested here; the readers around them only do I/O.

use std::fs;
use std::path::{Path, PathBuf};

use crate::sys;

pub use kernel_headers::KernelVersion;

/// The version the kernel was built as. uname's release is not always it:
/// Ubuntu puts the upstream version in /proc/version_signature
/// (`Ubuntu 5.4.0-42.46-generic 5.4.44`), Debian in uname's version string
/// (`#1 SMP Debian 5.10.209-2 (2024-01-31)`) while the release says `5.10.0`.
pub fn build_version(
    release: &str,
    uts_version: &str,
    signature: Option<&str>,
) -> Option<KernelVersion> {
    if let Some(sig) = signature
        && let Some(v) = sig.split_whitespace().last().and_then(KernelVersion::parse)
    {
        return Some(v);
    }
    if let Some((_, after)) = uts_version.split_once("Debian ")
        && let Some(v) = KernelVersion::parse(after)
    {
        return Some(v);
    }
    KernelVersion::parse(release)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// `uname -r`.
    pub release: String,
    pub version: KernelVersion,
}

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    #[error("kernel release `{0}` is not X.Y.Z")]
    Release(String),
    #[error(
        "no tracefs: not mounted at /sys/kernel/tracing or /sys/kernel/debug/tracing and mounting it failed ({0}); is CONFIG_FTRACE set?"
    )]
    NoTracefs(String),
    #[error(
        "tracefs is mounted at {0} but has no kprobe_events: this kernel has no kprobe events (CONFIG_KPROBE_EVENTS or CONFIG_KPROBES is off)"
    )]
    NoKprobeEvents(String),
    #[error("reading {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("cannot parse {path}: `{text}`")]
    Parse { path: String, text: String },
}

pub fn read(path: impl AsRef<Path>) -> Result<String, FeatureError> {
    let path = path.as_ref();
    fs::read_to_string(path).map_err(|err| FeatureError::Read {
        path: path.display().to_string(),
        err,
    })
}

pub fn kernel() -> Result<Kernel, FeatureError> {
    let (release, uts_version) = sys::uname()?;
    let signature = fs::read_to_string("/proc/version_signature").ok();
    let version = build_version(&release, &uts_version, signature.as_deref())
        .ok_or_else(|| FeatureError::Release(release.clone()))?;
    Ok(Kernel { release, version })
}

const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";
const UPROBE_PMU: &str = "/sys/bus/event_source/devices/uprobe";

/// The perf kprobe PMU (4.17+), or the uprobe PMU (the same shape, added
/// with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KprobePmu {
    pub pmu_type: u32,
    /// Bit of `config` that makes a return probe.
    pub retprobe_bit: u32,
}

/// Parses a PMU format file such as `config:0`.
pub fn parse_format_bit(text: &str) -> Option<u32> {
    let bits = text.trim().strip_prefix("config:")?;
    bits.split('-').next()?.parse().ok()
}

/// `Ok(None)` when the kernel has no kprobe PMU.
pub fn kprobe_pmu() -> Result<Option<KprobePmu>, FeatureError> {
    probe_pmu(Path::new(KPROBE_PMU))
}

/// `Ok(None)` when the kernel has no uprobe PMU.
pub fn uprobe_pmu() -> Result<Option<KprobePmu>, FeatureError> {
    probe_pmu(Path::new(UPROBE_PMU))
}

/// The PMU of sysfs directory `dir`: its type and `format/retprobe` bit.
fn probe_pmu(dir: &Path) -> Result<Option<KprobePmu>, FeatureError> {
    if !dir.exists() {
        return Ok(None);
    }
    let type_path = dir.join("type");
    let text = read(&type_path)?;
    let pmu_type = text.trim().parse().map_err(|_| FeatureError::Parse {
        path: type_path.display().to_string(),
        text: text.trim().into(),
    })?;
    let format_path = dir.join("format/retprobe");
    let text = read(&format_path)?;
    let retprobe_bit = parse_format_bit(&text).ok_or_else(|| FeatureError::Parse {
        path: format_path.display().to_string(),
        text: text.trim().into(),
    })?;
    Ok(Some(KprobePmu {
        pmu_type,
        retprobe_bit,
    }))
}

/// Where tracefs is, from /proc/mounts: a tracefs mount, or `tracing/` under
/// a debugfs mount.
pub fn find_tracefs(mounts: &str) -> Option<PathBuf> {
    let mut debugfs = None;
    for line in mounts.lines() {
        let mut cols = line.split_whitespace();
        let (Some(_dev), Some(dir), Some(fstype)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        match fstype {
            "tracefs" => return Some(PathBuf::from(dir)),
            "debugfs" if debugfs.is_none() => debugfs = Some(Path::new(dir).join("tracing")),
            _ => {}
        }
    }
    debugfs
}

/// tracefs, mounted at /sys/kernel/tracing if nothing has it yet, with
/// its `kprobe_events`. A tracefs without it is named as such: the kernel
/// has tracing but no kprobe events.
pub fn tracefs() -> Result<PathBuf, FeatureError> {
    let mounts = read("/proc/mounts")?;
    // (A debugfs mount without `tracing/` is a kernel without tracing: try
    // mounting tracefs, as when nothing is mounted.)
    if let Some(dir) = find_tracefs(&mounts)
        && dir.exists()
    {
        return with_kprobe_events(dir);
    }
    let tracing = c"/sys/kernel/tracing";
    match sys::mount_pseudo(c"tracefs", tracing) {
        Ok(()) => with_kprobe_events(PathBuf::from("/sys/kernel/tracing")),
        // Before 4.1 tracefs is debugfs' `tracing` directory.
        Err(first) => match sys::mount_pseudo(c"debugfs", c"/sys/kernel/debug") {
            Ok(()) if Path::new("/sys/kernel/debug/tracing/trace").exists() => {
                with_kprobe_events(PathBuf::from("/sys/kernel/debug/tracing"))
            }
            Ok(()) => Err(FeatureError::NoTracefs(first.to_string())),
            Err(second) => Err(FeatureError::NoTracefs(format!("{first}; {second}"))),
        },
    }
}

fn with_kprobe_events(dir: PathBuf) -> Result<PathBuf, FeatureError> {
    let events = dir.join("kprobe_events");
    match fs::metadata(&events) {
        Ok(_) => Ok(dir),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(FeatureError::NoKprobeEvents(dir.display().to_string()))
        }
        // Not root: tracefs is root's; that is not a kernel without them.
        Err(err) => Err(FeatureError::Read {
            path: events.display().to_string(),
            err,
        }),
    }
}

/// Parses a CPU list such as `0-3,6,8-9`.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

const POSSIBLE_CPUS: &str = "/sys/devices/system/cpu/possible";
const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";

fn cpu_list(path: &str) -> Result<Vec<u32>, FeatureError> {
    let text = read(path)?;
    parse_cpu_list(&text).ok_or_else(|| FeatureError::Parse {
        path: path.into(),
        text: text.trim().into(),
    })
}

/// CPUs that may ever exist: the perf event array is indexed by CPU number.
pub fn possible_cpus() -> Result<Vec<u32>, FeatureError> {
    cpu_list(POSSIBLE_CPUS)
}

/// CPUs that can run the probes now: each gets a perf ring.
pub fn online_cpus() -> Result<Vec<u32>, FeatureError> {
    cpu_list(ONLINE_CPUS)
}

/// Whether a kprobe can attach to a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probeable {
    Yes,
    /// Not in kallsyms (inlined or renamed); `candidates` are compiler clones
    /// such as `do_unlinkat.isra.0` a profile could name instead.
    Missing {
        candidates: Vec<String>,
    },
    /// A symbol, but ftrace/kprobes refuse it (e.g. `notrace` or blacklisted).
    NotTraceable,
    /// The kernel has no kprobes at all (no `register_kprobe` in kallsyms):
    /// nothing is probeable.
    NoKprobes,
}

/// A text symbol only a kernel with CONFIG_KPROBES has.
pub const KPROBES_SYMBOL: &str = "register_kprobe";

/// Decides from /proc/kallsyms and (if readable) available_filter_functions.
pub fn probeable(function: &str, kallsyms: &str, filter_functions: Option<&str>) -> Probeable {
    let clone_prefix = format!("{function}.");
    let mut found = false;
    let mut kprobes = false;
    let mut candidates = Vec::new();
    for line in kallsyms.lines() {
        let mut cols = line.split_whitespace();
        let (Some(_addr), Some(kind), Some(name)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        // Only text symbols can be probed.
        if !matches!(kind, "t" | "T") {
            continue;
        }
        if name == KPROBES_SYMBOL {
            kprobes = true;
        }
        if name == function {
            found = true;
        } else if name.starts_with(&clone_prefix)
            // A `.cold` part is the function's unlikely path split off, not
            // an entry point a probe could use.
            && !name.contains(".cold")
            && !candidates.iter().any(|c| c == name)
        {
            candidates.push(name.to_string());
        }
    }
    if !kprobes {
        return Probeable::NoKprobes;
    }
    if !found {
        return Probeable::Missing { candidates };
    }
    match filter_functions {
        Some(list)
            if !list
                .lines()
                .any(|l| l.split_whitespace().next() == Some(function)) =>
        {
            Probeable::NotTraceable
        }
        _ => Probeable::Yes,
    }
}

pub fn function_probeable(
    function: &str,
    tracefs: Option<&Path>,
) -> Result<Probeable, FeatureError> {
    let kallsyms = read("/proc/kallsyms")?;
    let filter =
        tracefs.and_then(|dir| fs::read_to_string(dir.join("available_filter_functions")).ok());
    Ok(probeable(function, &kallsyms, filter.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_version_prefers_vendor_sources() {
        let ubuntu = build_version(
            "5.4.0-42-generic",
            "#46-Ubuntu SMP",
            Some("Ubuntu 5.4.0-42.46-generic 5.4.44\n"),
        );
        assert_eq!(ubuntu.unwrap().to_string(), "5.4.44");
        let debian = build_version(
            "5.10.0-32-amd64",
            "#1 SMP Debian 5.10.223-1 (2024-08-10)",
            None,
        );
        assert_eq!(debian.unwrap().to_string(), "5.10.223");
        let plain = build_version("6.1.0", "#1 SMP PREEMPT", None);
        assert_eq!(plain.unwrap().to_string(), "6.1.0");
    }

    #[test]
    fn pmu_format_and_cpus() {
        assert_eq!(parse_format_bit("config:0\n"), Some(0));
        assert_eq!(parse_format_bit("config:3-4"), Some(3));
        assert_eq!(parse_format_bit("garbage"), None);
        assert_eq!(parse_cpu_list("0-3,6\n"), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list(""), None);
    }

    #[test]
    fn tracefs_from_mounts() {
        let mounts = "debugfs /sys/kernel/debug debugfs rw 0 0\ntracefs /sys/kernel/tracing tracefs rw 0 0\n";
        assert_eq!(
            find_tracefs(mounts),
            Some(PathBuf::from("/sys/kernel/tracing"))
        );
        let old = "debugfs /sys/kernel/debug debugfs rw 0 0\n";
        assert_eq!(
            find_tracefs(old),
            Some(PathBuf::from("/sys/kernel/debug/tracing"))
        );
        assert_eq!(find_tracefs("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn probeable_function() {
        let syms = "ffffffff81300000 T do_unlinkat\nffffffff81300100 t do_rmdir\nffffffff81100000 T register_kprobe\n";
        assert_eq!(probeable("do_unlinkat", syms, None), Probeable::Yes);
        assert_eq!(
            probeable("do_unlinkat", syms, Some("do_rmdir\n")),
            Probeable::NotTraceable
        );
        assert_eq!(
            probeable("do_unlinkat", syms, Some("do_unlinkat\ndo_rmdir\n")),
            Probeable::Yes
        );
        let clones = "ffffffff81300000 t do_unlinkat.isra.0\nffffffff81300100 t do_unlinkat.cold\nffffffff81300200 d do_unlinkat_data\nffffffff81100000 T register_kprobe\n";
        assert_eq!(
            probeable("do_unlinkat", clones, None),
            Probeable::Missing {
                candidates: vec!["do_unlinkat.isra.0".into()]
            }
        );
        // A kernel without kprobes has the function, and nothing is probeable.
        let no_kprobes = "ffffffff81300000 T do_unlinkat\n";
        assert_eq!(
            probeable("do_unlinkat", no_kprobes, None),
            Probeable::NoKprobes
        );
    }
}
