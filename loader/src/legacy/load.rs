//! `nobtf load FILE`: a legacy object's maps created, its programs
//! relocated, adapted to this kernel (kern_version, object names, helpers)
//! and loaded the way `nobtf run` loads its own, attached to their functions;
//! then the trace pipe (and any perf event array, raw) is streamed until the
//! command ends, the duration passes, or a signal comes.
//!
//! Everything created lives in a `crate::session::Session`, which `nobtf
//! run` uses the same way and which tears it all down in reverse order.

use std::ffi::CString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kernel_headers::bpf::{Helper, RawInsn, map_type};
use probes::MaxEntries;

use super::{ObjError, Object, ProbeKind};
use crate::attach::{AttachMode, AttachPoint};
use crate::detect::{Report, Scope};
use crate::load::{self, CALL, LoadError};
use crate::plan::{self, PlanError};
use crate::session::{
    Events, Flow, MapSpec, ProgramSpec, Session, SessionError, Setup, write_error,
};

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
}

#[derive(Debug, thiserror::Error)]
pub enum LegacyLoadError {
    #[error("reading {path}: {err}")]
    Read { path: String, err: io::Error },
    #[error("{path}: {err}")]
    Object { path: String, err: ObjError },
    #[error(
        "program `{program}` calls {} (instruction {insn}), which this kernel does not \
         have (mainline has it since {}){}",
        .helper.name(), .helper.since().series(),
        fallback(*.helper).map_or(String::new(), |f| format!(", nor its older form {}", f.name()))
    )]
    Helper {
        program: String,
        insn: usize,
        helper: Helper,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// The older helper that reads kernel memory the same way on x86-64, for
/// kernels before 5.5 that lack the `_kernel`/`_user` split.
pub fn fallback(helper: Helper) -> Option<Helper> {
    match helper {
        Helper::ProbeReadKernel | Helper::ProbeReadUser => Some(Helper::ProbeRead),
        Helper::ProbeReadKernelStr | Helper::ProbeReadUserStr => Some(Helper::ProbeReadStr),
        _ => None,
    }
}

/// Rewrites calls to helpers this kernel lacks into their older form where
/// there is one; returns what was replaced, or the first call that cannot
/// be served. Helpers nobtf does not know are left for the verifier to judge.
pub fn adapt_helpers(
    program: &str,
    insns: &mut [RawInsn],
    available: &mut dyn FnMut(Helper) -> bool,
) -> Result<Vec<(Helper, Helper)>, LegacyLoadError> {
    let mut replaced = Vec::new();
    for (index, insn) in insns.iter_mut().enumerate() {
        if insn.code != CALL || insn.src() != 0 {
            continue;
        }
        let Some(helper) = Helper::from_id(insn.imm as u32) else {
            continue;
        };
        if available(helper) {
            continue;
        }
        match fallback(helper).filter(|&f| available(f)) {
            Some(older) => {
                insn.imm = older.id() as i32;
                if !replaced.contains(&(helper, older)) {
                    replaced.push((helper, older));
                }
            }
            None => {
                return Err(LegacyLoadError::Helper {
                    program: program.to_string(),
                    insn: index,
                    helper,
                });
            }
        }
    }
    Ok(replaced)
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
    let mut report = Report::detect(Scope::Start);
    let basic = *report.basic()?;
    let attach = plan::attach_mechanism(&report, request.attach)?;
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
    session.create_maps(object.maps.iter().map(|def| MapSpec {
        name: def.name.clone(),
        map_type: def.map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        // As libbpf did: a perf event array without a size gets one slot per CPU.
        max_entries: match (def.map_type, def.max_entries) {
            (map_type::PERF_EVENT_ARRAY, 0) => MaxEntries::PossibleCpus,
            (_, n) => MaxEntries::Fixed(n),
        },
        flags: def.map_flags,
    }))?;

    // The kernel decides whether it is GPL-compatible; the section was read
    // up to its NUL, so there is none inside.
    let license = CString::new(object.license.as_str()).unwrap_or_default();
    let fds = session.map_fds();
    for program in &object.programs {
        let mut insns = program
            .relocated(&fds)
            .map_err(|err| LegacyLoadError::Object {
                path: request.file.display().to_string(),
                err,
            })?;
        let point = match program.kind {
            ProbeKind::Kprobe => AttachPoint::Kprobe(program.function.clone()),
            ProbeKind::Kretprobe => AttachPoint::Kretprobe(program.function.clone()),
        };
        let first = match session.load_raw(&ProgramSpec {
            name: &program.name,
            point: point.clone(),
            insns: &insns,
            license: &license,
            disassembly: &Disassembly(&insns),
        }) {
            Ok(()) => continue,
            Err(err) => err,
        };
        // Only now ask which helpers this kernel lacks: a newer reader may
        // have an older form to call instead (before 5.5).
        let replaced = adapt_helpers(&program.name, &mut insns, &mut |helper| {
            *report.probe(helper) != load::Support::No
        })?;
        if replaced.is_empty() {
            return Err(first.into());
        }
        for (newer, older) in replaced {
            eprintln!(
                "nobtf: {}: this kernel has no {}, calling {} instead",
                program.name,
                newer.name(),
                older.name()
            );
        }
        session.load_raw(&ProgramSpec {
            name: &program.name,
            point,
            insns: &insns,
            license: &license,
            disassembly: &Disassembly(&insns),
        })?;
    }

    match &report.tracefs {
        Ok(_) => session.open_trace_pipe()?,
        Err(e) => eprintln!("nobtf: warning: no trace pipe to stream ({e})"),
    }
    session.attach_all()?;
    let names: Vec<String> = object
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
        if !rest.is_empty() {
            copier.emit(&rest)?;
        }
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
    fn sample(&mut self, cpu: u32, data: &[u8]) -> Result<Flow, LegacyLoadError> {
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
        // Formats ending in "\n" leave an empty line on kernels that add their own.
        if !line.trim().is_empty() {
            self.emit(line)?;
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

    fn call(helper: Helper) -> RawInsn {
        RawInsn::new(CALL, 0, 0, 0, helper.id() as i32)
    }

    #[test]
    fn newer_readers_fall_back_to_probe_read_before_5_5() {
        let mut insns = [
            call(Helper::GetCurrentPidTgid),
            call(Helper::ProbeReadKernel),
            call(Helper::ProbeReadKernelStr),
            call(Helper::ProbeReadKernel),
            RawInsn::new(
                kernel_headers::bpf::class::JMP | kernel_headers::bpf::jmp::EXIT,
                0,
                0,
                0,
                0,
            ),
        ];
        let old_kernel = |h: Helper| h.since() < kernel_headers::KernelVersion::new(5, 5, 0);
        let replaced = adapt_helpers("p", &mut insns, &mut { old_kernel }).unwrap();
        assert_eq!(
            replaced,
            [
                (Helper::ProbeReadKernel, Helper::ProbeRead),
                (Helper::ProbeReadKernelStr, Helper::ProbeReadStr)
            ]
        );
        let ids: Vec<i32> = insns[..4].iter().map(|i| i.imm).collect();
        assert_eq!(ids, [14, 4, 45, 4]);
    }

    #[test]
    fn a_helper_without_older_form_is_named() {
        let mut insns = [call(Helper::ProbeRead), call(Helper::PerfEventOutput)];
        let err =
            adapt_helpers("p", &mut insns, &mut |h| h != Helper::PerfEventOutput).unwrap_err();
        assert_eq!(
            err.to_string(),
            "program `p` calls bpf_perf_event_output (instruction 1), which this kernel \
             does not have (mainline has it since 4.4)"
        );
        let mut insns = [call(Helper::ProbeReadKernel)];
        let err = adapt_helpers("p", &mut insns, &mut |_| false).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(", nor its older form bpf_probe_read"),
            "{err}"
        );
    }

    #[test]
    fn bpf_to_bpf_calls_and_unknown_helpers_are_left_alone() {
        let mut insns = [
            RawInsn::new(CALL, 0, 1, 0, 5),
            RawInsn::new(CALL, 0, 0, 0, 9999),
        ];
        let before = insns;
        assert!(
            adapt_helpers("p", &mut insns, &mut |_| false)
                .unwrap()
                .is_empty()
        );
        assert_eq!(insns, before);
    }
}
