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
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kernel_headers::bpf::Helper;
use offsets::Profile;
use probes::event::{self as probe_event, EventKind as ProbeEventKind};
use probes::unlink::{self, Choices, Output, ReadHelper};
use probes::{MaxEntries, ProbeKind as ProgKind, Program};

use crate::attach::{self, AttachError, AttachMode, Attachment, ProbeKind};
use crate::canary::{self, CanaryError, Expected, Seen};
use crate::check::{self, Attach, PlanError, ReadChoice, Report, Scope};
use crate::features::{self, FeatureError};
use crate::load::{self, LoadError, LoadOptions};
use crate::output::{self, Event, EventKind, Format};
use crate::ring::{self, Record};
use crate::sys::{self, MapFd, PerfRing, PollSet, SignalFd, SysError};

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
    /// Run the canary before showing events.
    pub verify: bool,
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
    #[error(transparent)]
    Canary(#[from] CanaryError),
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
    // First, so a signal during set-up is seen by the loop, not lost.
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD])?;
    let mut report = Report::detect(Scope::Start);
    let basic = *report.basic()?;
    if let Ok(tracefs) = &report.tracefs {
        sweep_stale(tracefs, false);
    }
    let profile = choose_profile(opts.offsets.as_ref(), &report)?;
    if let Ok(kernel) = &report.kernel
        && profile.kernel.release != kernel.release
    {
        eprintln!(
            "warning: the offsets profile is for kernel {}, this kernel is {}",
            profile.kernel.release, kernel.release
        );
    }
    let attach_plan = report.attach_plan(opts.attach)?;
    if opts.read == ReadChoice::Auto {
        report.probe(Helper::ProbeReadKernel);
    }
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
        let shape = load::MapShape {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: entries,
            map_flags: 0,
        };
        let map = load::create_map(spec.name, shape, load_opts.names)?;
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
        let fd = load::load_program(program.name(), &insns, load::GPL, program, load_opts)
            .map_err(|err| {
                // A missing helper fails the load with a long verifier log; name it instead.
                match report.missing_helper(&program.helpers()) {
                    Some(helper) => RunError::from(PlanError::Helper(helper)),
                    None => err.into(),
                }
            })?;
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
        let attached = match &attach_plan {
            Attach::Pmu(pmu) => attach::attach_pmu(*pmu, kind, program.function(), prog_fd.as_fd()),
            Attach::Tracefs(dir) => {
                attach::attach_tracefs(dir, kind, program.function(), prog_fd.as_fd())
            }
        };
        let attachment = attached.map_err(|err| {
            let tracefs = report.tracefs.as_deref().ok();
            match check::explain_attach_failure(
                program.function(),
                &err,
                tracefs,
                check::PROFILE_FIX,
            ) {
                Some(why) => RunError::from(PlanError::Function {
                    name: program.function().into(),
                    why,
                }),
                None => err.into(),
            }
        })?;
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

    let mut fds: Vec<BorrowedFd<'_>> = vec![signals.fd()];
    fds.extend(session.rings.iter().map(|(_, r)| r.fd()));
    if let Some(p) = pipe.as_ref() {
        fds.push(p.as_fd());
    }
    let poll = PollSet::new(&fds);
    drop(fds);
    let mut state = Loop {
        opts,
        out,
        poll,
        summary: Summary {
            trace_pipe: opts.trace_pipe,
            lost: session.rings.iter().map(|(cpu, _)| (*cpu, 0)).collect(),
            ..Summary::default()
        },
        scratch: Vec::new(),
        me: std::process::id(),
        own: Vec::new(),
        held: None,
        pipe_rest: String::new(),
        stopping: false,
    };
    if opts.verify {
        let expected_field = |key: &str| {
            profile
                .field(key)
                .map(|f| format!("{key} (offset {})", f.offset))
        };
        let (name_field, refcnt_field) = match profile.unlink() {
            Ok(offsets::profile::UnlinkFacts {
                kind: offsets::profile::UnlinkArg::Filename { .. },
                ..
            }) => (
                expected_field(offsets::profile::FILENAME_NAME).unwrap_or_default(),
                expected_field(offsets::profile::FILENAME_REFCNT).ok(),
            ),
            Ok(facts) => (format!("the path argument ({})", facts.name_arg), None),
            Err(e) => (e.to_string(), None),
        };
        let shown = opts
            .offsets
            .as_ref()
            .map_or_else(|| "builtin".to_string(), |p| p.display().to_string());
        let expected = Expected {
            filename: String::new(),
            name_field,
            refcnt_field,
            profile: shown,
        };
        let verdict = state.canary(&session, pipe.as_mut(), &signals, expected);
        if let Err(err) = verdict {
            drop(session);
            return Err(err);
        }
    }
    let mut child = match (&opts.command, state.stopping) {
        (Some(command), false) => Some(spawn(command)?),
        _ => None,
    };
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let result = if state.stopping {
        Ok(())
    } else {
        state.run(&session, pipe.as_mut(), &signals, child.as_mut(), deadline)
    };
    if let Some(child) = child.as_mut()
        && child.try_wait().ok().flatten().is_none()
    {
        // Stopped for another reason (count, signal): do not leave it behind.
        let _ = child.kill();
        let _ = child.wait();
    }
    if result.is_ok() && !opts.trace_pipe {
        state.flush_lost(&session);
    }
    // Detach before the signals are unblocked (sys::hold_termination_signals
    // keeps a late one from killing the process meanwhile).
    drop(session);
    drop(signals);
    result.map(|()| state.summary)
}

/// Removes stale nobtf kprobe events (their process is gone) and says so on
/// stderr; `verbose` also reports what was kept and when nothing was found.
pub fn sweep_stale(tracefs: &Path, verbose: bool) -> attach::Sweep {
    let sweep = match attach::remove_stale(tracefs, &attach::process_exists) {
        Ok(sweep) => sweep,
        Err(err) => {
            eprintln!(
                "warning: reading {}: {err}",
                tracefs.join("kprobe_events").display()
            );
            return attach::Sweep::default();
        }
    };
    for (event, pid) in &sweep.removed {
        eprintln!("nobtf: removed stale kprobe event {event} (process {pid} is gone)");
    }
    for (event, why) in &sweep.failed {
        eprintln!("warning: could not remove stale kprobe event {event}: {why}");
    }
    if verbose {
        for (event, pid) in &sweep.kept {
            eprintln!("nobtf: kept kprobe event {event} (process {pid} is running)");
        }
        if sweep.removed.is_empty() && sweep.failed.is_empty() {
            eprintln!("nobtf: no stale kprobe events");
        }
    }
    sweep
}

/// A fresh file for the canary to remove: in /tmp, else in the current
/// directory (by a relative name: the probe sees the path as passed).
fn canary_file(me: u32) -> Result<PathBuf, RunError> {
    let name = format!(".nobtf-canary-{me}-{:x}", sys::monotonic_ns());
    let mut last = None;
    for path in [Path::new("/tmp").join(&name), PathBuf::from(&name)] {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => return Ok(path),
            Err(err) => last = Some(err),
        }
    }
    Err(RunError::Io {
        what: format!("creating the canary file {name} in /tmp or the current directory"),
        err: last.unwrap_or_else(|| io::Error::other("no directory to try")),
    })
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
    /// Buffered by the caller: flushed here whenever the rings run dry.
    out: &'a mut dyn Write,
    /// The signalfd, the rings, the trace pipe.
    poll: PollSet,
    summary: Summary,
    scratch: Vec<u8>,
    /// nobtf's own pid: its events (the canary's, the loss flush's) are
    /// collected in `own`, never shown or counted.
    me: u32,
    own: Vec<Seen>,
    /// While the canary runs, the lines to show later.
    held: Option<Vec<String>>,
    /// A partial trace_pipe line.
    pipe_rest: String,
    /// A termination signal came (or --count was reached) before the loop.
    stopping: bool,
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
        loop {
            let timeout = deadline.map_or(200, |d| {
                d.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(200) as i32
            });
            let (mut stop, flow) = self.step(session, pipe.as_deref_mut(), signals, timeout)?;
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
            // Events the command made before it exited are in the rings
            // already: drain once more before stopping.
            let flow = if stop && matches!(flow, Flow::Continue) {
                self.drain(session, pipe.as_deref_mut())?
            } else {
                flow
            };
            if stop || matches!(flow, Flow::Stop) {
                return self.flush();
            }
        }
    }

    /// Waits up to `timeout_ms` for data or a signal, then drains. Returns
    /// whether a termination signal came.
    fn step(
        &mut self,
        session: &Session,
        pipe: Option<&mut File>,
        signals: &SignalFd,
        timeout_ms: i32,
    ) -> Result<(bool, Flow), RunError> {
        self.poll.wait(timeout_ms)?;
        let mut signalled = false;
        while let Some(sig) = signals.read()? {
            if sig != libc::SIGCHLD {
                signalled = true;
            }
        }
        let flow = self.drain(session, pipe)?;
        Ok((signalled, flow))
    }

    fn drain(&mut self, session: &Session, pipe: Option<&mut File>) -> Result<Flow, RunError> {
        match pipe {
            Some(p) => self.drain_pipe(p),
            None => self.drain_rings(session),
        }
    }

    /// Removes a file of nobtf's own and checks what the probes saw of it.
    /// Events of other processes meanwhile are held, shown once it passed.
    fn canary(
        &mut self,
        session: &Session,
        mut pipe: Option<&mut File>,
        signals: &SignalFd,
        mut expected: Expected,
    ) -> Result<(), RunError> {
        self.held = Some(Vec::new());
        let path = canary_file(self.me)?;
        expected.filename = path.display().to_string();
        std::fs::remove_file(&path).map_err(|err| RunError::Io {
            what: format!("removing the canary file {}", path.display()),
            err,
        })?;
        let deadline = Instant::now() + canary::TIMEOUT;
        loop {
            let entry = self.own.iter().any(|s| matches!(s, Seen::Entry { .. }));
            let exit = self.own.iter().any(|s| matches!(s, Seen::Exit { .. }));
            let left = deadline.saturating_duration_since(Instant::now());
            if (entry && exit) || left.is_zero() {
                break;
            }
            let (signalled, _) = self.step(
                session,
                pipe.as_deref_mut(),
                signals,
                left.as_millis().min(200) as i32,
            )?;
            if signalled {
                // Asked to stop: nothing was shown yet, nothing to judge.
                self.stopping = true;
                self.held = None;
                return Ok(());
            }
        }
        let lost: u64 = self.summary.lost.iter().map(|(_, n)| n).sum();
        let note = if lost > 0 {
            format!(" ({lost} samples were lost: the rings were full; try a larger --buffer-pages)")
        } else {
            String::new()
        };
        canary::verify(&expected, &self.own, &note)?;
        self.own.clear();
        eprintln!(
            "nobtf: canary passed: read back {}{} and a return of 0",
            expected.filename,
            if expected.refcnt_field.is_some() && !self.opts.trace_pipe {
                format!(", refcnt {}", canary::FRESH_REFCNT)
            } else {
                String::new()
            }
        );
        for line in self.held.take().unwrap_or_default() {
            self.emit(&line)?;
            if let Flow::Stop = self.counted() {
                self.stopping = true;
                break;
            }
        }
        Ok(())
    }

    /// The kernel reports a full ring's losses (PERF_RECORD_LOST) only with
    /// the next sample that fits: make one on each CPU (a failed unlink of
    /// nobtf's own, never shown) so the summary counts every loss.
    fn flush_lost(&mut self, session: &Session) {
        let Ok(before) = sys::affinity() else {
            return;
        };
        let path = format!("/tmp/.nobtf-flush-{}", self.me);
        for (cpu, _) in &session.rings {
            if sys::set_affinity(&sys::CpuSet::only(*cpu)).is_ok() {
                let _ = std::fs::remove_file(&path);
            }
        }
        if let Err(err) = sys::set_affinity(&before) {
            eprintln!("warning: {err}");
        }
        // After the stop: count losses, show nothing more.
        self.stopping = true;
        if let Err(err) = self.drain_rings(session) {
            eprintln!("warning: {err}");
        }
    }

    fn counted(&mut self) -> Flow {
        self.summary.delivered += 1;
        match self.opts.count {
            Some(n) if self.summary.delivered >= n => Flow::Stop,
            _ => Flow::Continue,
        }
    }

    /// Shows a line (or holds it while the canary runs).
    fn deliver(&mut self, line: &str) -> Result<Flow, RunError> {
        if let Some(held) = self.held.as_mut() {
            held.push(line.to_string());
            return Ok(Flow::Continue);
        }
        self.emit(line)?;
        Ok(self.counted())
    }

    /// Shows an event, written straight into the output buffer (or holds
    /// its line while the canary runs).
    fn deliver_event(&mut self, event: &Event<'_>) -> Result<Flow, RunError> {
        if let Some(held) = self.held.as_mut() {
            held.push(output::line(self.opts.format, event));
            return Ok(Flow::Continue);
        }
        output::write_line(self.out, self.opts.format, event).map_err(write_error)?;
        Ok(self.counted())
    }

    fn emit(&mut self, line: &str) -> Result<(), RunError> {
        writeln!(self.out, "{line}").map_err(write_error)
    }

    fn flush(&mut self) -> Result<(), RunError> {
        self.out.flush().map_err(write_error)
    }

    /// Drains the rings until a pass finds them all empty (then flushes the
    /// output, so a quiet trace shows each event at once) or for at most
    /// `DRAIN_PASSES` passes under a storm (the buffer then flushes when
    /// full), so signals and the command's exit are still seen.
    fn drain_rings(&mut self, session: &Session) -> Result<Flow, RunError> {
        for _ in 0..DRAIN_PASSES {
            let mut got = false;
            for (index, (cpu, ring)) in session.rings.iter().enumerate() {
                self.scratch.clear();
                if ring.drain_into(&mut self.scratch) == 0 {
                    continue;
                }
                got = true;
                let bytes = std::mem::take(&mut self.scratch);
                let flow = self.records(index, *cpu, &bytes);
                self.scratch = bytes;
                if matches!(flow?, Flow::Stop) {
                    return Ok(Flow::Stop);
                }
            }
            if !got {
                self.flush()?;
                break;
            }
        }
        Ok(Flow::Continue)
    }

    /// The records of one ring's drain.
    fn records(&mut self, index: usize, cpu: u32, bytes: &[u8]) -> Result<Flow, RunError> {
        let mut flow = Flow::Continue;
        for record in ring::records(bytes) {
            let data = match record? {
                Record::Sample(data) => data,
                Record::Lost(n) => {
                    self.summary.lost[index].1 += n;
                    continue;
                }
                Record::Other(_) => continue,
            };
            let raw = match probe_event::parse(data) {
                Ok(raw) => raw,
                Err(err) => {
                    self.summary.bad += 1;
                    eprintln!("warning: {err}");
                    continue;
                }
            };
            let Some(event) = event(cpu, &raw) else {
                continue;
            };
            if event.pid == self.me {
                self.own.push(match event.kind {
                    EventKind::Entry { filename, refcnt } => Seen::Entry {
                        filename: filename.into_owned(),
                        refcnt,
                    },
                    EventKind::Exit { ret } => Seen::Exit { ret },
                });
                continue;
            }
            if self.opts.pid.is_some_and(|p| p != event.pid)
                || self.stopping
                || matches!(flow, Flow::Stop)
            {
                continue;
            }
            flow = self.deliver_event(&event)?;
        }
        Ok(flow)
    }

    fn drain_pipe(&mut self, pipe: &mut File) -> Result<Flow, RunError> {
        let mut buf = [0u8; 8192];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(RunError::Io {
                        what: "reading trace_pipe".into(),
                        err,
                    });
                }
            };
            self.pipe_rest.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(end) = self.pipe_rest.find('\n') {
                let line: String = self.pipe_rest.drain(..=end).collect();
                let line = line.trim_end();
                if !output::is_probe_line(line) {
                    continue;
                }
                if let Some((pid, seen)) = canary::seen_in_line(line)
                    && pid == self.me
                {
                    self.own.push(seen);
                    continue;
                }
                if self
                    .opts
                    .pid
                    .is_some_and(|want| pipe_pid(line) != Some(want))
                    || self.stopping
                {
                    continue;
                }
                if let Flow::Stop = self.deliver(line)? {
                    return Ok(Flow::Stop);
                }
            }
        }
        self.flush()?;
        Ok(Flow::Continue)
    }
}

/// How many passes over the rings one drain makes at most.
const DRAIN_PASSES: usize = 16;

fn write_error(err: io::Error) -> RunError {
    RunError::Io {
        what: "writing output".into(),
        err,
    }
}

/// The event a record holds, borrowing its strings; `None` for a kind
/// nobtf does not know.
fn event(cpu: u32, raw: &probe_event::UnlinkEvent) -> Option<Event<'_>> {
    let kind = match raw.kind()? {
        ProbeEventKind::Entry => EventKind::Entry {
            filename: raw.filename_str(),
            refcnt: raw.refcnt(),
        },
        ProbeEventKind::Exit => EventKind::Exit { ret: raw.ret },
    };
    Some(Event {
        ts_ns: raw.ts_ns,
        cpu,
        pid: raw.pid,
        tid: raw.tid,
        comm: raw.comm_str(),
        kind,
    })
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
    // Dump needs no privilege: without it the probe says "unknown" and the
    // reader falls back to bpf_probe_read.
    let mut report = Report::detect(Scope::Start);
    if read == ReadChoice::Auto {
        report.probe(Helper::ProbeReadKernel);
    }
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
