//! `nobtf trace PROGRAM`: compile a bpftrace-language program for this
//! kernel (`lang`), load and attach it in a session, print its records as
//! bpftrace does, and its maps at exit. `target` says what the program is
//! compiled against; `printer` writes what the programs send; `tracefs`
//! runs a program that needs no BPF as kprobe events where bpf(2) is
//! missing (or with `--backend tracefs`).

mod blocks;
mod clock;
mod dry_run;
mod live;
mod printer;
mod symbolize;
mod target;
mod tracefs;
mod uprobes;

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lang::output::EVENTS_MAP;
use lang::providers::AttachPoint as LangPoint;
use lang::report::{self, Entries, Format, ReportError, Step};
use lang::{Compiled, CompiledProbe, Options, Target};
use probes::MaxEntries;

use crate::attach::{AttachMode, AttachPoint, stale};
use crate::backend::{self, Backend, BackendChoice};
use crate::detect::{Report, Scope};
use crate::fields::Fields;
use crate::list;
use crate::load;
use crate::plan::{self, PlanError, ReadChoice};
use crate::session::{Flow, MapSpec, ProgramSpec, Session, SessionError, Setup, Steps};
use blocks::Blocks;
use clock::LocalClock;
pub use dry_run::DryRun;
use printer::Printer;
pub use target::Tracepoints;

#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// The program's text.
    pub program: String,
    /// Its positional parameters (`$1`, ...).
    pub params: Vec<String>,
    /// `--offsets FILE`; else the kernel's BTF, else the builtin profile.
    pub offsets: Option<PathBuf>,
    pub format: Format,
    pub command: Option<String>,
    pub duration: Option<Duration>,
    pub pid: Option<u32>,
    pub attach: AttachMode,
    pub read: ReadChoice,
    /// Data pages per CPU ring (a power of two).
    pub buffer_pages: usize,
    /// `--perf-buffer`: the perf rings even where the ring buffer exists.
    pub perf_buffer: bool,
    pub verbose: bool,
    /// BPF programs, or tracefs kprobe events (programs that need no BPF).
    pub backend: BackendChoice,
    /// `-l`: list the probes matching `program` (all when it is empty)
    /// instead of tracing.
    pub list: bool,
    /// `--dry-run`: check and compile for the profile's kernel, touch none.
    pub dry_run: Option<DryRun>,
    /// `--unsafe`: `system()` and `signal()` allowed, as bpftrace's flag.
    pub unsafe_allowed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A parse or type error, rendered with the source line and a caret.
    #[error("{0}")]
    Program(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Fields(#[from] crate::fields::FieldsError),
    #[error(transparent)]
    Session(SessionError),
    #[error("{0}")]
    Report(ReportError),
    #[error("--buffer-pages {0}: the kernel needs a power of two")]
    BufferPages(usize),
    #[error("-p {0}: no such process")]
    NoProcess(u32),
    #[error("{0}")]
    Encode(String),
    /// The tracefs back end cannot run this program: what needs BPF.
    #[error("{0}")]
    NeedsBpf(String),
    /// A trace-pipe line of one of nobtf's events that does not read.
    #[error("{0}")]
    Line(String),
    /// The live checks refused the profile.
    #[error(transparent)]
    Live(#[from] crate::live_check::LiveCheckError),
    #[error("system(): cannot run `/bin/sh -c {command}`: {err}")]
    System { command: String, err: String },
}

impl From<SessionError> for TraceError {
    /// A function that cannot be probed is named as `nobtf run` names it.
    fn from(err: SessionError) -> TraceError {
        err.into_plan()
            .map_or_else(TraceError::Session, TraceError::Plan)
    }
}

/// Compile `opts.program` for this kernel, run it until it ends, print
/// records to `out` as they come and the maps at exit.
pub fn run(opts: &TraceOptions, out: &mut dyn Write, started: Instant) -> Result<(), TraceError> {
    if opts.list {
        let write_error = |err| TraceError::Session(crate::session::write_error(err));
        if let Some(listed) = uprobes::list(&opts.program)? {
            return listed
                .iter()
                .try_for_each(|probe| writeln!(out, "{probe}"))
                .map_err(write_error);
        }
        let pattern = Some(opts.program.as_str()).filter(|p| !p.is_empty());
        return list::print(pattern, opts.verbose, out).map_err(write_error);
    }
    if let Some(dry) = &opts.dry_run {
        return dry_run::run(opts, dry, out);
    }
    if !opts.buffer_pages.is_power_of_two() {
        return Err(TraceError::BufferPages(opts.buffer_pages));
    }
    if let Some(pid) = opts.pid
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        return Err(TraceError::NoProcess(pid));
    }
    let mut steps = Steps::new(opts.verbose, started);
    let mut report = Report::detect(Scope::Start);
    report.ring_buffer &= !opts.perf_buffer;
    let chosen = backend::choose(&report, opts.backend)?;
    if chosen.backend == Backend::Tracefs {
        let why = match opts.backend {
            BackendChoice::Tracefs => "--backend tracefs".to_string(),
            // What the kernel lacks, without the syscall's own words.
            _ => chosen
                .why
                .split(": ")
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        return tracefs::run(opts, out, &report, steps, &why);
    }
    report.basic()?;
    if let Ok(tracefs) = &report.tracefs {
        stale::sweep(tracefs, false);
    }
    let mut kernel = target::kernel(&mut report, opts.read)?;
    // Only asked for when nothing else decides: a test link at start.
    let multi_found = (opts.attach == AttachMode::Auto).then(|| report.kprobe_multi().clone());
    kernel.kprobe_multi = multi_found.as_ref().is_some_and(Result::is_ok);
    // A few KiB of BTF and one test load: `comm` as two loads where it can.
    kernel.task_comm = report.task_comm();
    // Reading the kernel's BTF takes a while (megabytes of types): only
    // for a program that reads struct members.
    // (or names a constant only BTF or a profile may know).
    let needs_fields = lang::names_used(&opts.program, kernel).map_or(true, |used| {
        !used.fields.is_empty() || !used.enums.is_empty() || !used.structs.is_empty()
    });
    let fields = if needs_fields {
        Fields::choose(opts.offsets.as_ref(), &report)?
    } else {
        Fields::Nothing
    };
    if opts.verbose && needs_fields {
        eprintln!("nobtf: struct fields from {}", fields.describe());
    }
    let tracepoints = Tracepoints::new(report.tracefs.as_deref().ok());
    // kaddr() reads kallsyms while compiling; stacks are read at print.
    let symbols = std::sync::Arc::new(symbolize::SystemSymbols::new(opts.pid));
    lang::symbols::install(symbols.clone());
    let target = Target {
        fields: &fields,
        tracepoints: &tracepoints,
        kernel,
    };
    let compiled = compile_program(opts, &target)?;
    let count = lang::expand::bpftrace_probe_count(&opts.program, &tracepoints, kernel.abi);
    let compiled = target::without_missing_functions(compiled, report.tracefs.as_deref().ok())?;
    symbols.set_functions(multi_functions(&compiled));
    if opts.verbose {
        say_multi(&compiled, kernel, multi_found.as_ref(), opts.attach);
        let lowered: Vec<_> = compiled
            .probes
            .iter()
            .filter_map(|p| match &p.attach {
                LangPoint::Syscall(lowered) => Some(lowered.clone()),
                _ => None,
            })
            .collect();
        say_lowered(&lowered);
    }
    let (compiled, placed) = uprobes::place(
        compiled,
        tracepoints.user_files(),
        opts.pid,
        opts.unsafe_allowed,
    )?;
    steps.done("kernel features and compiling");
    live::check(opts, &report, &fields, kernel, &tracepoints, live::Via::Bpf)?;

    let mut session = Session::new(Setup {
        attach: plan::attach_mechanism(&report, opts.attach)?,
        load: load::LoadOptions {
            kern_version: report.kern_version(),
            names: report.basic()?.names,
        },
        tracefs: report.tracefs.clone(),
        ring_pages: compiled.config.perf_rb_pages.unwrap_or(opts.buffer_pages),
        clone_fix: "",
    })?;
    session.create_maps(maps(&compiled, kernel.sink))?;
    symbols.set_stacks(stack_maps(&session, &compiled)?);
    steps.done("maps and perf rings");
    for probe in &compiled.probes {
        load_probe(&mut session, probe, &placed, Some(&mut report))?;
    }
    steps.done("loading the programs (verifier)");

    let clock = LocalClock::new();
    let mut printer = Printer::new(&compiled, opts.format, out, opts.pid, &clock);
    // BEGIN's map writes are in the kernel before the first probe fires.
    // Its output waits for the probes, as bpftrace's BEGIN runs once they
    // are attached: a user (or a script) waiting for BEGIN's header may
    // start the workload then.
    printer.hold();
    let stopped = begin(opts, count, &session, &mut printer)?;
    if !stopped {
        session.attach_all()?;
        if opts.verbose {
            for note in &session.attach_notes {
                eprintln!("nobtf: {note}");
            }
        }
        steps.done("attaching");
    }
    printer.release()?;
    drive(opts, &mut session, &mut printer, stopped, flush_losses)
}

/// Prints `Attaching N probes...` (`count` of them), then runs BEGIN
/// (`elapsed`'s start first); whether it called `exit()`.
fn begin(
    opts: &TraceOptions,
    count: u64,
    session: &Session,
    printer: &mut Printer<'_>,
) -> Result<bool, TraceError> {
    // Written now, held or not, as bpftrace writes it before attaching.
    printer.write_now(report::attached_probes(count, opts.format).as_bytes())?;
    let mut blocks = Blocks {
        session,
        printer,
        stopped: false,
    };
    let stopped = blocks.start()?;
    printer.flush()?;
    Ok(stopped)
}

/// Encodes `probe` against the session's maps and loads it; with `report`,
/// a refusal names the helper this kernel lacks.
fn load_probe(
    session: &mut Session,
    probe: &CompiledProbe,
    placed: &uprobes::Placed,
    report: Option<&mut Report>,
) -> Result<(), TraceError> {
    let insns = probe
        .encode(|name| session.map(name).map(|m| m.raw()))
        .map_err(TraceError::Encode)?;
    let spec = ProgramSpec {
        name: &probe.name(),
        point: attach_point(&probe.attach, placed),
        insns: &insns,
        license: load::GPL,
        disassembly: &probe.insns,
    };
    match report {
        Some(report) => session.load(&spec, report)?,
        None => session.load_raw(&spec).map_err(SessionError::from)?,
    }
    Ok(())
}

/// Unless `exit()` ended the trace, the records of the program runs under
/// way, then the rings' last loss counts (see `lang::flush`), when records
/// came: a ring that never filled lost nothing. Without them the summary
/// may undercount, which is said.
fn flush_losses(session: &mut Session, printer: &mut Printer<'_>) {
    // The user's probes go first: nothing they see from now on (nobtf's
    // own flush below, the command's end, END's reads) is the trace's.
    session.detach_all();
    if !printer.exited
        && let Err(err) = print_runs_under_way(session, printer)
    {
        eprintln!("warning: {err}");
    }
    printer.stopped = true;
    // The ring buffer's losses are counted as they happen: a drain reads them.
    if session.has_ring_buffer() {
        if let Err(err) = session.drain(printer) {
            eprintln!("warning: {err}");
        }
        return;
    }
    if session.stats.records == 0 || session.map(EVENTS_MAP).is_none() {
        return;
    }
    let me = std::process::id();
    // The user's probes go first: nobtf's own unlinks below must not be
    // counted in their maps (a `kprobe:do_unlinkat` count would show them).
    session.detach_all();
    let flush = lang::flush::probe(me);
    let loaded = load_probe(session, &flush, &uprobes::Placed::default(), None)
        .and_then(|()| Ok(session.attach_all()?));
    if let Err(err) = loaded {
        eprintln!(
            "warning: the rings' last loss counts could not be read ({err}): more events may have been lost than reported"
        );
        return;
    }
    session.unlink_on_each_ring_cpu(&format!("/tmp/.nobtf-flush-{me}"));
    if let Err(err) = session.drain(printer) {
        eprintln!("warning: {err}");
    }
}

/// With the probes detached: waits for the runs under way and prints what
/// they wrote, so that an event of several records (execsnoop's printf,
/// then join) is printed whole, where a stop between its records would
/// leave half a line.
fn print_runs_under_way(
    session: &mut Session,
    printer: &mut Printer<'_>,
) -> Result<(), TraceError> {
    session.wait_for_running_programs();
    // A step a record asks for (a map printed, `exit()`) stops a drain:
    // acted on, the drain goes on, until one finds the rings empty.
    loop {
        let flow = session.drain(printer)?;
        if act(printer, session)? || matches!(flow, Flow::Continue) {
            return Ok(());
        }
    }
}

/// After [`begin`] (`stopped` if it called `exit()`): runs the command,
/// streams until the program or the user ends it (timers on the way),
/// then END and the maps. `at_stop` counts the losses only known once the
/// stream has stopped (the perf rings' last counts, the tracefs buffer's
/// overruns).
fn drive(
    opts: &TraceOptions,
    session: &mut Session,
    printer: &mut Printer<'_>,
    mut stopped: bool,
    at_stop: impl FnOnce(&mut Session, &mut Printer<'_>),
) -> Result<(), TraceError> {
    let compiled = printer.compiled();
    if let (Some(command), false) = (&opts.command, stopped) {
        session.run_command(command)?;
    }
    let end = opts.duration.map(|d| Instant::now() + d);
    let mut timers: Vec<(Instant, Duration, &lang::Timer)> = compiled
        .timers
        .iter()
        .map(|t| {
            let every = Duration::from_nanos(t.nanos);
            (Instant::now() + every, every, t)
        })
        .collect();
    while !stopped {
        let tick = Instant::now() + Duration::from_millis(200);
        let next_timer = timers.iter().map(|(due, ..)| *due).min();
        let deadline = [end, next_timer, opts.pid.map(|_| tick)]
            .into_iter()
            .flatten()
            .min();
        session.stream(printer, deadline)?;
        let now = Instant::now();
        let pending = !printer.pending.is_empty();
        stopped |= act(printer, session)?;
        let timed = deadline.is_some_and(|d| now >= d);
        for (due, every, timer) in timers.iter_mut() {
            if now >= *due && !stopped {
                *due += *every;
                let mut blocks = Blocks {
                    session,
                    printer,
                    stopped: false,
                };
                stopped |= blocks.run(std::slice::from_ref(&timer.block))?;
            }
        }
        // Whatever else ended the stream (a signal, the command's exit)
        // ends the trace.
        stopped |= !timed && !pending;
        stopped |= end.is_some_and(|e| now >= e) || printer.pid_gone;
    }
    // Detached first (at_stop): what killing the command makes the
    // kernel do is nobtf's doing, not the trace's.
    at_stop(session, printer);
    session.end_command();
    let mut blocks = Blocks {
        session,
        printer,
        stopped: false,
    };
    blocks.run(&compiled.end)?;
    let mut entries = Vec::new();
    for spec in &compiled.maps {
        // A stack map is read by the stacks that name its entries (before
        // 4.12 it cannot be walked).
        if lang::symbols::stack_map_limit(&spec.name).is_some() {
            entries.push(Vec::new());
            continue;
        }
        entries.push(map_entries(session, spec)?);
    }
    let maps: Vec<(&lang::output::MapSpec, &Entries)> = compiled
        .maps
        .iter()
        .zip(&entries)
        .map(|(spec, e)| (spec, e.as_slice()))
        .collect();
    // `config = { print_maps_on_exit = 0 }` leaves them unprinted.
    if compiled.config.print_maps_on_exit {
        printer.write(&report::exit_maps(&maps, opts.format)?)?;
    }
    printer.flush()?;
    if printer.lost > 0 {
        eprint!("{}", report::lost_events(printer.lost, opts.format));
    }
    Ok(())
}

/// Acts on the printer's queued steps in order; whether one said stop.
pub(super) fn act(printer: &mut Printer<'_>, session: &Session) -> Result<bool, TraceError> {
    while let Some(step) = printer.pending.pop_front() {
        match step {
            Step::Write(bytes) => printer.write(&bytes)?,
            Step::PrintMap(map) => print(printer, session, &map, 0, 0)?,
            Step::PrintMapTop { map, top, div } => print(printer, session, &map, top, div)?,
            Step::ClearMap(name) => {
                let array = report::find_map(printer.compiled(), &name)?.array;
                if let Some(map) = session.map(&name) {
                    // An array's slots cannot be deleted: zeros are absent.
                    let zeros = vec![0u8; map.lookup_len()];
                    for (key, _) in session.entries(&name)? {
                        match array {
                            true => map.update(&key, &zeros, blocks::ANY),
                            false => map.delete(&key).map(drop),
                        }
                        .map_err(SessionError::from)?;
                    }
                }
            }
            Step::Cat(path) => cat(printer, &path)?,
            Step::System(command) => system(printer, &command)?,
            Step::Exit => {
                printer.pending.clear();
                printer.exited = true;
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// `cat(PATH)` now: at most bpftrace's `max_cat_bytes` of the file; when it
/// cannot be read, bpftrace's error line on stderr and nothing printed.
fn cat(printer: &mut Printer<'_>, path: &[u8]) -> Result<(), TraceError> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    let mut contents = Vec::new();
    let read = std::fs::File::open(path).and_then(|file| {
        file.take(report::MAX_CAT_BYTES as u64)
            .read_to_end(&mut contents)
    });
    if let Err(e) = read {
        let cause = e.to_string();
        // io::Error says "No such file or directory (os error 2)": strerror's
        // words are bpftrace's.
        let cause = cause.split(" (os error").next().unwrap_or(&cause);
        eprintln!("ERROR: failed to open file '{}': {cause}", path.display());
    }
    printer.write(&report::cat(printer.format(), &contents))
}

/// `system(COMMAND)` now, as bpftrace runs it (popen): `/bin/sh -c COMMAND`
/// with its standard output printed once it exits; its standard error is
/// nobtf's. A command that cannot be started is an error.
fn system(printer: &mut Printer<'_>, command: &[u8]) -> Result<(), TraceError> {
    use std::os::unix::ffi::OsStrExt;
    let output = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(std::ffi::OsStr::from_bytes(command))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| TraceError::System {
            command: String::from_utf8_lossy(command).into_owned(),
            err: e.to_string(),
        })?;
    printer.write(&report::system(printer.format(), &output.stdout))
}

/// `print(@m, top, div)` now.
fn print(
    printer: &mut Printer<'_>,
    session: &Session,
    map: &str,
    top: u32,
    div: u32,
) -> Result<(), TraceError> {
    let spec = report::find_map(printer.compiled(), map)?.clone();
    let entries = map_entries(session, &spec)?;
    let text = report::print_map_top(&spec, &entries, printer.format(), top, div)?;
    printer.write(&text)
}

/// An fd of each of the session's stack maps, with its depth, for the
/// printers to read stacks from.
fn stack_maps(
    session: &Session,
    compiled: &Compiled,
) -> Result<Vec<(u32, crate::sys::MapFd)>, TraceError> {
    let mut stacks = Vec::new();
    for spec in &compiled.maps {
        if let (Some(limit), Some(map)) = (
            lang::symbols::stack_map_limit(&spec.name),
            session.map(&spec.name),
        ) {
            let fd = map
                .try_clone()
                .map_err(|err| TraceError::Session(crate::session::write_error(err)))?;
            stacks.push((limit, fd));
        }
    }
    Ok(stacks)
}

/// A key and each CPU's value.
type MapEntry = (Vec<u8>, Vec<Vec<u8>>);

/// A map's entries as `lang::report` takes them: one value per CPU for a
/// per-CPU map (the kernel pads each to 8 bytes).
fn map_entries(
    session: &Session,
    spec: &lang::output::MapSpec,
) -> Result<Vec<MapEntry>, TraceError> {
    Ok(session
        .entries(&spec.name)?
        .into_iter()
        .map(|(key, value)| (spec.program_key(&key), split_per_cpu(spec, &value)))
        .filter(|(_, per_cpu)| spec.present(per_cpu))
        .collect())
}

/// A looked-up value as each CPU's (the kernel pads each to 8 bytes), or
/// the one value of a map that is not per-CPU.
fn split_per_cpu(spec: &lang::output::MapSpec, value: &[u8]) -> Vec<Vec<u8>> {
    let size = spec.value_size as usize;
    let stride = if spec.per_cpu {
        size.next_multiple_of(8)
    } else {
        size.max(1)
    };
    value
        .chunks(stride)
        .map(|c| c[..size.min(c.len())].to_vec())
        .collect()
}

/// The session's maps: the program's, and those its records go through
/// (`sink`'s).
fn maps(compiled: &Compiled, sink: probes::ringbuf::Sink) -> Vec<MapSpec> {
    let mut out: Vec<MapSpec> = compiled
        .maps
        .iter()
        .map(|m| MapSpec {
            name: m.name.clone(),
            map_type: m.map_type(),
            key_size: m.kernel_key_size(),
            value_size: m.value_size,
            max_entries: MaxEntries::Fixed(m.max_entries),
            flags: 0,
        })
        .collect();
    if !compiled.events.is_empty() {
        out.extend(sink.maps().iter().map(MapSpec::from));
    }
    out
}

/// Where `point` attaches; a uprobe where [`uprobes::place`] put it.
fn attach_point(point: &LangPoint, placed: &uprobes::Placed) -> AttachPoint {
    if let Some(probe) = placed.get(point) {
        return AttachPoint::Uprobe(probe.clone());
    }
    match point {
        LangPoint::Kprobe(f) => AttachPoint::Kprobe(f.clone()),
        LangPoint::Kretprobe(f) => AttachPoint::Kretprobe(f.clone()),
        LangPoint::KprobeMulti {
            written,
            functions,
            ret,
        } => AttachPoint::KprobeMulti {
            written: written.clone(),
            functions: functions.clone(),
            ret: *ret,
        },
        LangPoint::Tracepoint { category, name } => AttachPoint::Tracepoint {
            category: category.clone(),
            name: name.clone(),
        },
        LangPoint::Syscall(lowered) if lowered.exit => {
            AttachPoint::Kretprobe(lowered.function.clone())
        }
        LangPoint::Syscall(lowered) => AttachPoint::Kprobe(lowered.function.clone()),
        LangPoint::Interval { nanos } => AttachPoint::Interval { period_ns: *nanos },
        LangPoint::Sampling(sampling) => AttachPoint::Sampling(sampling.clone()),
        // BEGIN and END run in user space, and every uprobe kept is
        // placed: neither reaches here.
        LangPoint::Begin | LangPoint::End => unreachable!("BEGIN and END are not compiled"),
        LangPoint::Uprobe { .. } | LangPoint::Uretprobe { .. } => {
            unreachable!("uprobes are placed before loading")
        }
    }
}

/// The functions of the programs on many functions: `func` there is an
/// address, named from these.
fn multi_functions(compiled: &Compiled) -> Vec<String> {
    compiled
        .probes
        .iter()
        .filter_map(|p| match &p.attach {
            LangPoint::KprobeMulti { functions, .. } => Some(functions.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// For `-v`: whether probes on several functions are one program each
/// (kprobe_multi) or one per function, and why.
pub(crate) fn say_multi(
    compiled: &Compiled,
    kernel: lang::kernel::Kernel,
    found: Option<&Result<(), String>>,
    attach: AttachMode,
) {
    let multi = compiled
        .probes
        .iter()
        .filter(|p| matches!(p.attach, LangPoint::KprobeMulti { .. }))
        .count();
    let single = compiled
        .probes
        .iter()
        .filter(|p| matches!(p.attach, LangPoint::Kprobe(_) | LangPoint::Kretprobe(_)))
        .count();
    if multi > 0 {
        eprintln!(
            "nobtf: {multi} program{} on several functions each, for kprobe_multi links (`func` is read as the function's address)",
            if multi == 1 { "" } else { "s" }
        );
    }
    if single < 2 {
        return;
    }
    let why = if let Some(refused) = &compiled.multi_refused {
        format!("the program needs it ({refused})")
    } else if kernel.kprobe_multi {
        return;
    } else if attach != AttachMode::Auto {
        "--attach names one way per function".to_string()
    } else {
        match found {
            Some(Err(why)) => format!("this kernel has no kprobe_multi links ({why})"),
            _ => return,
        }
    };
    eprintln!("nobtf: {single} kprobes, one program per function: {why}");
}

/// For `-v`: each syscall tracepoint lowered to a kprobe, and to what.
fn say_lowered(lowered: &[lang::syscalls::Lowered]) {
    for syscall in lowered {
        eprintln!("nobtf: {}", syscall.describe());
    }
}

/// `PROGRAM` as given: a file's text when it names a readable file.
pub fn program_text(arg: &str) -> io::Result<String> {
    let path = std::path::Path::new(arg);
    if !arg.contains('{') && path.is_file() {
        std::fs::read_to_string(path)
    } else {
        Ok(arg.to_string())
    }
}

/// `opts`' program compiled for `target`, its config warnings written to
/// stderr: what a real run and a dry run both do first.
pub(crate) fn compile_program(
    opts: &TraceOptions,
    target: &Target,
) -> Result<Compiled, TraceError> {
    let compiled = lang::compile_with(
        &opts.program,
        target,
        Options {
            pid: opts.pid,
            params: opts.params.clone(),
            unsafe_allowed: opts.unsafe_allowed,
        },
    )
    .map_err(|e| TraceError::Program(e.render(&opts.program)))?;
    for warning in &compiled.config.warnings {
        eprintln!("{warning}");
    }
    Ok(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attach_point_counts_as_bpftrace_counts_them() {
        let count = |source: &str| {
            lang::expand::bpftrace_probe_count(
                source,
                &lang::tracepoint::NoTracepoints,
                kernel_headers::pt_regs::NATIVE,
            )
        };
        assert_eq!(count("BEGIN { } kprobe:a,kretprobe:a { } END { }"), 4);
        assert_eq!(count("interval:s:1 { exit(); }"), 1);
        assert_eq!(count("kprobe:a {"), 0);
        // The preamble is not a probe.
        let preamble = "#include <linux/fs.h>\nstruct s { int a; };\nconfig = { max_strlen = 8 }\n";
        assert_eq!(count(&format!("{preamble}BEGIN {{ }} kprobe:a {{ }}")), 2);
    }

    #[test]
    fn a_program_argument_may_name_a_file() {
        let path = std::env::temp_dir().join(format!("nobtf-prog-{}.bt", std::process::id()));
        std::fs::write(&path, "BEGIN { exit(); }\n").unwrap();
        let text = program_text(path.to_str().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text.unwrap(), "BEGIN { exit(); }\n");
        assert_eq!(program_text("kprobe:f { }").unwrap(), "kprobe:f { }");
        assert_eq!(program_text("no-such-file").unwrap(), "no-such-file");
    }

    #[test]
    fn interval_probes_attach_once() {
        assert_eq!(
            attach_point(&LangPoint::Interval { nanos: 1000 }, &Default::default()),
            AttachPoint::Interval { period_ns: 1000 }
        );
        assert_eq!(
            attach_point(&LangPoint::Kretprobe("f".into()), &Default::default()),
            AttachPoint::Kretprobe("f".into())
        );
    }
}
