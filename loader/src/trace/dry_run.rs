//! `nobtf trace --dry-run`: the program checked and compiled on the build
//! host for the box an offsets profile describes (its release and
//! architecture: that kernel's limits, readers and helpers), against the
//! box's symbol list and tracepoints when they are given (copies of its
//! `/proc/kallsyms` and tracefs), with no kernel touched. It prints what
//! would attach and refuses, with the same line and exit status, what a
//! real run on that box would refuse for a reason the host can see.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use kernel_headers::KernelVersion;
use kernel_headers::bpf::{Helper, Readers};
use kernel_headers::pt_regs;
use lang::providers::AttachPoint as LangPoint;
use lang::{Compiled, Target};
use profile::Profile;

use super::target::{self, KernelFiles, KernelTracepoints};
use super::{TraceError, TraceOptions};
use crate::attach::AttachMode;
use crate::backend::BackendChoice;
use crate::features;
use crate::fields::Fields;
use crate::list::Sources;
use crate::plan::{self, PlanError, ProfileChoiceError, ReadChoice};

/// What `--dry-run` checks against besides the profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DryRun {
    /// A copy of the box's `/proc/kallsyms`.
    pub kallsyms: Option<PathBuf>,
    /// A copy of the box's tracefs (`available_events`,
    /// `available_filter_functions`, `README`, `events/CAT/NAME/format`), or
    /// of its `events` directory alone.
    pub tracefs: Option<PathBuf>,
}

/// The box as the given files describe it.
struct Box_ {
    release: String,
    version: KernelVersion,
    abi: &'static pt_regs::Abi,
    kallsyms: Option<String>,
    filter_functions: Option<String>,
    /// The directory holding `CAT/NAME/format`.
    events: Option<PathBuf>,
    /// The tracefs root, when a whole one was given.
    root: Option<PathBuf>,
}

pub(super) fn run(
    opts: &TraceOptions,
    dry: &DryRun,
    out: &mut dyn Write,
) -> Result<(), TraceError> {
    let path = opts.offsets.as_ref().ok_or_else(|| {
        TraceError::Program(
            "--dry-run needs --offsets PROFILE: the box's kernel release and architecture come from it".into(),
        )
    })?;
    let shown = path.display().to_string();
    let profile = read_profile(path, &shown)?;
    let kernel_box = Box_::new(&profile, dry)?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "dry run for kernel {} on {} (offsets profile {shown}); no kernel was touched",
        kernel_box.release, kernel_box.abi.arch
    );
    match opts.backend {
        BackendChoice::Tracefs => kernel_box.tracefs_back_end(opts, profile, &mut text)?,
        _ => kernel_box.bpf_back_end(opts, profile, &mut text)?,
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|err| TraceError::Session(crate::session::write_error(err)))
}

fn read_profile(path: &Path, shown: &str) -> Result<Profile, TraceError> {
    let text = fs::read_to_string(path).map_err(|err| {
        PlanError::from(ProfileChoiceError::Read {
            path: shown.into(),
            err,
        })
    })?;
    Ok(Profile::from_toml_str(&text).map_err(|err| {
        PlanError::from(ProfileChoiceError::Parse {
            path: shown.into(),
            err,
        })
    })?)
}

impl Box_ {
    fn new(profile: &Profile, dry: &DryRun) -> Result<Box_, TraceError> {
        let release = profile.kernel.release.clone();
        let version = KernelVersion::parse(&release).ok_or_else(|| {
            PlanError::Kernel(format!(
                "the profile's release `{release}` is not X.Y.Z: --dry-run takes the box's limits from it"
            ))
        })?;
        let abi = pt_regs::abi(&profile.kernel.arch).ok_or_else(|| {
            PlanError::Kernel(format!("no register layout for {}", profile.kernel.arch))
        })?;
        let read = |path: &Path| {
            features::read(path).map_err(|e| TraceError::Plan(PlanError::Kernel(e.to_string())))
        };
        let kallsyms = dry.kallsyms.as_deref().map(read).transpose()?;
        let (events, root) = match &dry.tracefs {
            Some(dir) if dir.join("events").is_dir() => {
                (Some(dir.join("events")), Some(dir.clone()))
            }
            Some(dir) if dir.is_dir() => (Some(dir.clone()), None),
            Some(dir) => {
                return Err(PlanError::Kernel(format!(
                    "--tracepoints {}: not a directory (give a copy of the box's tracefs, or of its events directory)",
                    dir.display()
                ))
                .into());
            }
            None => (None, None),
        };
        let filter_functions = root
            .as_ref()
            .and_then(|r| fs::read_to_string(r.join("available_filter_functions")).ok());
        Ok(Box_ {
            release,
            version,
            abi,
            kallsyms,
            filter_functions,
            events,
            root,
        })
    }

    fn lang_kernel(&self, read: ReadChoice) -> Result<lang::kernel::Kernel, PlanError> {
        let mut kernel = lang::kernel::Kernel::for_release(self.version, self.abi);
        kernel.readers = self.reader(read)?;
        Ok(kernel)
    }

    /// The reader `--read-helper` resolves to on that release, refused as
    /// a real run refuses a helper the kernel lacks.
    fn reader(&self, choice: ReadChoice) -> Result<Readers, PlanError> {
        plan::chosen_reader(
            choice,
            |helper| self.has(helper),
            || Readers::for_release(self.version),
        )
    }

    fn has(&self, helper: Helper) -> bool {
        self.version >= helper.since()
    }

    fn fields(
        &self,
        opts: &TraceOptions,
        profile: Profile,
        kernel: lang::kernel::Kernel,
    ) -> Fields {
        let shown = opts
            .offsets
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string());
        let needs = lang::names_used(&opts.program, kernel).map_or(true, |used| {
            !used.fields.is_empty() || !used.enums.is_empty() || !used.structs.is_empty()
        });
        if needs {
            Fields::Profile {
                profile: Box::new(profile),
                shown,
            }
        } else {
            Fields::Nothing
        }
    }

    fn bpf_back_end(
        &self,
        opts: &TraceOptions,
        profile: Profile,
        text: &mut String,
    ) -> Result<(), TraceError> {
        let mut kernel = self.lang_kernel(opts.read)?;
        // The box's CONFIG_FPROBE is not known here: its release decides
        // (a live run tries, and falls back to one kprobe per function).
        kernel.kprobe_multi = opts.attach == AttachMode::Auto
            && lang::kernel::Kernel::release_has_kprobe_multi(self.version, self.abi);
        let attach = self.attach(opts.attach)?;
        let fields = self.fields(opts, profile, kernel);
        let tracepoints = KernelTracepoints::over(BoxFiles { kernel: self });
        let target = Target {
            fields: &fields,
            tracepoints: &tracepoints,
            kernel,
        };
        let compiled = super::compile_program(opts, &target)?;
        let compiled = match &self.kallsyms {
            Some(kallsyms) => {
                target::without_missing(compiled, kallsyms, self.filter_functions.as_deref())?
            }
            None => compiled,
        };
        self.functions_probeable(&compiled)?;
        let _ = writeln!(
            text,
            "back end: bpf (assumed: the box's kernel has bpf(2) and kprobe BPF programs; `nobtf check` there says)"
        );
        let _ = writeln!(text, "attach: {attach}");
        let multi = compiled
            .probes
            .iter()
            .filter(|p| matches!(p.attach, LangPoint::KprobeMulti { .. }))
            .count();
        if multi > 0 {
            let _ = writeln!(
                text,
                "kprobe_multi: {multi} program{} on several functions, one link each (assumed from release {}: the box's CONFIG_FPROBE is not checked; without it a live run attaches one kprobe per function)",
                plural(multi as u64),
                self.version
            );
        } else if let Some(refused) = &compiled.multi_refused {
            let _ = writeln!(
                text,
                "kprobe_multi: not used, one program per function ({refused})"
            );
        }
        let _ = writeln!(text, "reader: {}", plan::reader_name(kernel.readers));
        let count = lang::expand::bpftrace_probe_count(&opts.program, &tracepoints, self.abi);
        let _ = writeln!(text, "would attach {count} probe{}", plural(count));
        for probe in &compiled.probes {
            self.probe(probe, kernel.max_insns, opts.verbose, text)?;
        }
        self.unchecked(&compiled, text);
        Ok(())
    }

    fn tracefs_back_end(
        &self,
        opts: &TraceOptions,
        profile: Profile,
        text: &mut String,
    ) -> Result<(), TraceError> {
        super::tracefs::refuse_bpf_options(opts)?;
        let kernel = lang::kernel::Kernel::for_release(self.version, self.abi);
        let fields = self.fields(opts, profile, kernel);
        let tracepoints = KernelTracepoints::over(BoxFiles { kernel: self });
        let target = Target {
            fields: &fields,
            tracepoints: &tracepoints,
            kernel,
        };
        let readme = self
            .root
            .as_ref()
            .and_then(|r| fs::read_to_string(r.join("README")).ok())
            .unwrap_or_default();
        let syntax = lang::tracefs::Syntax::from_readme(&readme);
        let mut n = 0;
        let mut name = |_: kernel_headers::kprobe::ProbeKind, function: &str| {
            n += 1;
            format!("{function}_{n}")
        };
        let program = super::tracefs::translate(
            opts,
            &target,
            syntax,
            &mut name,
            &[],
            "--backend tracefs",
            "",
        )?;
        self.functions_probeable(&program.compiled)?;
        let _ = writeln!(text, "back end: tracefs kprobe events (no BPF)");
        let count = lang::expand::bpftrace_probe_count(&opts.program, &tracepoints, self.abi);
        let _ = writeln!(text, "would attach {count} probe{}", plural(count));
        for probe in &program.probes {
            let definition = probe
                .event
                .definition(self.abi, syntax)
                .map_err(|e| PlanError::Attach(e.to_string()))?;
            let _ = writeln!(text, "event {}", probe.event.name);
            if opts.verbose {
                let _ = writeln!(text, "  {definition}");
                if let Some(filter) = &probe.filter {
                    let _ = writeln!(text, "  filter {filter}");
                }
            }
        }
        self.unchecked(&program.compiled, text);
        Ok(())
    }

    /// The attach mechanism `mode` resolves to on that release.
    fn attach(&self, mode: AttachMode) -> Result<&'static str, PlanError> {
        let pmu = self.version >= KernelVersion::new(4, 17, 0);
        Ok(if plan::uses_pmu(mode, Ok(pmu))? {
            "perf_event_open on the kprobe PMU"
        } else {
            "tracefs kprobe_events"
        })
    }

    /// Every kprobe's function is in the box's kallsyms (when given).
    fn functions_probeable(&self, compiled: &Compiled) -> Result<(), TraceError> {
        let Some(kallsyms) = &self.kallsyms else {
            return Ok(());
        };
        for probe in &compiled.probes {
            let functions = match &probe.attach {
                LangPoint::Kprobe(function) | LangPoint::Kretprobe(function) => {
                    std::slice::from_ref(function)
                }
                LangPoint::KprobeMulti { functions, .. } => functions.as_slice(),
                _ => continue,
            };
            for function in functions {
                let probeable =
                    features::probeable(function, kallsyms, self.filter_functions.as_deref());
                plan::explain_probeable(function, &probeable)?;
            }
        }
        Ok(())
    }

    /// One program: its size against the limit, its helpers (each one the
    /// release has), the static checks a load runs; `-v`, its bytecode.
    fn probe(
        &self,
        probe: &lang::CompiledProbe,
        max_insns: usize,
        verbose: bool,
        text: &mut String,
    ) -> Result<(), TraceError> {
        probe.encode(|_| Some(-1)).map_err(TraceError::Encode)?;
        let helpers = probe.helpers();
        if let Some(missing) = helpers.iter().find(|h| !self.has(**h)) {
            return Err(PlanError::Helper(*missing).into());
        }
        let names: Vec<&str> = helpers.iter().map(|h| h.name()).collect();
        let _ = writeln!(
            text,
            "program {}: {} instructions of {max_insns}; helpers: {}",
            probe.attach,
            probe.insns.len(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
        if verbose {
            let _ = writeln!(text, "{}", probe.insns);
        }
        Ok(())
    }

    /// What the given files could not show.
    fn unchecked(&self, compiled: &Compiled, text: &mut String) {
        let kprobes = compiled.probes.iter().any(|p| {
            matches!(
                p.attach,
                LangPoint::Kprobe(_) | LangPoint::Kretprobe(_) | LangPoint::KprobeMulti { .. }
            )
        });
        if kprobes && self.kallsyms.is_none() {
            let _ = writeln!(
                text,
                "not checked: whether the functions exist on the box (give --kallsyms, a copy of its /proc/kallsyms)"
            );
        }
        let tracepoints = compiled
            .probes
            .iter()
            .any(|p| matches!(p.attach, LangPoint::Tracepoint { .. }));
        if tracepoints && self.events.is_none() {
            let _ = writeln!(
                text,
                "not checked: whether the tracepoints exist on the box (give --tracepoints, a copy of its tracefs)"
            );
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The box's copied files: tracepoint formats, and the lists wildcards
/// and syscall lowering match against. Without a copy of kallsyms nothing
/// is known to be probeable, so no syscall is lowered.
struct BoxFiles<'a> {
    kernel: &'a Box_,
}

impl BoxFiles<'_> {
    /// `CAT:NAME` a line: the box's `available_events`, else the
    /// directories of its events copy.
    fn events_list(&self) -> Option<String> {
        if let Some(root) = &self.kernel.root
            && let Ok(text) = fs::read_to_string(root.join("available_events"))
        {
            return Some(text);
        }
        let events = self.kernel.events.as_ref()?;
        let mut out = String::new();
        for category in fs::read_dir(events).ok()?.flatten() {
            let Ok(names) = fs::read_dir(category.path()) else {
                continue;
            };
            for name in names.flatten() {
                if name.path().join("format").is_file() {
                    let _ = writeln!(
                        out,
                        "{}:{}",
                        category.file_name().to_string_lossy(),
                        name.file_name().to_string_lossy()
                    );
                }
            }
        }
        Some(out)
    }
}

impl KernelFiles for BoxFiles<'_> {
    fn events_dir(&self) -> Option<PathBuf> {
        self.kernel.events.clone()
    }

    fn lists(&self) -> Sources {
        Sources {
            filter_functions: self.kernel.filter_functions.clone(),
            kallsyms: self.kernel.kallsyms.clone(),
            events: self.events_list(),
            blacklist: None,
        }
    }

    fn kallsyms(&self) -> Option<String> {
        self.kernel.kallsyms.clone()
    }

    /// A copy may hold the formats alone; nothing attaches by the id.
    fn unknown_id(&self) -> Option<u32> {
        Some(0)
    }
}
