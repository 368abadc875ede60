//! Runs the live checks (`crate::live_check`) of the fields a program
//! reads from an offsets profile, in a session of their own before the
//! program's probes load: nothing of them reaches the user's maps or output.

use std::time::{Duration, Instant};

use lang::kernel::Kernel;
use lang::report::Format;
use lang::{Options, Target};
use profile::Identity;

use super::clock::LocalClock;
use super::printer::Printer;
use super::target::{Fields, Tracepoints};
use super::{TraceError, TraceOptions, act, load_probe, maps};
use crate::detect::Report;
use crate::live_check::{self, Facts, LiveCheckError};
use crate::load;
use crate::plan;
use crate::session::{Session, Setup};

/// How long the check's record may take.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn check(
    opts: &TraceOptions,
    report: &Report,
    fields: &Fields,
    kernel: Kernel,
    tracepoints: &Tracepoints<'_>,
) -> Result<(), TraceError> {
    // BTF is the kernel's own description: nothing to prove.
    let Fields::Profile { profile, shown } = fields else {
        return Ok(());
    };
    let Ok(used) = lang::names_used(&opts.program, kernel) else {
        return Ok(());
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
    let facts = Facts::own()?;
    let text = checks.program(facts.pid);
    let target = Target {
        fields,
        tracepoints,
        kernel,
    };
    let compiled = lang::compile_with(&text, &target, Options::default())
        .map_err(|e| TraceError::Program(format!("the live check program: {}", e.render(&text))))?;
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
    session.create_maps(maps(&compiled))?;
    for probe in &compiled.probes {
        load_probe(&mut session, probe, None)?;
    }
    session.attach_all()?;
    // The kernel calls __set_task_comm with nobtf's own task.
    std::fs::write("/proc/self/comm", &facts.comm).map_err(|err| LiveCheckError::Own {
        what: "writing /proc/self/comm".into(),
        err: err.to_string(),
    })?;
    let mut record = Vec::new();
    let clock = LocalClock::new();
    {
        let mut printer = Printer::new(&compiled, Format::Text, &mut record, None, &clock);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            session.stream(&mut printer, Some(deadline))?;
            if act(&mut printer, &session)? || Instant::now() >= deadline {
                break;
            }
        }
    }
    drop(session);
    let record = String::from_utf8_lossy(&record);
    if record.is_empty() {
        return Err(LiveCheckError::NoRecord.into());
    }
    let passed = checks.judge(&record, &facts, profile, shown)?;
    if opts.verbose {
        eprintln!("nobtf: live checks passed: {}", passed.join(", "));
    }
    if let Identity::OtherBuild { .. } = identity {
        eprintln!(
            "nobtf: offsets profile {shown} is for another build of this release; the live checks of every field the program reads passed"
        );
    }
    Ok(())
}
