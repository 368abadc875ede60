//! One session of programs on this kernel, whatever front end built them
//! (`nobtf run`'s unlink probes, `nobtf load`'s legacy objects, a compiled
//! trace script): it creates the maps (and a perf ring per CPU for each perf
//! event array), loads the programs with the verifier's log on rejection,
//! attaches each where it runs (naming why a function cannot be probed),
//! runs the command, streams records and trace-pipe lines to the front
//! end's `Events`, lets the front end read the maps, and tears everything
//! down in reverse order when dropped.
//!
//! A front end's life with it:
//! `Session::new` → `create_maps` → `load` (or `load_raw` to adapt and
//! retry) per program → `open_trace_pipe` (optional) → `attach_all` →
//! `run_command` (optional) → `stream` → `entries` (maps at exit) → drop.

mod stream;

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kernel_headers::bpf::{RawInsn, map_type};
use probes::MaxEntries;

use crate::attach::{Attach, AttachError, AttachPoint, Attachment, diagnose};
use crate::detect::Report;
use crate::features::{self, FeatureError};
use crate::load::{self, LoadError, LoadOptions};
use crate::plan::PlanError;
use crate::ring::RingError;
use crate::sys::{self, MapFd, PerfRing, PollSet, SignalFd, SysError};

pub use stream::{Events, Flow, LATENCY_MS, TracePipe};

/// What the plan decided for this kernel, as far as a session needs it.
#[derive(Debug, Clone)]
pub struct Setup {
    /// How kprobes attach.
    pub attach: Attach,
    pub load: LoadOptions,
    /// Where tracefs is (or why not): the trace pipe, tracepoints and the
    /// diagnosis of a failed kprobe need it.
    pub tracefs: Result<PathBuf, String>,
    /// Data pages per CPU ring of each perf event array (a power of two).
    pub ring_pages: usize,
    /// What to try when a probed function is missing but its compiler's
    /// clones are there.
    pub clone_fix: &'static str,
}

/// A map to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    pub name: String,
    /// `kernel_headers::bpf::map_type::*`: hash, array, their per-CPU
    /// forms, a perf event array.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: MaxEntries,
    pub flags: u32,
}

impl From<&probes::MapSpec> for MapSpec {
    fn from(spec: &probes::MapSpec) -> MapSpec {
        MapSpec {
            name: spec.name.to_string(),
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            flags: 0,
        }
    }
}

/// A program to load and where to attach it. `insns` are final: map
/// references already carry the fds of this session's maps.
pub struct ProgramSpec<'a> {
    pub name: &'a str,
    pub point: AttachPoint,
    pub insns: &'a [RawInsn],
    pub license: &'a CStr,
    /// Shown next to the verifier's log when it rejects the program.
    pub disassembly: &'a dyn fmt::Display,
}

/// With `-v`, each start-up step's time since the previous one, on stderr:
/// what `run` and `trace` say of their steps.
pub struct Steps {
    verbose: bool,
    last: Instant,
}

impl Steps {
    pub fn new(verbose: bool, started: Instant) -> Steps {
        Steps {
            verbose,
            last: started,
        }
    }

    pub fn done(&mut self, step: &str) {
        if self.verbose {
            let now = Instant::now();
            eprintln!(
                "nobtf: {step}: {:.1} ms",
                now.duration_since(self.last).as_secs_f64() * 1000.0
            );
            self.last = now;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("running `{command}`: {err}")]
    Command { command: String, err: io::Error },
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("{0}")]
    Ring(#[from] RingError),
    #[error(transparent)]
    Feature(#[from] FeatureError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// What a failed load or attach turned out to mean.
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("program `{program}` attaches to {function}, which cannot be probed: {why}")]
    Unprobeable {
        program: String,
        function: String,
        why: String,
    },
    #[error("--duration {0}: give a positive number of seconds")]
    Duration(f64),
    #[error("no map `{0}` in this session")]
    NoMap(String),
}

impl SessionError {
    /// The refusals the plan words (a function that cannot be probed, as
    /// `check` names it) as the plan's error; the rest stay the session's.
    pub fn into_plan(self) -> Result<PlanError, SessionError> {
        match self {
            SessionError::Unprobeable { function, why, .. } => Ok(PlanError::Function {
                name: function,
                why,
            }),
            SessionError::Plan(err) => Ok(err),
            err => Err(err),
        }
    }
}

/// The output could not be written.
pub fn write_error(err: io::Error) -> SessionError {
    SessionError::Io {
        what: "writing output".into(),
        err,
    }
}

/// `--duration SECS` as a duration: positive and finite, or an error.
pub fn duration(secs: Option<f64>) -> Result<Option<Duration>, SessionError> {
    match secs {
        Some(secs) if !(secs.is_finite() && secs > 0.0) => Err(SessionError::Duration(secs)),
        Some(secs) => Ok(Some(Duration::from_secs_f64(secs))),
        None => Ok(None),
    }
}

/// Slots for a perf event array sized to the CPUs: the highest possible
/// CPU number plus one.
pub fn cpu_slots() -> Result<u32, FeatureError> {
    let cpus = features::possible_cpus()?;
    Ok(cpus.iter().max().map_or(1, |&m| m + 1))
}

/// One (key, value) of a map, as the kernel's bytes.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A loaded program and where it goes.
struct Loaded {
    name: String,
    point: AttachPoint,
    fd: OwnedFd,
    /// A kprobe_multi program's bytecode, loaded again as a kprobe per
    /// function if the kernel refuses its link.
    insns: Option<Vec<RawInsn>>,
}

/// What was set up. Fields drop in declaration order, the reverse of
/// creation: (the command is ended first, in `Drop`) attachments, rings,
/// programs, maps, the trace pipe, and last the signalfd, so signals stay
/// held until everything is detached. A failure half-way drops what exists
/// so far in that same order.
pub struct Session {
    setup: Setup,
    child: Option<Child>,
    attachments: Vec<Attachment>,
    /// (cpu, its ring), for every perf event array.
    rings: Vec<(u32, PerfRing)>,
    /// The BPF ring buffer (5.8+) and its loss counts.
    ring_buffer: Option<stream::RingBuffer>,
    progs: Vec<Loaded>,
    /// The kprobe_multi programs loaded again as kprobes (see `Loaded`).
    fallback_progs: Vec<OwnedFd>,
    /// How each program on many functions was attached, and why, for `-v`.
    pub attach_notes: Vec<String>,
    /// How many of `progs` are attached (in order).
    attached: usize,
    /// (name, map), in order of creation.
    maps: Vec<(String, MapFd)>,
    pipe: Option<TracePipe>,
    /// Built at the first wait, once every fd exists.
    poll: Option<PollSet>,
    /// Ring bytes, reused.
    scratch: Vec<u8>,
    signals: SignalFd,
    /// What the event loop did, for `-v`.
    pub stats: stream::ReaderStats,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end_command();
    }
}

impl Session {
    /// Takes termination signals (and SIGCHLD) through a signalfd from now
    /// on: a signal during set-up is seen by `stream`, not lost.
    pub fn new(setup: Setup) -> Result<Session, SessionError> {
        let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD])?;
        Ok(Session {
            setup,
            child: None,
            attachments: Vec::new(),
            rings: Vec::new(),
            ring_buffer: None,
            progs: Vec::new(),
            fallback_progs: Vec::new(),
            attach_notes: Vec::new(),
            maps: Vec::new(),
            pipe: None,
            poll: None,
            scratch: Vec::new(),
            stats: stream::ReaderStats::default(),
            attached: 0,
            signals,
        })
    }

    /// Creates each map not created yet (by name), in order; a perf event
    /// array also gets one ring per online CPU.
    pub fn create_maps(
        &mut self,
        specs: impl IntoIterator<Item = MapSpec>,
    ) -> Result<(), SessionError> {
        for spec in specs {
            if self.map(&spec.name).is_some() {
                continue;
            }
            let max_entries = match spec.max_entries {
                MaxEntries::Fixed(n) => n,
                MaxEntries::PossibleCpus => cpu_slots()?,
                MaxEntries::RingBytes => stream::ring_buffer_bytes(self.setup.ring_pages)?,
            };
            let slots = match spec.map_type {
                map_type::PERCPU_HASH | map_type::PERCPU_ARRAY => {
                    features::possible_cpus()?.len() as u32
                }
                _ => 1,
            };
            let shape = load::MapShape {
                map_type: spec.map_type,
                key_size: spec.key_size,
                value_size: spec.value_size,
                max_entries,
                map_flags: spec.flags,
            };
            let map = load::create_map(&spec.name, shape, self.setup.load.names, slots)?;
            if spec.map_type == map_type::PERF_EVENT_ARRAY {
                stream::open_rings(&map, self.setup.ring_pages, &mut self.rings)?;
                self.poll = None;
            }
            if spec.map_type == map_type::RINGBUF {
                let ring = sys::BpfRing::map(map.try_clone_fd()?, max_entries as usize)?;
                self.ring_buffer = Some(stream::RingBuffer::new(ring)?);
                self.poll = None;
            }
            self.maps.push((spec.name, map));
        }
        Ok(())
    }

    pub fn map(&self, name: &str) -> Option<&MapFd> {
        self.maps.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// The maps' fds in order of creation (legacy relocations index them).
    pub fn map_fds(&self) -> Vec<RawFd> {
        self.maps.iter().map(|(_, m)| m.raw()).collect()
    }

    /// Every (key, value) of a map, by BPF_MAP_GET_NEXT_KEY and LOOKUP; a
    /// per-CPU map's value holds each CPU's, 8-byte aligned. Keys deleted
    /// meanwhile are skipped.
    pub fn entries(&self, name: &str) -> Result<Vec<Entry>, SessionError> {
        let map = self
            .map(name)
            .ok_or_else(|| SessionError::NoMap(name.into()))?;
        let mut entries = Vec::new();
        let mut key = vec![0u8; map.key_size() as usize];
        let mut next = key.clone();
        let first = match map.next_key(None, &mut next) {
            // Before 4.12 the kernel takes no NULL key: a key of zeros gives
            // the first key unless it is itself in the map.
            Err(err) if err.errno() == Some(libc::EFAULT) => {
                let mut value = vec![0u8; map.lookup_len()];
                if map.lookup(&key, &mut value)? {
                    entries.push((key.clone(), value));
                }
                map.next_key(Some(&key), &mut next)?
            }
            other => other?,
        };
        let mut more = first;
        while more {
            std::mem::swap(&mut key, &mut next);
            let mut value = vec![0u8; map.lookup_len()];
            if map.lookup(&key, &mut value)? && !entries.iter().any(|(k, _)| *k == key) {
                entries.push((key.clone(), value));
            }
            more = map.next_key(Some(&key), &mut next)?;
        }
        Ok(entries)
    }

    /// Loads a program as given; the kernel's refusal comes back as is.
    pub fn load_raw(&mut self, spec: &ProgramSpec<'_>) -> Result<(), LoadError> {
        let fd = load::load_program(
            spec.name,
            (spec.point.prog_type(), spec.point.expected_attach_type()),
            spec.insns,
            spec.license,
            spec.disassembly,
            self.setup.load,
        )?;
        let multi = matches!(spec.point, AttachPoint::KprobeMulti { .. });
        self.progs.push(Loaded {
            name: spec.name.to_string(),
            point: spec.point.clone(),
            fd,
            insns: multi.then(|| spec.insns.to_vec()),
        });
        Ok(())
    }

    /// Loads a program; when the kernel refuses it, names the first helper
    /// it calls that this kernel lacks (by test loads, asked only now)
    /// rather than showing the verifier's long log.
    pub fn load(
        &mut self,
        spec: &ProgramSpec<'_>,
        report: &mut Report,
    ) -> Result<(), SessionError> {
        self.load_raw(spec).map_err(|err| {
            match report.missing_helper(&load::called_helpers(spec.insns)) {
                Some(helper) => SessionError::Plan(PlanError::Helper(helper)),
                None => err.into(),
            }
        })
    }

    /// Opens the kernel's trace pipe: before attaching, so no line is missed.
    pub fn open_trace_pipe(&mut self) -> Result<(), SessionError> {
        let tracefs = self
            .setup
            .tracefs
            .as_deref()
            .map_err(|e| PlanError::Attach(format!("--trace-pipe needs tracefs: {e}")))?;
        self.pipe = Some(TracePipe::open(tracefs)?);
        self.poll = None;
        Ok(())
    }

    /// Attaches every loaded program not yet attached, in order of loading.
    /// When attaching to a function fails, kallsyms and
    /// available_filter_functions are read to say why.
    pub fn attach_all(&mut self) -> Result<(), SessionError> {
        for at in self.attached..self.progs.len() {
            let prog = &self.progs[at];
            if let AttachPoint::KprobeMulti {
                written,
                functions,
                ret,
            } = &prog.point
            {
                let refused =
                    match crate::attach::attach_kprobe_multi(functions, *ret, prog.fd.as_fd()) {
                        Ok(link) => {
                            self.attach_notes.push(format!(
                            "{written}: one program on {} functions through one kprobe_multi link",
                            functions.len()
                        ));
                            self.attachments.push(link);
                            continue;
                        }
                        Err(err) => err,
                    };
                let (name, written, functions, ret) =
                    (prog.name.clone(), written.clone(), functions.clone(), *ret);
                let insns = prog.insns.clone().unwrap_or_default();
                self.attach_notes.push(format!(
                    "{written}: the kernel refused the kprobe_multi link ({refused}): one kprobe per function ({}), the same program",
                    self.setup.attach
                ));
                self.attach_each(&name, &insns, &functions, ret)?;
                continue;
            }
            let tracefs = self.setup.tracefs.as_deref().ok();
            let cpus = match prog.point {
                AttachPoint::CpuClock { .. } | AttachPoint::Sampling(_) => features::online_cpus()?,
                AttachPoint::Interval { .. } => {
                    features::online_cpus()?.into_iter().take(1).collect()
                }
                _ => Vec::new(),
            };
            let attached =
                self.setup
                    .attach
                    .attach_point(&prog.point, prog.fd.as_fd(), tracefs, &cpus);
            let attachments = attached.map_err(|err| {
                let explained = prog.point.function().and_then(|function| {
                    diagnose::explain_attach_failure(function, &err, tracefs, self.setup.clone_fix)
                        .map(|why| SessionError::Unprobeable {
                            program: prog.name.clone(),
                            function: function.to_string(),
                            why,
                        })
                });
                explained.unwrap_or_else(|| err.into())
            })?;
            self.attachments.extend(attachments);
        }
        self.attached = self.progs.len();
        Ok(())
    }

    /// A kprobe_multi program's bytecode loaded again as a plain kprobe
    /// program and attached to each function the usual way: `func` is
    /// still the function's address (`bpf_get_func_ip` works in kprobes
    /// since 5.15, and a kprobe_multi program is only made for 5.18+).
    fn attach_each(
        &mut self,
        name: &str,
        insns: &[RawInsn],
        functions: &[String],
        ret: bool,
    ) -> Result<(), SessionError> {
        let fd = load::load_program(
            name,
            (kernel_headers::bpf::prog_type::KPROBE, 0),
            insns,
            load::GPL,
            &"(the kprobe_multi program, as a kprobe)",
            self.setup.load,
        )?;
        let kind = if ret {
            crate::attach::ProbeKind::Kretprobe
        } else {
            crate::attach::ProbeKind::Kprobe
        };
        let tracefs = self.setup.tracefs.as_deref().ok();
        for function in functions {
            let attached = self.setup.attach.attach(kind, function, fd.as_fd());
            let attachment = attached.map_err(|err| {
                diagnose::explain_attach_failure(function, &err, tracefs, self.setup.clone_fix)
                    .map(|why| SessionError::Unprobeable {
                        program: name.to_string(),
                        function: function.to_string(),
                        why,
                    })
                    .unwrap_or_else(|| err.into())
            })?;
            self.attachments.push(attachment);
        }
        self.fallback_progs.push(fd);
        Ok(())
    }

    /// Detaches every program attached so far (they stay loaded, their maps
    /// and rings stay readable): what nobtf does itself after this, such as
    /// the loss flush's unlinks, never reaches the user's probes.
    pub fn detach_all(&mut self) {
        self.attachments.clear();
    }

    /// Returns once every program run that began before the call has
    /// ended, so that after [`Session::detach_all`] the rings hold every
    /// record those runs will write. Programs run inside an RCU read-side
    /// section, most with preemption off: `membarrier` waits for each CPU
    /// to leave such code (`synchronize_rcu`, or `synchronize_sched`
    /// before 5.0). Without it (`CONFIG_MEMBARRIER=n`, `nohz_full`),
    /// running on each CPU in turn proves each has left its
    /// preemption-off code; a uprobe program preempted mid-run (5.19+
    /// with `CONFIG_PREEMPT`) may still end after it, which would cut
    /// that one event.
    pub fn wait_for_running_programs(&self) {
        if sys::membarrier_global().is_ok() {
            return;
        }
        let walked = sys::affinity().and_then(|before| {
            let cpus = features::online_cpus().map_err(|e| sys::SysError {
                call: "reading the online CPUs",
                err: io::Error::other(e.to_string()),
            })?;
            let reached = cpus
                .iter()
                .filter(|&&cpu| sys::set_affinity(&sys::CpuSet::only(cpu)).is_ok())
                .count();
            sys::set_affinity(&before)?;
            Ok((reached, cpus.len()))
        });
        match walked {
            Ok((reached, all)) if reached == all => {}
            Ok((reached, all)) => eprintln!(
                "warning: the last events may be cut: {reached} of {all} CPUs could be waited for (no membarrier(2), and this process may not run on the others)"
            ),
            Err(err) => eprintln!("warning: the last events may be cut: {err}"),
        }
    }

    /// Unlinks a missing file once on each CPU with a ring, pinned there, so
    /// that a probe on `do_unlinkat` fires on every ring's CPU (the kernel
    /// then writes each ring's pending loss count); the affinity is restored.
    pub fn unlink_on_each_ring_cpu(&self, path: &str) {
        let Ok(before) = sys::affinity() else {
            return;
        };
        for cpu in self.rings.iter().map(|(cpu, _)| *cpu) {
            if sys::set_affinity(&sys::CpuSet::only(cpu)).is_ok() {
                let _ = std::fs::remove_file(path);
            }
        }
        if let Err(err) = sys::set_affinity(&before) {
            eprintln!("warning: {err}");
        }
    }

    /// Runs `/bin/sh -c command`; `stream` stops when it exits.
    pub fn run_command(&mut self, command: &str) -> Result<(), SessionError> {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .spawn()
            .map_err(|err| SessionError::Command {
                command: command.into(),
                err,
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Ends the command if it still runs (the stream stopped for another
    /// reason: count, signal, duration): it is not left behind.
    pub fn end_command(&mut self) {
        if let Some(child) = self.child.as_mut()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The CPUs with a ring, in ring order.
    pub fn ring_cpus(&self) -> Vec<u32> {
        match &self.ring_buffer {
            Some(ring) => ring.loss_cpus(),
            None => self.rings.iter().map(|(cpu, _)| *cpu).collect(),
        }
    }

    /// Whether records come through the BPF ring buffer, whose losses are
    /// counted as they happen (no flush needed at the end).
    pub fn has_ring_buffer(&self) -> bool {
        self.ring_buffer.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_positive_and_finite() {
        assert_eq!(duration(None).unwrap(), None);
        assert_eq!(
            duration(Some(0.5)).unwrap(),
            Some(Duration::from_millis(500))
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = duration(Some(bad)).unwrap_err().to_string();
            assert!(
                err.ends_with(": give a positive number of seconds"),
                "{err}"
            );
        }
        assert_eq!(
            duration(Some(0.0)).unwrap_err().to_string(),
            "--duration 0: give a positive number of seconds"
        );
    }
}
