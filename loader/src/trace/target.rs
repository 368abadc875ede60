//! What a trace program is compiled against on this kernel: struct fields
//! (a profile, else the kernel's BTF, else the builtin profile), the
//! tracepoints' formats in tracefs, and the kernel's capabilities as
//! `detect` found them.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use kernel_headers::pt_regs;
use lang::kernel::Kernel;
use lang::tracepoint::{TracepointFormat, TracepointSource, parse_format};

use lang::config::MissingProbes;
use lang::providers::AttachPoint as LangPoint;
use lang::{Compiled, CompiledProbe};

use super::TraceError;
use crate::detect::Report;
use crate::features::{self, Probeable};
use crate::list::{self, Sources};
use crate::plan::{self, PlanError, ReadChoice};

/// `compiled` without the kprobes whose function this kernel lacks, as
/// bpftrace 0.23 treats them: one written in a list with others
/// (`kprobe:a,kprobe:b`) is left out silently (`missing_probes =
/// "ignore"`) or with a warning (`"warn"`, the default); otherwise it is
/// kept, to fail at attach with the reason. Leaving every probe out is an
/// error.
pub fn without_missing_functions(
    compiled: Compiled,
    tracefs: Option<&Path>,
) -> Result<Compiled, TraceError> {
    // Reading kallsyms (megabytes) only when a listed probe could be left out.
    let listed_kprobe = compiled
        .probes
        .iter()
        .any(|p| listed_functions(p, &compiled.listed).next().is_some());
    if compiled.config.missing_probes == MissingProbes::Error || !listed_kprobe {
        return Ok(compiled);
    }
    let Ok(kallsyms) = fs::read_to_string("/proc/kallsyms") else {
        return Ok(compiled);
    };
    let filter =
        tracefs.and_then(|dir| fs::read_to_string(dir.join("available_filter_functions")).ok());
    without_missing(compiled, &kallsyms, filter.as_deref())
}

/// [`without_missing_functions`] against these lists (the box's, for
/// `--dry-run`).
pub fn without_missing(
    mut compiled: Compiled,
    kallsyms: &str,
    filter: Option<&str>,
) -> Result<Compiled, TraceError> {
    let policy = compiled.config.missing_probes;
    let listed = compiled.listed.clone();
    let skippable = |p: &CompiledProbe| listed_functions(p, &listed).next().is_some();
    if policy == MissingProbes::Error || !compiled.probes.iter().any(skippable) {
        return Ok(compiled);
    }
    // The functions surely there, read once: a full scan per probe (what
    // `probeable` does, to name candidates) took 0.2 s a probe on
    // linux-4.14 under emulation.
    let present = present_functions(kallsyms, filter);
    let before = compiled.probes.len();
    // A program on several functions keeps those there, as if each were
    // its own probe.
    for probe in &mut compiled.probes {
        let missing: Vec<String> = listed_functions(probe, &listed)
            .filter(|f| !present.contains(f.as_str()))
            .filter(|f| {
                matches!(
                    features::probeable(f, kallsyms, filter),
                    Probeable::Missing { .. } | Probeable::NotTraceable
                )
            })
            .cloned()
            .collect();
        if let LangPoint::KprobeMulti { functions, ret, .. } = &mut probe.attach {
            for function in &missing {
                if policy == MissingProbes::Warn {
                    let kind = if *ret { "kretprobe" } else { "kprobe" };
                    eprintln!(
                        "warning: could not attach probe {kind}:{function}: this kernel cannot probe {function}, skipping"
                    );
                }
            }
            functions.retain(|f| !missing.contains(f));
        }
    }
    compiled.probes.retain(|probe| match &probe.attach {
        LangPoint::KprobeMulti { functions, .. } => !functions.is_empty(),
        _ => true,
    });
    compiled.probes.retain(|probe| {
        let (LangPoint::Kprobe(function) | LangPoint::Kretprobe(function)) = &probe.attach else {
            return true;
        };
        if !skippable(probe) || present.contains(function.as_str()) {
            return true;
        }
        match features::probeable(function, kallsyms, filter) {
            Probeable::Missing { .. } | Probeable::NotTraceable => {
                if policy == MissingProbes::Warn {
                    eprintln!(
                        "warning: could not attach probe {}: this kernel cannot probe {function}, skipping",
                        probe.attach
                    );
                }
                false
            }
            Probeable::Yes | Probeable::NoKprobes => true,
        }
    });
    let nothing_left = compiled.probes.is_empty()
        && before > 0
        && compiled.timers.is_empty()
        && compiled.begin.is_empty()
        && compiled.end.is_empty();
    if nothing_left {
        return Err(TraceError::Program(
            "every probe's function is missing from this kernel: nothing to attach".into(),
        ));
    }
    Ok(compiled)
}

/// The functions of `probe` written in a list with others (`listed`):
/// those bpftrace leaves out when the kernel lacks them.
fn listed_functions<'a>(
    probe: &'a CompiledProbe,
    listed: &'a [LangPoint],
) -> impl Iterator<Item = &'a String> + 'a {
    let (functions, ret): (&[String], bool) = match &probe.attach {
        LangPoint::Kprobe(f) => (std::slice::from_ref(f), false),
        LangPoint::Kretprobe(f) => (std::slice::from_ref(f), true),
        LangPoint::KprobeMulti { functions, ret, .. } => (functions, *ret),
        _ => (&[], false),
    };
    functions.iter().filter(move |f| {
        let point = if ret {
            LangPoint::Kretprobe((*f).clone())
        } else {
            LangPoint::Kprobe((*f).clone())
        };
        listed.contains(&point)
    })
}

/// The text symbols of `kallsyms` that `filter` (ftrace's list) also has,
/// when the kernel has kprobes: what `features::probeable` finds probeable.
fn present_functions<'a>(kallsyms: &'a str, filter: Option<&str>) -> HashSet<&'a str> {
    let text: HashSet<&str> = kallsyms.lines().filter_map(list::text_symbol).collect();
    if !text.contains(features::KPROBES_SYMBOL) {
        return HashSet::new();
    }
    match filter {
        None => text,
        Some(ftrace) => {
            let traceable: HashSet<&str> =
                ftrace.lines().filter_map(list::filter_function).collect();
            text.into_iter().filter(|f| traceable.contains(f)).collect()
        }
    }
}

/// Where a kernel's tracepoints and function lists are read: this
/// kernel's tracefs and `/proc/kallsyms` ([`LiveKernel`]), or copies of a
/// box's (`--dry-run`).
pub trait KernelFiles {
    /// The directory holding `CAT/NAME/format` (and `id`).
    fn events_dir(&self) -> Option<PathBuf>;
    /// The lists wildcards match against ([`crate::list`]).
    fn lists(&self) -> Sources;
    /// The kernel's symbols, for the functions ftrace's list lacks.
    fn kallsyms(&self) -> Option<String>;
    /// The id of a tracepoint whose `id` file cannot be read: `None`
    /// makes it missing.
    fn unknown_id(&self) -> Option<u32> {
        None
    }
    /// The files uprobes name, where they are this machine's.
    fn user_files(&self) -> Option<&super::uprobes::UserFiles> {
        None
    }
}

/// This kernel's files.
pub struct LiveKernel<'a> {
    tracefs: Option<&'a Path>,
    user: super::uprobes::UserFiles,
}

impl KernelFiles for LiveKernel<'_> {
    fn events_dir(&self) -> Option<PathBuf> {
        Some(self.tracefs?.join("events"))
    }

    fn lists(&self) -> Sources {
        Sources::read(self.tracefs)
    }

    fn kallsyms(&self) -> Option<String> {
        fs::read_to_string("/proc/kallsyms").ok()
    }

    fn user_files(&self) -> Option<&super::uprobes::UserFiles> {
        Some(&self.user)
    }
}

/// Tracepoint formats from `events/CAT/NAME/format` (and `id`), and the
/// probes wildcards match ([`crate::list`]), read once when a program has
/// a wildcard.
pub struct KernelTracepoints<F> {
    files: F,
    lists: OnceCell<Sources>,
    /// The functions a kprobe may take, for syscall tracepoints lowered to
    /// kprobes: ftrace's list, and kallsyms' text symbols for what that
    /// list lacks (kprobes need no ftrace: 4.14 lists `SyS_openat`, not
    /// its alias `sys_openat`; 5.4 leaves out `__x64_sys_sync`).
    functions: OnceCell<BTreeSet<String>>,
    text_symbols: OnceCell<BTreeSet<String>>,
    /// Each kernel wildcard's matches: compiling expands it several times.
    matched: RefCell<HashMap<String, Vec<String>>>,
}

/// This kernel's tracepoints.
pub type Tracepoints<'a> = KernelTracepoints<LiveKernel<'a>>;

impl<'a> Tracepoints<'a> {
    pub fn new(tracefs: Option<&'a Path>) -> Tracepoints<'a> {
        KernelTracepoints::over(LiveKernel {
            tracefs,
            user: Default::default(),
        })
    }

    pub fn user_files(&self) -> &super::uprobes::UserFiles {
        &self.files.user
    }
}

impl<F: KernelFiles> KernelTracepoints<F> {
    pub fn over(files: F) -> KernelTracepoints<F> {
        KernelTracepoints {
            files,
            lists: OnceCell::new(),
            functions: OnceCell::new(),
            text_symbols: OnceCell::new(),
            matched: Default::default(),
        }
    }

    fn lists(&self) -> &Sources {
        self.lists.get_or_init(|| self.files.lists())
    }
}

impl<F: KernelFiles> TracepointSource for KernelTracepoints<F> {
    fn format(&self, category: &str, name: &str) -> Option<TracepointFormat> {
        let dir = self.files.events_dir()?.join(category).join(name);
        let mut format = parse_format(&fs::read_to_string(dir.join("format")).ok()?).ok()?;
        if format.id.is_none() {
            let unknown = self.files.unknown_id();
            format.id = match fs::read_to_string(dir.join("id")) {
                Ok(id) => id.trim().parse().ok().or(unknown),
                Err(_) => Some(unknown?),
            };
        }
        Some(format)
    }

    fn matching(&self, pattern: &str) -> Option<Vec<String>> {
        if pattern.starts_with("uprobe:")
            && let Some(user) = self.files.user_files()
        {
            return user.matching(pattern);
        }
        if let Some(found) = self.matched.borrow().get(pattern) {
            return Some(found.clone());
        }
        let lists = self.lists();
        let found = lists
            .can_list(pattern)
            .then(|| list::probes(lists, Some(pattern)))?;
        self.matched
            .borrow_mut()
            .insert(pattern.to_string(), found.clone());
        Some(found)
    }

    fn can_probe(&self, function: &str) -> bool {
        let owned = |sources: &Sources| -> BTreeSet<String> {
            list::functions(sources)
                .into_iter()
                .map(String::from)
                .collect()
        };
        let listed = self.functions.get_or_init(|| owned(self.lists()));
        listed.contains(function)
            || self
                .text_symbols
                .get_or_init(|| {
                    owned(&Sources {
                        kallsyms: self.files.kallsyms(),
                        blacklist: self.lists().blacklist.clone(),
                        ..Sources::default()
                    })
                })
                .contains(function)
    }

    fn uprobe_binary(&self, binary: &str) -> Option<String> {
        match self.files.user_files() {
            Some(user) => user.find(binary),
            None => Some(binary.to_string()),
        }
    }
}

/// The kernel's capabilities: its release's limits and per-CPU maps, the
/// readers `read` resolves to here (probed), this machine's registers.
pub fn kernel(report: &mut Report, read: ReadChoice) -> Result<Kernel, PlanError> {
    let version = report
        .kernel
        .as_ref()
        .map_err(|e| PlanError::Kernel(e.clone()))?
        .version;
    let abi = pt_regs::abi(std::env::consts::ARCH).ok_or_else(|| {
        PlanError::Kernel(format!(
            "no register layout for architecture {}",
            std::env::consts::ARCH
        ))
    })?;
    plan::probe_readers(report, read);
    let mut kernel = Kernel::for_release(version, abi);
    kernel.readers = plan::reader(report, read)?;
    kernel.sink = report.sink();
    Ok(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_functions_are_text_symbols_ftrace_lists_too() {
        let kallsyms = "ffffffff81000000 T register_kprobe\nffffffff81000100 T vfs_read\nffffffff81000200 t foo\nffffffff81000300 D bar\nffffffff81000400 T not_traced\n";
        let present = present_functions(kallsyms, Some("vfs_read\nfoo [mod]\nbar\n"));
        assert_eq!(present, HashSet::from(["vfs_read", "foo"]));
        assert!(present_functions(kallsyms, None).contains("not_traced"));
        let no_kprobes = "ffffffff81000100 T vfs_read\n";
        assert!(present_functions(no_kprobes, None).is_empty());
    }
}
