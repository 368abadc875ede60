//! `nobtf run unlink`: build the probes for this kernel, create the maps and
//! perf rings, load, attach, then stream events until a stop condition.
//!
//! Everything created lives in a `Session` whose fields drop in the reverse
//! order of creation: attachments first, then rings, programs, maps. A
//! failure half-way drops what exists so far in that same order.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use offsets::Profile;
use probes::event::{self as probe_event, EventKind as ProbeEventKind};
use probes::unlink::{self, Choices, Output, ReadHelper};
use probes::{MaxEntries, ProbeKind as ProgKind, Program};

use crate::attach::{self, AttachError, AttachMode, ProbeKind};
use crate::canary::{self, CanaryError, Expected, Seen};
use crate::check::{self, PlanError, ReadChoice, Report, Scope};
use crate::features::FeatureError;
use crate::load::{self, LoadError, LoadOptions};
use crate::output::{self, Event, EventKind, Format};
use crate::ring::{self, Record};
use crate::session::{self, Flow, Session, SessionError, TracePipe, write_error};
use crate::sys::{self, PollSet, SignalFd, SysError};

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
    /// Report the start-up steps' times.
    pub verbose: bool,
}

/// With `--verbose`, each start-up step's time since the previous one.
struct Steps {
    verbose: bool,
    last: Instant,
}

impl Steps {
    fn done(&mut self, step: &str) {
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
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error(transparent)]
    Session(#[from] SessionError),
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

fn is_pow2(n: usize) -> bool {
    n != 0 && n & (n - 1) == 0
}

/// Run to completion, printing events to `out`. `started` is when the
/// process began, for the time-to-attach report.
pub fn run(opts: &RunOptions, out: &mut dyn Write, started: Instant) -> Result<Summary, RunError> {
    if !is_pow2(opts.buffer_pages) {
        return Err(RunError::BufferPages(opts.buffer_pages));
    }
    let mut steps = Steps {
        verbose: opts.verbose,
        last: started,
    };
    steps.done("process start and arguments");
    // First, so a signal during set-up is seen by the loop, not lost.
    let signals = SignalFd::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD])?;
    let mut report = Report::detect(Scope::Start);
    let basic = *report.basic()?;
    if let Ok(tracefs) = &report.tracefs {
        sweep_stale(tracefs, false);
    }
    let profile = choose_profile(opts.offsets.as_ref(), &report)?;
    steps.done("kernel features, stale probes and profile");
    if let Ok(kernel) = &report.kernel
        && profile.kernel.release != kernel.release
    {
        eprintln!(
            "warning: the offsets profile is for kernel {}, this kernel is {}",
            profile.kernel.release, kernel.release
        );
    }
    let attach_plan = report.attach_plan(opts.attach)?;
    report.probe_readers(opts.read);
    let reader = report.read_plan(opts.read)?;
    let output = if opts.trace_pipe {
        Output::TracePrintk
    } else {
        Output::PerfEvents
    };
    let choices = Choices {
        read: reader,
        output,
    };
    let programs = build(&profile, &choices)?;
    steps.done("helper probes and building the programs");
    let load_opts = LoadOptions {
        kern_version: report.kern_version(),
        names: basic.names,
    };
    let mut session = Session::default();

    // Maps, then the rings they point to.
    for spec in programs.iter().flat_map(|p| p.maps().iter().copied()) {
        if session.maps.iter().any(|(name, _)| name == spec.name) {
            continue;
        }
        let entries = match spec.max_entries {
            MaxEntries::Fixed(n) => n,
            MaxEntries::PossibleCpus => session::cpu_slots()?,
        };
        let shape = load::MapShape {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: entries,
            map_flags: 0,
        };
        let map = load::create_map(spec.name, shape, load_opts.names)?;
        session.maps.push((spec.name.to_string(), map));
    }
    if let Some((_, events)) = session
        .maps
        .iter()
        .find(|(name, _)| name == unlink::EVENTS_MAP)
    {
        session::open_rings(events, opts.buffer_pages, &mut session.rings)?;
    }
    steps.done("maps and perf rings");

    for program in &programs {
        let insns = program.encode(|name| {
            session
                .maps
                .iter()
                .find(|(n, _)| n == name)
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
    steps.done("loading the programs (verifier)");

    // The trace pipe is opened before attaching so no line is missed.
    let mut pipe = if opts.trace_pipe {
        let dir = report
            .tracefs
            .as_ref()
            .map_err(|e| PlanError::Attach(format!("--trace-pipe needs tracefs: {e}")))?;
        Some(TracePipe::open(dir)?)
    } else {
        None
    };

    for (program, prog_fd) in programs.iter().zip(&session.progs) {
        let kind = match program.kind() {
            ProgKind::Kprobe => ProbeKind::Entry,
            ProgKind::Kretprobe => ProbeKind::Return,
        };
        let attached = attach_plan.attach(kind, program.function(), prog_fd.as_fd());
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
    steps.done("attaching");
    eprintln!(
        "nobtf: attached to {} entry and return ({attach_plan}, {}, {}) in {} ms",
        unlink::FUNCTION,
        check::reader_name(reader),
        if opts.trace_pipe {
            "trace pipe"
        } else {
            "perf events"
        },
        started.elapsed().as_millis()
    );

    let mut poll = session::poll_set(&signals, &session.rings, pipe.as_ref());
    let mut state = Loop {
        opts,
        out,
        summary: Summary {
            trace_pipe: opts.trace_pipe,
            lost: session.rings.iter().map(|(cpu, _)| (*cpu, 0)).collect(),
            ..Summary::default()
        },
        scratch: Vec::new(),
        me: std::process::id(),
        own: Vec::new(),
        held: None,
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
        let verdict = state.canary(&mut poll, &session, pipe.as_mut(), &signals, expected);
        if let Err(err) = verdict {
            drop(session);
            return Err(err);
        }
        steps.done("canary");
    }
    let mut child = match (&opts.command, state.stopping) {
        (Some(command), false) => Some(session::spawn(command)?),
        _ => None,
    };
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let result = if state.stopping {
        Ok(())
    } else {
        let (pipe, child) = (pipe.as_mut(), child.as_mut());
        state.run(&mut poll, &session, pipe, &signals, child, deadline)
    };
    session::end_command(child.as_mut());
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

struct Loop<'a> {
    opts: &'a RunOptions,
    /// Buffered by the caller: flushed here whenever the rings run dry.
    out: &'a mut dyn Write,
    summary: Summary,
    scratch: Vec<u8>,
    /// nobtf's own pid: its events (the canary's, the loss flush's) are
    /// collected in `own`, never shown or counted.
    me: u32,
    own: Vec<Seen>,
    /// While the canary runs, the lines to show later.
    held: Option<Vec<String>>,
    /// A termination signal came (or --count was reached) before the loop.
    stopping: bool,
}

impl Loop<'_> {
    fn run(
        &mut self,
        poll: &mut PollSet,
        session: &Session,
        mut pipe: Option<&mut TracePipe>,
        signals: &SignalFd,
        child: Option<&mut Child>,
        deadline: Option<Instant>,
    ) -> Result<(), RunError> {
        session::stream(poll, signals, child, deadline, || {
            self.drain(session, pipe.as_deref_mut())
        })?;
        self.flush()
    }

    fn drain(&mut self, session: &Session, pipe: Option<&mut TracePipe>) -> Result<Flow, RunError> {
        match pipe {
            Some(p) => self.drain_pipe(p),
            None => self.drain_rings(session),
        }
    }

    /// Removes a file of nobtf's own and checks what the probes saw of it.
    /// Events of other processes meanwhile are held, shown once it passed.
    fn canary(
        &mut self,
        poll: &mut PollSet,
        session: &Session,
        mut pipe: Option<&mut TracePipe>,
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
        // The probes ran inside unlink(2), so their records are usually in
        // the ring already: read before waiting (they are too few to wake us).
        self.drain(session, pipe.as_deref_mut())?;
        loop {
            let entry = self.own.iter().any(|s| matches!(s, Seen::Entry { .. }));
            let exit = self.own.iter().any(|s| matches!(s, Seen::Exit { .. }));
            let left = deadline.saturating_duration_since(Instant::now());
            if (entry && exit) || left.is_zero() {
                break;
            }
            let signalled = session::wait(
                poll,
                signals,
                left.as_millis().min(session::LATENCY_MS as u128) as i32,
            )?;
            self.drain(session, pipe.as_deref_mut())?;
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
        Ok(writeln!(self.out, "{line}").map_err(write_error)?)
    }

    fn flush(&mut self) -> Result<(), RunError> {
        Ok(self.out.flush().map_err(write_error)?)
    }

    /// Drains the rings until a pass finds them all empty (then flushes the
    /// output, so a quiet trace shows each event within a poll) or for at most
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

    fn drain_pipe(&mut self, pipe: &mut TracePipe) -> Result<Flow, RunError> {
        let flow = pipe.drain(|line| {
            if !output::is_probe_line(line) {
                return Ok(Flow::Continue);
            }
            if let Some((pid, seen)) = canary::seen_in_line(line)
                && pid == self.me
            {
                self.own.push(seen);
                return Ok(Flow::Continue);
            }
            if self
                .opts
                .pid
                .is_some_and(|want| pipe_pid(line) != Some(want))
                || self.stopping
            {
                return Ok(Flow::Continue);
            }
            self.deliver(line)
        })?;
        if let Flow::Continue = flow {
            self.flush()?;
        }
        Ok(flow)
    }
}

/// How many passes over the rings one drain makes at most.
const DRAIN_PASSES: usize = 16;

/// The event a record holds, borrowing its strings; `None` for a kind
/// nobtf does not know.
pub fn event(cpu: u32, raw: &probe_event::UnlinkEvent) -> Option<Event<'_>> {
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
    report.probe_readers(read);
    let profile = choose_profile(offsets, &report)?;
    let reader = report.read_plan(read).unwrap_or(ReadHelper::ProbeRead);
    let choices = Choices {
        read: reader,
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
