//! Runs the live checks (`crate::live_check`) of the fields a program
//! reads from an offsets profile, in a session of their own before the
//! program's probes load: nothing of them reaches the user's maps or output.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kernel_headers::kprobe::ProbeKind;
use lang::kernel::Kernel;
use lang::report::Format;
use lang::tracefs::Syntax;
use lang::tracefs_program::{self, TranslateError};
use lang::{Options, Target};
use profile::Identity;

use super::clock::LocalClock;
use super::printer::Printer;
use super::target::Tracepoints;
use super::{TraceError, TraceOptions, act, load_probe, maps};
use crate::attach::{self, Attach, GROUP};
use crate::detect::Report;
use crate::fields::Fields;
use crate::live_check::{self, Facts, LiveCheckError, READ_SIZE, SEND_SIZE, Trigger, Truth};
use crate::load;
use crate::plan;
use crate::session::{Session, Setup};
use crate::tracefs_events::KprobeEvents;

/// How long the check's record may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the checks run: BPF programs, or tracefs kprobe events (the
/// back end the program itself runs on).
#[derive(Clone, Copy)]
pub(super) enum Via<'a> {
    Bpf,
    Tracefs { root: &'a Path, syntax: Syntax },
}

pub(super) fn check(
    opts: &TraceOptions,
    report: &Report,
    fields: &Fields,
    kernel: Kernel,
    tracepoints: &Tracepoints<'_>,
    via: Via<'_>,
) -> Result<(), TraceError> {
    // BTF is the kernel's own description: nothing to prove.
    let Fields::Profile { profile, shown } = fields else {
        return Ok(());
    };
    // Through the profile's types, so that a chain of members is followed
    // to its end (`$f->f_path.dentry->d_name.name`).
    let used = match lang::fields_used_with(&opts.program, kernel, fields) {
        Ok(used) => used,
        // The program itself compiled: nothing is left to find.
        Err(_) => return Ok(()),
    };
    let identity = live_check::identity_quiet(profile, shown, report)?;
    if opts.verbose && identity == Identity::ReleaseOnly {
        eprintln!(
            "nobtf: offsets profile {shown} records no build version (made from BTF or by an older offsets): only its release and architecture were compared with this kernel's"
        );
    }
    let other_build = matches!(identity, Identity::OtherBuild { .. });
    let checks = live_check::plan(&used.fields, profile);
    if other_build && !checks.unchecked.is_empty() {
        return Err(LiveCheckError::OtherBuildUnchecked {
            profile: shown.clone(),
            fields: checks.unchecked,
        }
        .into());
    }
    if opts.verbose && !checks.unchecked.is_empty() {
        eprintln!(
            "nobtf: live checks cannot check {}",
            checks.unchecked.join(", ")
        );
    }
    if checks.checked.is_empty() {
        return Ok(());
    }
    let mut passed = Vec::new();
    for trigger in checks.triggers() {
        let target = Target {
            fields,
            tracepoints,
            kernel,
        };
        let mut facts = Facts::own()?;
        // A kernel without what the trigger needs (no IPv4 for a loopback
        // connection): its fields are not checked, and said so.
        let action = match Action::prepare(trigger, &mut facts) {
            Ok(action) => action,
            Err(err) => {
                let keys = checks.keys(trigger);
                if other_build {
                    return Err(LiveCheckError::OtherBuildUnchecked {
                        profile: shown.clone(),
                        fields: keys.iter().map(|k| k.to_string()).collect(),
                    }
                    .into());
                }
                if opts.verbose {
                    eprintln!(
                        "nobtf: live checks cannot check {} ({err})",
                        keys.join(", ")
                    );
                }
                continue;
            }
        };
        let text = checks.program(trigger, std::process::id());
        let record = match via {
            Via::Bpf => record_bpf(opts, report, &target, &text, action)?,
            Via::Tracefs { root, syntax } => record_tracefs(root, syntax, &target, &text, action)?,
        };
        if record.is_empty() {
            return Err(LiveCheckError::NoRecord {
                function: trigger.function(),
                action: trigger.action(),
            }
            .into());
        }
        passed.extend(checks.judge(trigger, &record, &facts, profile, shown)?);
    }
    if opts.verbose && !passed.is_empty() {
        eprintln!("nobtf: live checks passed: {}", passed.join(", "));
    }
    if let Identity::OtherBuild { .. } = identity {
        eprintln!(
            "nobtf: offsets profile {shown} is for another build of this release; the live checks of every field the program reads passed"
        );
    }
    Ok(())
}

/// The check program `text` as BPF, in a session of its own: loaded,
/// attached, `action` fired, its record.
fn record_bpf(
    opts: &TraceOptions,
    report: &Report,
    target: &Target<'_>,
    text: &str,
    action: Action,
) -> Result<String, TraceError> {
    let compiled = lang::compile_with(text, target, Options::default())
        .map_err(|e| TraceError::Program(format!("the live check program: {}", e.render(text))))?;
    let mut session = Session::new(Setup {
        attach: plan::attach_mechanism(report, opts.attach)?,
        load: load::LoadOptions {
            kern_version: report.kern_version(),
            names: report.basic()?.names,
        },
        tracefs: report.tracefs.clone(),
        ring_pages: 8,
        clone_fix: "",
    })?;
    session.create_maps(maps(&compiled, target.kernel.sink))?;
    for probe in &compiled.probes {
        load_probe(&mut session, probe, &Default::default(), None)?;
    }
    session.attach_all()?;
    action.fire()?;
    let mut record = Vec::new();
    let clock = LocalClock::new();
    let printer = Printer::new(&compiled, Format::Text, &mut record, None, &clock);
    await_record(&mut session, printer)?;
    drop(session);
    Ok(String::from_utf8_lossy(&record).into_owned())
}

/// The check program `text` as kprobe events in an instance of its own.
fn record_tracefs(
    root: &Path,
    syntax: Syntax,
    target: &Target<'_>,
    text: &str,
    action: Action,
) -> Result<String, TraceError> {
    let mut name = |kind: ProbeKind, function: &str| attach::next_event_name(kind, function);
    let program = tracefs_program::translate(text, target, &[], syntax, GROUP, &mut name, &[])
        .map_err(|e| {
            let why = match e {
                TranslateError::Program(e) => e.render(text),
                TranslateError::NeedsBpf(refusal) => refusal.render(text),
            };
            TraceError::Program(format!("the live check program: {why}"))
        })?;
    let mut events = KprobeEvents::new(root, 8)?;
    for probe in &program.probes {
        events.define(&probe.event, syntax, false, "")?;
    }
    let mut session = Session::new(Setup {
        attach: Attach::Tracefs(root.to_path_buf()),
        load: load::LoadOptions {
            kern_version: 0,
            names: false,
        },
        tracefs: Ok(events.instance().to_path_buf()),
        ring_pages: 8,
        clone_fix: "",
    })?;
    session.open_trace_pipe()?;
    for probe in &program.probes {
        events.enable(&probe.event, probe.filter.as_deref())?;
    }
    action.fire()?;
    let mut record = Vec::new();
    let clock = LocalClock::new();
    let printer = Printer::new(&program.compiled, Format::Text, &mut record, None, &clock)
        .with_tracefs(&program);
    await_record(&mut session, printer)?;
    drop(session);
    drop(events);
    Ok(String::from_utf8_lossy(&record).into_owned())
}

/// Streams until the check program's `exit()`, or [`TIMEOUT`].
fn await_record(session: &mut Session, mut printer: Printer<'_>) -> Result<(), TraceError> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        session.stream(&mut printer, Some(deadline))?;
        if act(&mut printer, session)? || Instant::now() >= deadline {
            return Ok(());
        }
    }
}

/// What nobtf does for a trigger, prepared before the probe attaches (its
/// facts known), fired after.
enum Action {
    Comm(String),
    Read(File, PathBuf),
    Send(TcpStream, TcpListener),
    Unlink(PathBuf),
}

impl Action {
    fn prepare(trigger: Trigger, facts: &mut Facts) -> Result<Action, LiveCheckError> {
        let me = std::process::id();
        Ok(match trigger {
            Trigger::Comm => Action::Comm(facts.value(Truth::Comm).unwrap_or_default().to_string()),
            Trigger::Read => {
                let path = own_file(&format!(".nobtf-live-{me}-r"), READ_SIZE + 7)?;
                let file = File::open(&path).map_err(|e| own("opening", &path, e))?;
                let meta = file.metadata().map_err(|e| own("stat of", &path, e))?;
                facts.set(Truth::Ino, meta.ino());
                facts.set(Truth::Size, meta.len());
                facts.set(
                    Truth::FileName,
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default(),
                );
                Action::Read(file, path)
            }
            Trigger::Send => {
                let failed = |what: &str, e: std::io::Error| LiveCheckError::Own {
                    what: format!("{what} (a loopback TCP connection for the socket checks)"),
                    err: e.to_string(),
                };
                // A SocketAddr, not "127.0.0.1:0": a string may need a name
                // lookup, which links glibc's resolver (and its dlopen) into
                // the static ARM binaries.
                let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
                let listener =
                    TcpListener::bind(loopback).map_err(|e| failed("listening on 127.0.0.1", e))?;
                let remote = listener
                    .local_addr()
                    .map_err(|e| failed("its address", e))?;
                let stream = TcpStream::connect(remote).map_err(|e| failed("connecting", e))?;
                let local = stream.local_addr().map_err(|e| failed("its address", e))?;
                facts.set(Truth::LocalPort, local.port());
                facts.set(
                    Truth::RemotePortBe,
                    u16::from_ne_bytes(remote.port().to_be_bytes()),
                );
                facts.set(Truth::LoopbackBe, u32::from_ne_bytes([127, 0, 0, 1]));
                facts.set(Truth::Family, libc_af_inet());
                Action::Send(stream, listener)
            }
            Trigger::Unlink => {
                let path = own_file(&format!(".nobtf-live-{me}-u"), 1)?;
                facts.set(Truth::UnlinkPath, path.display());
                facts.set(Truth::FreshRefcnt, crate::canary::FRESH_REFCNT);
                Action::Unlink(path)
            }
        })
    }

    fn fire(self) -> Result<(), LiveCheckError> {
        match self {
            Action::Comm(name) => std::fs::write("/proc/self/comm", name)
                .map_err(|e| own("writing", Path::new("/proc/self/comm"), e)),
            Action::Read(mut file, path) => {
                let mut buf = vec![0u8; READ_SIZE];
                let read = file.read(&mut buf).map_err(|e| own("reading", &path, e));
                let _ = std::fs::remove_file(&path);
                read.map(|_| ())
            }
            Action::Send(mut stream, listener) => {
                let sent = stream
                    .write_all(&[0u8; SEND_SIZE])
                    .map_err(|e| LiveCheckError::Own {
                        what: "sending on the loopback connection".into(),
                        err: e.to_string(),
                    });
                drop(listener);
                sent
            }
            Action::Unlink(path) => {
                std::fs::remove_file(&path).map_err(|e| own("removing", &path, e))
            }
        }
    }
}

/// AF_INET, as `skc_family` holds it.
fn libc_af_inet() -> i64 {
    kernel_headers::uapi::constant("AF_INET").unwrap_or(2)
}

fn own(what: &str, path: &Path, err: std::io::Error) -> LiveCheckError {
    LiveCheckError::Own {
        what: format!("{what} {}", path.display()),
        err: err.to_string(),
    }
}

/// A new file of `size` bytes in /tmp, else the current directory.
fn own_file(name: &str, size: usize) -> Result<PathBuf, LiveCheckError> {
    let mut last = None;
    for path in [Path::new("/tmp").join(name), PathBuf::from(name)] {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(&vec![b'x'; size])
                    .map_err(|e| own("writing", &path, e))?;
                return Ok(path);
            }
            Err(err) => last = Some(own("creating", &path, err)),
        }
    }
    Err(last.expect("two places tried"))
}
