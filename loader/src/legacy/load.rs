//! `nobtf load FILE`: a BPF C object prepared for this kernel by
//! `bpf_object` (global data as maps or on the stack, helper fallback, CO-RE
//! fields from a profile or the kernel's BTF), its maps created and filled,
//! its programs relocated and loaded the way `nobtf run` loads its own
//! (kern_version, object names), attached to their functions; then the
//! trace pipe (and any perf event array, raw) is streamed until the command
//! ends, the duration passes, or a signal comes.
//!
//! Everything created lives in a `crate::session::Session`, which `nobtf
//! run` uses the same way and which tears it all down in reverse order.

use std::ffi::CString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bpf_object::{KernelFacts, NoFields, Prepared};
use kernel_headers::bpf::{RawInsn, map_flags, map_type};
use kernel_headers::bpf_attr::BPF_ANY;
use probes::MaxEntries;

use super::{ObjError, Object, ProbeKind};
use crate::attach::{AttachMode, AttachPoint};
use crate::detect::{Report, Scope};
use crate::fields::{Fields, FieldsError, KERNEL_BTF};
use crate::load::{self, LoadError};
use crate::plan::{self, PlanError};
use crate::session::{
    Events, Flow, MapSpec, ProgramSpec, Session, SessionError, Setup, write_error,
};
use crate::sys::SysError;

/// Data pages per CPU for a perf event array's rings.
const RING_PAGES: usize = 8;

/// What `nobtf load` was asked.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// The object, as `clang -target bpf -O2 -c prog.bpf.c -o prog.o` writes it.
    pub file: PathBuf,
    pub attach: AttachMode,
    /// Run `/bin/sh -c CMD` once attached; stop when it exits.
    pub command: Option<String>,
    pub duration: Option<Duration>,
    /// `--offsets FILE`: where CO-RE relocations find struct fields.
    pub offsets: Option<PathBuf>,
    /// `-v`: say what was rewritten for this kernel.
    pub verbose: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LegacyLoadError {
    #[error("reading {path}: {err}")]
    Read { path: String, err: io::Error },
    #[error("{path}: {err}")]
    Object { path: String, err: ObjError },
    #[error(
        "{path} has CO-RE relocations (fields {fields}) and this kernel has neither BTF \
         ({KERNEL_BTF}) nor a builtin offsets profile: generate one with `offsets gen \
         --fields-from {path} ...` and pass it with --offsets FILE"
    )]
    NoFieldSource { path: String, fields: String },
    #[error(transparent)]
    Fields(#[from] FieldsError),
    #[error("writing the initial value of global data map `{section}`: {err}")]
    DataMap { section: String, err: SysError },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Reads the object and runs it; the summary goes to stderr.
pub fn main(
    request: &LoadRequest,
    out: &mut dyn Write,
    started: Instant,
) -> Result<(), LegacyLoadError> {
    let path = request.file.display().to_string();
    let data = std::fs::read(&request.file).map_err(|err| LegacyLoadError::Read {
        path: path.clone(),
        err,
    })?;
    let object = Object::parse(&data).map_err(|err| LegacyLoadError::Object {
        path: path.clone(),
        err,
    })?;
    run(&object, request, out, started)
}

fn run(
    object: &Object,
    request: &LoadRequest,
    out: &mut dyn Write,
    started: Instant,
) -> Result<(), LegacyLoadError> {
    let path = request.file.display().to_string();
    let mut report = Report::detect(Scope::Start);
    let basic = *report.basic()?;
    let attach = plan::attach_mechanism(&report, request.attach)?;
    // Only an object with CO-RE relocations reads struct fields.
    let fields = if object.programs.iter().all(|p| p.core_relocs.is_empty()) {
        None
    } else {
        match Fields::choose(request.offsets.as_ref(), &report)? {
            Fields::Nothing => {
                return Err(LegacyLoadError::NoFieldSource {
                    path,
                    fields: object.needed_fields().join(", "),
                });
            }
            fields => Some(fields),
        }
    };
    let global = load::probe_global_data(report.kern_version());
    let prepared = object
        .prepare(
            &mut KernelFacts {
                global_data: global.map_values,
                has_helper: &mut |helper| *report.probe(helper) != load::Support::No,
            },
            match &fields {
                Some(fields) => fields,
                None => &NoFields,
            },
        )
        .map_err(|err| LegacyLoadError::Object {
            path: path.clone(),
            err,
        })?;
    tell(&prepared, fields.as_ref(), request.verbose);

    let mut session = Session::new(Setup {
        attach: attach.clone(),
        load: load::LoadOptions {
            kern_version: report.kern_version(),
            names: basic.names,
        },
        tracefs: report.tracefs.clone(),
        ring_pages: RING_PAGES,
        clone_fix: "name one in the section",
    })?;
    session.create_maps(prepared.maps.iter().map(|spec| map_spec(spec, global)))?;
    fill_data_maps(&session, &prepared, global)?;

    // The kernel decides whether it is GPL-compatible; the section was read
    // up to its NUL, so there is none inside.
    let license = CString::new(object.license.as_str()).unwrap_or_default();
    let fds = session.map_fds();
    for program in &prepared.programs {
        let insns = program
            .relocated(&fds)
            .map_err(|err| LegacyLoadError::Object {
                path: path.clone(),
                err,
            })?;
        let point = match program.kind {
            ProbeKind::Kprobe => AttachPoint::Kprobe(program.function.clone()),
            ProbeKind::Kretprobe => AttachPoint::Kretprobe(program.function.clone()),
        };
        session.load(
            &ProgramSpec {
                name: &program.name,
                point,
                insns: &insns,
                license: &license,
                disassembly: &Disassembly(&insns),
            },
            &mut report,
        )?;
    }

    match &report.tracefs {
        Ok(_) => session.open_trace_pipe()?,
        Err(e) => eprintln!("nobtf: warning: no trace pipe to stream ({e})"),
    }
    session.attach_all()?;
    let names: Vec<String> = prepared
        .programs
        .iter()
        .map(|p| format!("{} ({})", p.name, p.section))
        .collect();
    eprintln!(
        "nobtf: attached {} by {attach} in {} ms",
        names.join(", "),
        started.elapsed().as_millis()
    );

    if let Some(command) = &request.command {
        session.run_command(command)?;
    }
    let deadline = request.duration.map(|d| Instant::now() + d);
    let mut copier = Copier { out, lost: 0 };
    let result = session.stream(&mut copier, deadline).and_then(|()| {
        let rest = session.take_pipe_rest();
        copier.line(&rest)?;
        Ok(copier.out.flush().map_err(write_error)?)
    });
    session.end_command();
    // Unlike `nobtf run`, no loss flush: the kernel reports a full ring's
    // losses only with the ring's next sample, and only the object's own
    // programs write there, so losses in the last moments may go uncounted.
    if copier.lost > 0 {
        eprintln!("nobtf: {} perf samples lost (ring full)", copier.lost);
    }
    drop(session);
    result
}

/// Helper fallbacks always (the program calls something other than it
/// says); with `-v` every rewrite and where CO-RE fields came from.
fn tell(prepared: &Prepared, fields: Option<&Fields>, verbose: bool) {
    if verbose && let Some(fields) = fields {
        eprintln!("nobtf: CO-RE fields from {}", fields.describe());
    }
    for rewrite in &prepared.log {
        if verbose || matches!(rewrite, bpf_object::Rewrite::Helper { .. }) {
            eprintln!("nobtf: {rewrite}");
        }
    }
}

/// The session's form of a map `prepare` asked for. Read-only global data
/// is `BPF_F_RDONLY_PROG` where the kernel takes it: programs cannot write it.
fn map_spec(spec: &bpf_object::MapSpec, global: load::GlobalData) -> MapSpec {
    let def = &spec.def;
    let read_only = spec.data.as_ref().is_some_and(|d| d.read_only);
    MapSpec {
        name: def.name.clone(),
        map_type: def.map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        // As libbpf did: a perf event array without a size gets one slot per CPU.
        max_entries: match (def.map_type, def.max_entries) {
            (map_type::PERF_EVENT_ARRAY, 0) => MaxEntries::PossibleCpus,
            (_, n) => MaxEntries::Fixed(n),
        },
        flags: match read_only && global.rdonly_prog {
            true => def.map_flags | map_flags::F_RDONLY_PROG,
            false => def.map_flags,
        },
    }
}

/// Writes each global data map's initial value at key 0, then freezes the
/// read-only ones so user space cannot change them either. Freezing came
/// with global data (5.2); the read-only flag is the feature's witness.
fn fill_data_maps(
    session: &Session,
    prepared: &Prepared,
    global: load::GlobalData,
) -> Result<(), LegacyLoadError> {
    for spec in &prepared.maps {
        let Some(data) = &spec.data else { continue };
        let error = |err| LegacyLoadError::DataMap {
            section: data.section.clone(),
            err,
        };
        let map = session
            .map(&spec.def.name)
            .ok_or_else(|| SessionError::NoMap(spec.def.name.clone()))?;
        map.update(&0u32.to_le_bytes(), &data.initial, BPF_ANY)
            .map_err(error)?;
        if data.read_only && global.rdonly_prog {
            map.freeze().map_err(error)?;
        }
    }
    Ok(())
}

/// The program as sent, for the verifier's rejection report.
struct Disassembly<'a>(&'a [RawInsn]);

impl std::fmt::Display for Disassembly<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match probes::asm::decode(self.0) {
            Ok(insns) => {
                for (slot, insn) in insns {
                    writeln!(f, "{slot}: {insn}")?;
                }
                Ok(())
            }
            // Not everything clang emits is in nobtf's instruction set: show raw slots.
            Err(err) => {
                writeln!(f, "({err}; raw slots follow)")?;
                for (slot, i) in self.0.iter().enumerate() {
                    writeln!(
                        f,
                        "{slot}: code {:#04x} dst r{} src r{} off {} imm {}",
                        i.code,
                        i.dst(),
                        i.src(),
                        i.off,
                        i.imm
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Copies trace pipe lines and perf samples to the output.
struct Copier<'a> {
    out: &'a mut dyn Write,
    lost: u64,
}

impl Copier<'_> {
    fn emit(&mut self, line: &str) -> Result<(), LegacyLoadError> {
        Ok(writeln!(self.out, "{line}").map_err(write_error)?)
    }
}

impl Events for Copier<'_> {
    type Error = LegacyLoadError;

    /// Perf samples have no format nobtf knows: one hex line each.
    fn sample(&mut self, cpu: Option<u32>, data: &[u8]) -> Result<Flow, LegacyLoadError> {
        // Legacy objects write to perf event arrays only: a CPU is known.
        let cpu = cpu.unwrap_or_default();
        write!(self.out, "cpu {cpu}:").map_err(write_error)?;
        for byte in data {
            write!(self.out, " {byte:02x}").map_err(write_error)?;
        }
        writeln!(self.out).map_err(write_error)?;
        Ok(Flow::Continue)
    }

    fn lost(&mut self, _cpu: u32, count: u64) {
        self.lost += count;
    }

    fn line(&mut self, line: &str) -> Result<Flow, LegacyLoadError> {
        for record in super::records::split(line) {
            // Formats ending in "\n" leave an empty line on kernels that add their own.
            if !record.trim().is_empty() {
                self.emit(record)?;
            }
        }
        Ok(Flow::Continue)
    }

    fn idle(&mut self) -> Result<(), LegacyLoadError> {
        Ok(self.out.flush().map_err(write_error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf_object::{DataMap, MapDef};

    fn spec(map_type: u32, max_entries: u32, data: Option<bool>) -> bpf_object::MapSpec {
        bpf_object::MapSpec {
            def: MapDef {
                name: ".rodata".into(),
                map_type,
                key_size: 4,
                value_size: 48,
                max_entries,
                map_flags: 0x1,
            },
            data: data.map(|read_only| DataMap {
                section: ".rodata".into(),
                initial: vec![0; 48],
                read_only,
            }),
        }
    }

    const SINCE_5_2: load::GlobalData = load::GlobalData {
        map_values: true,
        rdonly_prog: true,
    };

    #[test]
    fn read_only_data_is_read_only_for_programs_where_the_kernel_says_so() {
        let rodata = spec(map_type::ARRAY, 1, Some(true));
        assert_eq!(map_spec(&rodata, SINCE_5_2).flags, 0x1 | 0x80);
        let without = load::GlobalData {
            map_values: true,
            rdonly_prog: false,
        };
        assert_eq!(map_spec(&rodata, without).flags, 0x1);
        // Writable data (.data, .bss) and the object's own maps keep their flags.
        assert_eq!(
            map_spec(&spec(map_type::ARRAY, 1, Some(false)), SINCE_5_2).flags,
            0x1
        );
        assert_eq!(
            map_spec(&spec(map_type::HASH, 8, None), SINCE_5_2).flags,
            0x1
        );
    }

    #[test]
    fn a_perf_event_array_without_a_size_gets_a_slot_per_cpu() {
        let perf = map_spec(&spec(map_type::PERF_EVENT_ARRAY, 0, None), SINCE_5_2);
        assert_eq!(perf.max_entries, MaxEntries::PossibleCpus);
        let sized = map_spec(&spec(map_type::PERF_EVENT_ARRAY, 4, None), SINCE_5_2);
        assert_eq!(sized.max_entries, MaxEntries::Fixed(4));
        assert_eq!(sized.name, ".rodata");
    }
}
