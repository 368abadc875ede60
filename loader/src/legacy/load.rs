//! `nobtf load FILE`: a legacy object's maps created, its programs
//! relocated, adapted to this kernel (kern_version, object names, helpers)
//! and loaded the way `nobtf run` loads its own, attached to their functions;
//! then the trace pipe (and any perf event array, raw) is streamed until the
//! command ends, the duration passes, or a signal comes.
//!
//! Everything created lives in a `Session` (crate::session) whose fields
//! drop in the reverse order of creation: attachments, rings, programs, maps.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use kernel_headers::bpf::{Helper, RawInsn, class, jmp, map_type, prog_type};

use super::{ObjError, Object, ProbeKind};
use crate::attach::{self, AttachError, AttachMode};
use crate::check::{self, PlanError, Report, Scope};
use crate::features::FeatureError;
use crate::load::{self, LoadError, LoadOptions};
use crate::ring::{self, Record, RingError};
use crate::session::{self, Flow, Session, SessionError, TracePipe, write_error};
use crate::sys::{SignalFd, SysError};

/// Data pages per CPU for a perf event array's rings.
const RING_PAGES: usize = 8;
const CALL: u8 = class::JMP | jmp::CALL;

/// `nobtf load` arguments.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The object, as `clang -target bpf -O2 -c prog.bpf.c -o prog.o` writes it.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How to attach the kprobes.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub attach: AttachMode,
    /// Run `/bin/sh -c CMD` once attached; stop when it exits.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
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
        .helper.name(), .helper.since(),
        fallback(*.helper).map_or(String::new(), |f| format!(", nor its older form {}", f.name()))
    )]
    Helper {
        program: String,
        insn: usize,
        helper: Helper,
    },
    #[error("program `{program}` attaches to {function}, which cannot be probed: {why}")]
    Function {
        program: String,
        function: String,
        why: String,
    },
    #[error("--duration {0}: give a positive number of seconds")]
    Duration(f64),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Feature(#[from] FeatureError),
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("{0}")]
    Ring(#[from] RingError),
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

/// Parses the CLI's arguments and runs; the summary goes to stderr.
pub fn main(args: LoadArgs, out: &mut dyn Write, started: Instant) -> Result<(), LegacyLoadError> {
    let duration = match args.duration {
        Some(secs) if !(secs.is_finite() && secs > 0.0) => {
            return Err(LegacyLoadError::Duration(secs));
        }
        Some(secs) => Some(Duration::from_secs_f64(secs)),
        None => None,
    };
    let path = args.file.display().to_string();
    let data = std::fs::read(&args.file).map_err(|err| LegacyLoadError::Read {
        path: path.clone(),
        err,
    })?;
    let object = Object::parse(&data).map_err(|err| LegacyLoadError::Object {
        path: path.clone(),
        err,
    })?;
    run(&object, &args, duration, out, started)
}

fn run(
    object: &Object,
    args: &LoadArgs,
    duration: Option<Duration>,
    out: &mut dyn Write,
    started: Instant,
) -> Result<(), LegacyLoadError> {
    let mut report = Report::detect(Scope::Start);
    let basic = *report.basic()?;
    let attach_plan = report.attach_plan(args.attach)?;
    let opts = LoadOptions {
        kern_version: report.kern_version(),
        names: basic.names,
    };
    let mut session = Session::default();

    for def in &object.maps {
        // As libbpf did: a perf event array without a size gets one slot per CPU.
        let entries = match (def.map_type, def.max_entries) {
            (map_type::PERF_EVENT_ARRAY, 0) => session::cpu_slots()?,
            (_, n) => n,
        };
        let shape = load::MapShape {
            map_type: def.map_type,
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: entries,
            map_flags: def.map_flags,
        };
        let map = load::create_map(&def.name, shape, opts.names, 1)?;
        if def.map_type == map_type::PERF_EVENT_ARRAY {
            session::open_rings(&map, RING_PAGES, &mut session.rings)?;
        }
        session.maps.push((def.name.clone(), map));
    }

    // The kernel decides whether it is GPL-compatible; the section was read
    // up to its NUL, so there is none inside.
    let license = CString::new(object.license.as_str()).unwrap_or_default();
    let fds: Vec<i32> = session.maps.iter().map(|(_, m)| m.raw()).collect();
    for program in &object.programs {
        let mut insns = program
            .relocated(&fds)
            .map_err(|err| LegacyLoadError::Object {
                path: args.file.display().to_string(),
                err,
            })?;
        let first = match load::load_program(
            &program.name,
            prog_type::KPROBE,
            &insns,
            &license,
            &Disassembly(&insns),
            opts,
        ) {
            Ok(fd) => {
                session.progs.push(fd);
                continue;
            }
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
        let fd = load::load_program(
            &program.name,
            prog_type::KPROBE,
            &insns,
            &license,
            &Disassembly(&insns),
            opts,
        )?;
        session.progs.push(fd);
    }

    // Opened before attaching so no line is missed.
    let mut pipe = match &report.tracefs {
        Ok(dir) => Some(TracePipe::open(dir)?),
        Err(e) => {
            eprintln!("nobtf: warning: no trace pipe to stream ({e})");
            None
        }
    };
    for (program, prog) in object.programs.iter().zip(&session.progs) {
        let kind = match program.kind {
            ProbeKind::Kprobe => attach::ProbeKind::Entry,
            ProbeKind::Kretprobe => attach::ProbeKind::Return,
        };
        let attached = attach_plan.attach(kind, &program.function, prog.as_fd());
        let attachment = attached.map_err(|err| {
            let tracefs = report.tracefs.as_deref().ok();
            let fix = "name one in the section";
            match check::explain_attach_failure(&program.function, &err, tracefs, fix) {
                Some(why) => LegacyLoadError::Function {
                    program: program.name.clone(),
                    function: program.function.clone(),
                    why,
                },
                None => err.into(),
            }
        })?;
        session.attachments.push(attachment);
    }
    let names: Vec<String> = object
        .programs
        .iter()
        .map(|p| format!("{} ({})", p.name, p.section))
        .collect();
    eprintln!(
        "nobtf: attached {} by {attach_plan} in {} ms",
        names.join(", "),
        started.elapsed().as_millis()
    );

    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD])?;
    let mut child = match &args.command {
        Some(command) => Some(session::spawn(command)?),
        None => None,
    };
    let deadline = duration.map(|d| Instant::now() + d);
    let mut stream = Stream {
        out,
        lost: 0,
        scratch: Vec::new(),
    };
    let result = stream.run(&session, pipe.as_mut(), &signals, child.as_mut(), deadline);
    session::end_command(child.as_mut());
    // Unlike `nobtf run`, no loss flush: the kernel reports a full ring's
    // losses only with the ring's next sample, and only the object's own
    // programs write there, so losses in the last moments may go uncounted.
    if stream.lost > 0 {
        eprintln!("nobtf: {} perf samples lost (ring full)", stream.lost);
    }
    drop(signals);
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
struct Stream<'a> {
    out: &'a mut dyn Write,
    lost: u64,
    /// Ring bytes, reused.
    scratch: Vec<u8>,
}

impl Stream<'_> {
    fn run(
        &mut self,
        session: &Session,
        mut pipe: Option<&mut TracePipe>,
        signals: &SignalFd,
        child: Option<&mut Child>,
        deadline: Option<Instant>,
    ) -> Result<(), LegacyLoadError> {
        let mut poll = session::poll_set(signals, &session.rings, pipe.as_deref());
        session::stream(&mut poll, signals, child, deadline, || {
            if let Some(p) = pipe.as_deref_mut() {
                self.drain_pipe(p)?;
            }
            self.drain_rings(session)?;
            // Both drained dry: show what came at once.
            self.out.flush().map_err(write_error)?;
            Ok::<_, LegacyLoadError>(Flow::Continue)
        })?;
        let rest = pipe.map(TracePipe::take_rest).unwrap_or_default();
        if !rest.is_empty() {
            self.emit(&rest)?;
        }
        Ok(self.out.flush().map_err(write_error)?)
    }

    fn emit(&mut self, line: &str) -> Result<(), LegacyLoadError> {
        Ok(writeln!(self.out, "{line}").map_err(write_error)?)
    }

    fn drain_pipe(&mut self, pipe: &mut TracePipe) -> Result<(), LegacyLoadError> {
        pipe.drain(|line| {
            // Formats ending in "\n" leave an empty line on kernels that add their own.
            if !line.trim().is_empty() {
                self.emit(line)?;
            }
            Ok::<_, LegacyLoadError>(Flow::Continue)
        })?;
        Ok(())
    }

    /// Perf samples have no format nobtf knows: one hex line each.
    fn drain_rings(&mut self, session: &Session) -> Result<(), LegacyLoadError> {
        let mut bytes = std::mem::take(&mut self.scratch);
        for (cpu, ring) in &session.rings {
            bytes.clear();
            if ring.drain_into(&mut bytes) == 0 {
                continue;
            }
            for record in ring::records(&bytes) {
                match record? {
                    Record::Sample(data) => {
                        write!(self.out, "cpu {cpu}:").map_err(write_error)?;
                        for byte in data {
                            write!(self.out, " {byte:02x}").map_err(write_error)?;
                        }
                        writeln!(self.out).map_err(write_error)?;
                    }
                    Record::Lost(n) => self.lost += n,
                    Record::Other(_) => {}
                }
            }
        }
        self.scratch = bytes;
        Ok(())
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
            RawInsn::new(class::JMP | jmp::EXIT, 0, 0, 0, 0),
        ];
        let old_kernel = |h: Helper| h.since() < kernel_headers::bpf::Release(5, 5);
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
