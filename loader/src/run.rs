//! `nobtf run unlink`: build the probes for this kernel, create the maps and
//! perf rings, load, attach, then stream events until a stop condition.
//!
//! Everything created lives in a `Session` whose fields drop in the reverse
//! order of creation: attachments first, then rings, programs, maps. A
//! failure half-way drops what exists so far in that same order.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kernel_headers::bpf::Helper;
use offsets::Profile;
use probes::event::{self as probe_event, EventKind as ProbeEventKind};
use probes::unlink::{self, Choices, Output, ReadHelper};
use probes::{MaxEntries, ProbeKind as ProgKind, Program};

use crate::attach::{self, AttachError, AttachMode, Attachment, ProbeKind};
use crate::check::{Attach, PlanError, ReadChoice, Report};
use crate::features::{self, FeatureError};
use crate::load::{self, LoadError, LoadOptions};
use crate::output::{self, Event, EventKind, Format};
use crate::ring::{self, Record};
use crate::sys::{self, MapFd, PerfRing, SignalFd, SysError};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `--offsets FILE`; `None` = the builtin profile where it fits.
    pub offsets: Option<PathBuf>,
    pub format: Format,
    pub command: Option<String>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub pid: Option<u32>,
    pub attach: AttachMode,
    pub read: ReadChoice,
    pub trace_pipe: bool,
    /// Data pages per CPU ring (a power of two).
    pub buffer_pages: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Profile(#[from] ProfileChoiceError),
    #[error("building the probes: {0}")]
    Build(#[from] probes::BuildError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Feature(#[from] FeatureError),
    #[error("{0}")]
    Sys(#[from] SysError),
    #[error("--buffer-pages {0}: the kernel needs a power of two")]
    BufferPages(usize),
    #[error("running `{command}`: {err}")]
    Command { command: String, err: io::Error },
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("{0}")]
    Ring(#[from] ring::RingError),
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileChoiceError {
    #[error("reading offsets profile {path}: {err}")]
    Read { path: String, err: io::Error },
    #[error("offsets profile {path}: {}", one_line(&err.to_string()))]
    Parse {
        path: String,
        err: offsets::ProfileError,
    },
    #[error(
        "no offsets profile for kernel {release}: the builtin one is only known to fit 4.19 and later; generate one with `offsets gen` and pass it with --offsets FILE"
    )]
    NoBuiltin { release: String },
}

/// Parser messages (TOML's) draw the input over several lines; keep the
/// first line (where) and the last (what), so an error stays one line.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [] => String::new(),
        [only] => (*only).to_string(),
        [first, .., last] => format!("{first}: {last}"),
    }
}

/// The profile to build the probes from: the given file, else the builtin
/// layout on kernels known to have it (4.19+).
pub fn choose_profile(offsets: Option<&PathBuf>, report: &Report) -> Result<Profile, RunError> {
    if let Some(path) = offsets {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ProfileChoiceError::Read {
            path: shown.clone(),
            err,
        })?;
        return Ok(Profile::from_toml_str(&text)
            .map_err(|err| ProfileChoiceError::Parse { path: shown, err })?);
    }
    let kernel = report
        .kernel
        .as_ref()
        .map_err(|e| PlanError::Kernel(e.clone()))?;
    if !kernel.version.at_least(4, 19) {
        return Err(ProfileChoiceError::NoBuiltin {
            release: kernel.release.clone(),
        }
        .into());
    }
    Ok(Profile::builtin(&kernel.release))
}

fn read_helper(helper: Helper) -> ReadHelper {
    if helper == Helper::ProbeReadKernel {
        ReadHelper::ProbeReadKernel
    } else {
        ReadHelper::ProbeRead
    }
}

/// The entry and exit programs for these choices.
pub fn build(profile: &Profile, choices: &Choices) -> Result<[Program; 2], RunError> {
    Ok([
        unlink::entry(profile, choices)?,
        unlink::exit(profile, choices)?,
    ])
}

/// Counts at the end of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub delivered: u64,
    /// (cpu, samples the kernel dropped because the ring was full).
    pub lost: Vec<(u32, u64)>,
    /// Records that did not parse (should be 0).
    pub bad: u64,
    pub trace_pipe: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lost: u64 = self.lost.iter().map(|(_, n)| n).sum();
        write!(f, "nobtf: {} events delivered", self.delivered)?;
        if !self.trace_pipe {
            write!(f, ", {lost} lost")?;
            let per_cpu: Vec<String> = self
                .lost
                .iter()
                .map(|(cpu, n)| format!("cpu{cpu}={n}"))
                .collect();
            write!(f, " ({})", per_cpu.join(" "))?;
        }
        if self.bad > 0 {
            write!(f, ", {} unreadable records", self.bad)?;
        }
        Ok(())
    }
}

/// What was set up, dropped in field order = reverse order of creation.
struct Session {
    attachments: Vec<Attachment>,
    rings: Vec<(u32, PerfRing)>,
    progs: Vec<OwnedFd>,
    maps: Vec<(&'static str, MapFd)>,
}

fn is_pow2(n: usize) -> bool {
    n != 0 && n & (n - 1) == 0
}

/// Run to completion, printing events to `out`. `started` is when the
/// process began, for the time-to-attach report.
pub fn run(opts: &RunOptions, out: &mut dyn Write, started: Instant) -> Result<Summary, RunError> {
    if !is_pow2(opts.buffer_pages) {
        return Err(RunError::BufferPages(opts.buffer_pages));
    }
    let report = Report::detect(false);
    let basic = report.basic()?;
    report.check_function()?;
    let profile = choose_profile(opts.offsets.as_ref(), &report)?;
    let attach_plan = report.attach_plan(opts.attach)?;
    let reader = report.read_plan(opts.read)?;
    let output = if opts.trace_pipe {
        Output::TracePrintk
    } else {
        Output::PerfEvents
    };
    let choices = Choices {
        read: read_helper(reader),
        output,
    };
    let programs = build(&profile, &choices)?;
    // A missing helper fails the load with a long verifier log; name it instead.
    for helper in programs.iter().flat_map(Program::helpers) {
        if !report.has_helper(helper)
            || load::probe_helper(helper, report.kern_version()) == load::Support::No
        {
            return Err(PlanError::Helper(helper).into());
        }
    }
    let load_opts = LoadOptions {
        kern_version: report.kern_version(),
        names: basic.names,
    };
    let mut session = Session {
        attachments: Vec::new(),
        rings: Vec::new(),
        progs: Vec::new(),
        maps: Vec::new(),
    };

    // Maps, then the rings they point to.
    for spec in programs.iter().flat_map(|p| p.maps().iter().copied()) {
        if session.maps.iter().any(|(name, _)| *name == spec.name) {
            continue;
        }
        let entries = match spec.max_entries {
            MaxEntries::Fixed(n) => n,
            MaxEntries::PossibleCpus => {
                let cpus = features::possible_cpus()?;
                cpus.iter().max().map_or(1, |&m| m + 1)
            }
        };
        let map = load::create_map(
            spec.name,
            spec.map_type,
            spec.key_size,
            spec.value_size,
            entries,
            load_opts.names,
        )?;
        session.maps.push((spec.name, map));
    }
    if let Some((_, events)) = session
        .maps
        .iter()
        .find(|(name, _)| *name == unlink::EVENTS_MAP)
    {
        let possible = features::possible_cpus()?;
        let online = features::online_cpus().unwrap_or_else(|_| possible.clone());
        for cpu in online {
            let fd = sys::perf_event_open(&crate::attrs::perf_output(), None, -1, cpu as i32)?;
            let ring = PerfRing::map(fd, opts.buffer_pages)?;
            events.update(
                &cpu.to_ne_bytes(),
                &(ring_fd(&ring) as u32).to_ne_bytes(),
                kernel_headers::bpf_attr::BPF_ANY,
            )?;
            session.rings.push((cpu, ring));
        }
    }

    for program in &programs {
        let insns = program.encode(|name| {
            session
                .maps
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, m)| m.raw())
        })?;
        let fd = load::load_program(program.name(), &insns, program, load_opts)?;
        session.progs.push(fd);
    }

    // The trace pipe is opened before attaching so no line is missed.
    let mut pipe = if opts.trace_pipe {
        Some(open_trace_pipe(&report)?)
    } else {
        None
    };

    for (program, prog_fd) in programs.iter().zip(&session.progs) {
        let kind = match program.kind() {
            ProgKind::Kprobe => ProbeKind::Entry,
            ProgKind::Kretprobe => ProbeKind::Return,
        };
        let attachment = match &attach_plan {
            Attach::Pmu(pmu) => {
                attach::attach_pmu(*pmu, kind, program.function(), prog_fd.as_fd())?
            }
            Attach::Tracefs(dir) => {
                attach::attach_tracefs(dir, kind, program.function(), prog_fd.as_fd())?
            }
        };
        session.attachments.push(attachment);
    }
    eprintln!(
        "nobtf: attached to {} entry and return ({attach_plan}, {}, {}) in {} ms",
        unlink::FUNCTION,
        reader.name(),
        if opts.trace_pipe {
            "trace pipe"
        } else {
            "perf events"
        },
        started.elapsed().as_millis()
    );

    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD])?;
    let mut child = match &opts.command {
        Some(command) => Some(spawn(command)?),
        None => None,
    };
    let mut state = Loop {
        opts,
        out,
        summary: Summary {
            trace_pipe: opts.trace_pipe,
            lost: session.rings.iter().map(|(cpu, _)| (*cpu, 0)).collect(),
            ..Summary::default()
        },
        scratch: Vec::new(),
    };
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let result = state.run(&session, pipe.as_mut(), &signals, child.as_mut(), deadline);
    if let Some(child) = child.as_mut()
        && child.try_wait().ok().flatten().is_none()
    {
        // Stopped for another reason (count, signal): do not leave it behind.
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(signals);
    drop(session);
    result.map(|()| state.summary)
}

fn ring_fd(ring: &PerfRing) -> i32 {
    use std::os::fd::AsRawFd;
    ring.fd().as_raw_fd()
}

fn spawn(command: &str) -> Result<Child, RunError> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .spawn()
        .map_err(|err| RunError::Command {
            command: command.into(),
            err,
        })
}

fn open_trace_pipe(report: &Report) -> Result<File, RunError> {
    let dir = report
        .tracefs
        .as_ref()
        .map_err(|e| PlanError::Attach(format!("--trace-pipe needs tracefs: {e}")))?;
    let path = dir.join("trace_pipe");
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(|err| RunError::Io {
            what: format!("opening {}", path.display()),
            err,
        })
}

struct Loop<'a> {
    opts: &'a RunOptions,
    out: &'a mut dyn Write,
    summary: Summary,
    scratch: Vec<u8>,
}

enum Flow {
    Continue,
    Stop,
}

impl Loop<'_> {
    fn run(
        &mut self,
        session: &Session,
        mut pipe: Option<&mut File>,
        signals: &SignalFd,
        mut child: Option<&mut Child>,
        deadline: Option<Instant>,
    ) -> Result<(), RunError> {
        let mut pipe_rest = String::new();
        loop {
            let mut fds: Vec<BorrowedFd<'_>> = vec![signals.fd()];
            fds.extend(session.rings.iter().map(|(_, r)| r.fd()));
            if let Some(p) = pipe.as_deref() {
                fds.push(p.as_fd());
            }
            let timeout = deadline.map_or(200, |d| {
                d.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(200) as i32
            });
            sys::poll_readable(&fds, timeout)?;

            let mut stop = false;
            while let Some(sig) = signals.read()? {
                if sig != libc::SIGCHLD {
                    stop = true;
                }
            }
            if let Some(c) = child.as_deref_mut()
                && c.try_wait()
                    .map_err(|err| RunError::Io {
                        what: "waiting for the command".into(),
                        err,
                    })?
                    .is_some()
            {
                // The command's unlinks all happened before it exited; the
                // drain below sees every event they produced.
                stop = true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop = true;
            }
            let flow = match pipe.as_deref_mut() {
                Some(p) => self.drain_pipe(p, &mut pipe_rest)?,
                None => self.drain_rings(session)?,
            };
            if stop || matches!(flow, Flow::Stop) {
                self.out.flush().map_err(|err| RunError::Io {
                    what: "writing output".into(),
                    err,
                })?;
                return Ok(());
            }
        }
    }

    fn counted(&mut self) -> Flow {
        self.summary.delivered += 1;
        match self.opts.count {
            Some(n) if self.summary.delivered >= n => Flow::Stop,
            _ => Flow::Continue,
        }
    }

    fn emit(&mut self, line: &str) -> Result<(), RunError> {
        writeln!(self.out, "{line}").map_err(|err| RunError::Io {
            what: "writing output".into(),
            err,
        })
    }

    fn drain_rings(&mut self, session: &Session) -> Result<Flow, RunError> {
        for (index, (cpu, ring)) in session.rings.iter().enumerate() {
            self.scratch.clear();
            if ring.drain_into(&mut self.scratch) == 0 {
                continue;
            }
            let bytes = std::mem::take(&mut self.scratch);
            let mut flow = Flow::Continue;
            for record in ring::records(&bytes) {
                match record? {
                    Record::Sample(data) => {
                        let Some(event) = self.decode(*cpu, data) else {
                            continue;
                        };
                        if self.opts.pid.is_some_and(|p| p != event.pid) {
                            continue;
                        }
                        if matches!(flow, Flow::Stop) {
                            continue;
                        }
                        self.emit(&output::line(self.opts.format, &event))?;
                        flow = self.counted();
                    }
                    Record::Lost(n) => self.summary.lost[index].1 += n,
                    Record::Other(_) => {}
                }
            }
            self.scratch = bytes;
            if matches!(flow, Flow::Stop) {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    fn decode(&mut self, cpu: u32, data: &[u8]) -> Option<Event> {
        let raw = match probe_event::parse(data) {
            Ok(raw) => raw,
            Err(err) => {
                self.summary.bad += 1;
                eprintln!("warning: {err}");
                return None;
            }
        };
        let kind = match raw.kind()? {
            ProbeEventKind::Entry => EventKind::Entry {
                filename: raw.filename_str().into_owned(),
                refcnt: raw.refcnt(),
            },
            ProbeEventKind::Exit => EventKind::Exit {
                ret: unlink_ret(raw.ret),
            },
        };
        Some(Event {
            ts_ns: raw.ts_ns,
            cpu,
            pid: raw.pid,
            tid: raw.tid,
            comm: raw.comm_str().into_owned(),
            kind,
        })
    }

    fn drain_pipe(&mut self, pipe: &mut File, rest: &mut String) -> Result<Flow, RunError> {
        let mut buf = [0u8; 8192];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => return Ok(Flow::Continue),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Flow::Continue),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(RunError::Io {
                        what: "reading trace_pipe".into(),
                        err,
                    });
                }
            };
            rest.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(end) = rest.find('\n') {
                let line: String = rest.drain(..=end).collect();
                let line = line.trim_end();
                if !output::is_probe_line(line) {
                    continue;
                }
                if let Some(want) = self.opts.pid
                    && pipe_pid(line) != Some(want)
                {
                    continue;
                }
                self.emit(line)?;
                if let Flow::Stop = self.counted() {
                    return Ok(Flow::Stop);
                }
            }
        }
    }
}

/// do_unlinkat returns `long` up to 5.x and `int` since; for an `int` the
/// upper half of rax is undefined (zero in practice: -2 reads 4294967294).
/// Its values, 0 or -errno, fit in 32 bits either way, so the low half is
/// the answer on every kernel.
fn unlink_ret(rax: i64) -> i64 {
    i64::from(rax as i32)
}

/// The `pid = N` of a probe line.
fn pipe_pid(line: &str) -> Option<u32> {
    let (_, after) = line.split_once("pid = ")?;
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `nobtf dump unlink`: the programs that would be loaded, disassembled.
pub fn dump(
    offsets: Option<&PathBuf>,
    read: ReadChoice,
    trace_pipe: bool,
) -> Result<String, RunError> {
    // Dump needs no privilege: decide from what can be read without loading.
    let report = Report::detect(false);
    let profile = choose_profile(offsets, &report)?;
    let reader = match read {
        ReadChoice::Auto => report
            .read_plan(ReadChoice::Auto)
            .unwrap_or(Helper::ProbeRead),
        other => report.read_plan(other).unwrap_or(Helper::ProbeRead),
    };
    let choices = Choices {
        read: read_helper(reader),
        output: if trace_pipe {
            Output::TracePrintk
        } else {
            Output::PerfEvents
        },
    };
    let mut text = String::new();
    for program in build(&profile, &choices)? {
        let kind = match program.kind() {
            ProgKind::Kprobe => "kprobe",
            ProgKind::Kretprobe => "kretprobe",
        };
        text.push_str(&format!(
            "; {} ({kind} on {}, {} insns, profile {} from {})\n",
            program.name(),
            program.function(),
            program.len(),
            profile.kernel.release,
            profile.source.method
        ));
        for map in program.maps() {
            text.push_str(&format!(
                "; map {}: type {}, key {} B, value {} B\n",
                map.name, map.map_type, map.key_size, map.value_size
            ));
        }
        text.push_str(&program.to_string());
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_fit_one_line() {
        let err = Profile::from_toml_str("format = 99").unwrap_err();
        let text = ProfileChoiceError::Parse {
            path: "p.toml".into(),
            err,
        }
        .to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with("offsets profile p.toml: "), "{text}");
    }

    #[test]
    fn int_and_long_returns() {
        assert_eq!(unlink_ret(0xffff_fffe), -2);
        assert_eq!(unlink_ret(-2), -2);
        assert_eq!(unlink_ret(0), 0);
    }

    #[test]
    fn pipe_pids() {
        assert_eq!(
            pipe_pid("rm-12 [000] d... 1.0: 0: KPROBE EXIT: pid = 12, ret = 0"),
            Some(12)
        );
        assert_eq!(pipe_pid("nothing"), None);
    }

    #[test]
    fn summary_text() {
        let s = Summary {
            delivered: 2,
            lost: vec![(0, 0), (1, 3)],
            bad: 0,
            trace_pipe: false,
        };
        assert_eq!(
            s.to_string(),
            "nobtf: 2 events delivered, 3 lost (cpu0=0 cpu1=3)"
        );
    }

    #[test]
    fn buffer_pages_power_of_two() {
        assert!(is_pow2(1) && is_pow2(64) && !is_pow2(0) && !is_pow2(3));
    }
}
