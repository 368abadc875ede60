//! What a trace program is compiled against on this kernel: struct fields
//! (a profile, else the kernel's BTF, else the builtin profile), the
//! tracepoints' formats in tracefs, and the kernel's capabilities as
//! `detect` found them.

use std::cell::OnceCell;
use std::fs;
use std::path::{Path, PathBuf};

use btf::Btf;
use kernel_headers::pt_regs;
use kernel_headers::pt_regs::NATIVE;
use lang::fields::{FieldInfo, FieldSource};
use lang::kernel::Kernel;
use lang::tracepoint::{TracepointFormat, TracepointSource, parse_format};
use profile::Profile;

use lang::config::MissingProbes;
use lang::providers::AttachPoint as LangPoint;
use lang::{Compiled, CompiledProbe};

use super::TraceError;
use crate::detect::Report;
use crate::features::{self, Probeable};
use crate::list::{self, Sources};
use crate::plan::{self, PlanError, ReadChoice};

/// Where the kernel's BTF is, when it has one.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Where struct members come from.
pub enum Fields {
    Profile {
        profile: Box<Profile>,
        shown: String,
    },
    Btf(Box<Btf>),
    /// No profile and no BTF: programs that read no struct still run; one
    /// that does is refused by the checker, naming the field.
    Nothing,
}

impl Fields {
    /// `--offsets FILE`, else the kernel's BTF, else the builtin profile
    /// known to fit this kernel, else nothing.
    pub fn choose(offsets: Option<&PathBuf>, report: &Report) -> Result<Fields, PlanError> {
        if let Some(path) = offsets {
            return Ok(Fields::Profile {
                profile: Box::new(plan::choose_profile(Some(path), report)?),
                shown: path.display().to_string(),
            });
        }
        if let Ok(bytes) = fs::read(KERNEL_BTF)
            && let Ok(btf) = Btf::parse(&bytes)
        {
            // BTF does not record the pointer size (4 bytes on 32-bit ARM).
            let btf = btf.with_pointer_size(u32::from(NATIVE.pointer_bytes));
            return Ok(Fields::Btf(Box::new(btf)));
        }
        Ok(match plan::choose_profile(None, report) {
            Ok(profile) => Fields::Profile {
                profile: Box::new(profile),
                shown: "the builtin profile".into(),
            },
            Err(_) => Fields::Nothing,
        })
    }

    /// For `-v`: where fields come from.
    pub fn describe(&self) -> String {
        match self {
            Fields::Profile { shown, .. } => format!("offsets profile {shown}"),
            Fields::Btf(_) => format!("the kernel's BTF ({KERNEL_BTF})"),
            Fields::Nothing => "nowhere (no profile, no BTF, no builtin profile fits)".into(),
        }
    }
}

impl FieldSource for Fields {
    fn field(&self, strukt: &str, member: &str) -> Option<FieldInfo> {
        match self {
            Fields::Profile { profile, .. } => FieldSource::field(profile.as_ref(), strukt, member),
            Fields::Btf(btf) => FieldSource::field(btf.as_ref(), strukt, member),
            Fields::Nothing => None,
        }
    }

    fn struct_layout(&self, strukt: &str) -> Option<(u32, u32)> {
        match self {
            Fields::Btf(btf) => FieldSource::struct_layout(btf.as_ref(), strukt),
            _ => None,
        }
    }

    fn enum_value(&self, name: &str) -> Option<i64> {
        match self {
            Fields::Btf(btf) => FieldSource::enum_value(btf.as_ref(), name),
            _ => None,
        }
    }

    fn has_kernel_btf(&self) -> bool {
        matches!(self, Fields::Btf(_))
    }
}

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
    let listed_kprobe = compiled.probes.iter().any(|p| {
        matches!(p.attach, LangPoint::Kprobe(_) | LangPoint::Kretprobe(_))
            && compiled.listed.contains(&p.attach)
    });
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
    let skippable = |p: &CompiledProbe| {
        matches!(p.attach, LangPoint::Kprobe(_) | LangPoint::Kretprobe(_))
            && listed.contains(&p.attach)
    };
    if policy == MissingProbes::Error || !compiled.probes.iter().any(skippable) {
        return Ok(compiled);
    }
    let before = compiled.probes.len();
    compiled.probes.retain(|probe| {
        let (LangPoint::Kprobe(function) | LangPoint::Kretprobe(function)) = &probe.attach else {
            return true;
        };
        if !skippable(probe) {
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

/// Tracepoint formats from tracefs `events/CAT/NAME/format` (and `id`),
/// and the probes wildcards match ([`crate::list`]), read once when a
/// program has a wildcard.
pub struct Tracepoints<'a> {
    tracefs: Option<&'a Path>,
    lists: OnceCell<Sources>,
}

impl<'a> Tracepoints<'a> {
    pub fn new(tracefs: Option<&'a Path>) -> Tracepoints<'a> {
        Tracepoints {
            tracefs,
            lists: OnceCell::new(),
        }
    }
}

impl TracepointSource for Tracepoints<'_> {
    fn format(&self, category: &str, name: &str) -> Option<TracepointFormat> {
        let dir = self.tracefs?.join("events").join(category).join(name);
        let mut format = parse_format(&fs::read_to_string(dir.join("format")).ok()?).ok()?;
        if format.id.is_none() {
            format.id = fs::read_to_string(dir.join("id")).ok()?.trim().parse().ok();
        }
        Some(format)
    }

    fn matching(&self, pattern: &str) -> Option<Vec<String>> {
        let lists = self.lists.get_or_init(|| Sources::read(self.tracefs));
        lists
            .can_list(pattern)
            .then(|| list::probes(lists, Some(pattern)))
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
    Ok(kernel)
}
