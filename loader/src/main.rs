//! `nobtf`: parse the command line, call the library, print one error line.
#![forbid(unsafe_code)]

use std::io::{BufWriter, Write};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use loader::attach::stale;
use loader::check::Check;
use loader::cli::{Cli, Cmd, DumpProbe, RunProbe};
use loader::plan::UnlinkRequest;
use loader::{features, plan, sys};

/// Bytes of event output gathered before a write(2).
const OUTPUT_BUFFER: usize = 64 * 1024;

fn main() {
    let started = Instant::now();
    let cli = Cli::parse();
    if let Err(err) = real_main(cli, started) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli, started: Instant) -> Result<()> {
    if matches!(cli.command, Cmd::Run { .. } | Cmd::Load(_) | Cmd::Trace(_)) {
        // Whatever gets attached is detached again even if a signal comes.
        sys::hold_termination_signals().context("holding termination signals")?;
    }
    match cli.command {
        Cmd::Load(args) => {
            let request = args.request()?;
            if let Ok(tracefs) = features::tracefs() {
                stale::sweep(&tracefs, false);
            }
            let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, std::io::stdout().lock());
            Ok(loader::legacy::load::main(&request, &mut out, started)?)
        }
        Cmd::Trace(args) => {
            let opts = args.options()?;
            let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, std::io::stdout().lock());
            Ok(loader::trace::run(&opts, &mut out, started)?)
        }
        Cmd::Check {
            function: None,
            offsets,
            backend,
        } => {
            print!("{}", Check::run(offsets, backend.into()));
            Ok(())
        }
        Cmd::Check {
            function: Some(name),
            ..
        } => {
            let tracefs = features::tracefs().ok();
            let probeable = features::function_probeable(&name, tracefs.as_deref())?;
            plan::explain_probeable(&name, &probeable)?;
            println!(
                "{name}: probeable (in /proc/kallsyms and, where readable, available_filter_functions)"
            );
            Ok(())
        }
        Cmd::Cleanup => {
            let tracefs = features::tracefs().map_err(|e| {
                if sys::geteuid() != 0 {
                    anyhow!("nobtf cleanup must run as root to read and change kprobe_events ({e})")
                } else {
                    e.into()
                }
            })?;
            let sweep = stale::sweep(&tracefs, true);
            if let Some((event, why)) = sweep.failed.first() {
                bail!(
                    "could not remove {} stale kprobe event(s), first {event}: {why}",
                    sweep.failed.len()
                );
            }
            Ok(())
        }
        Cmd::Dump {
            probe: DumpProbe::Unlink(args),
        } => {
            let text = loader::dump::dump(&UnlinkRequest {
                offsets: args.probe.offsets,
                read: args.probe.read_helper.into(),
                trace_pipe: args.probe.trace_pipe,
            })?;
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
            Ok(())
        }
        Cmd::Run {
            probe: RunProbe::Unlink(args),
        } => {
            let opts = args.options()?;
            // One write(2) per batch, not per line (stdout's own LineWriter):
            // the session flushes whenever the rings run dry.
            let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, std::io::stdout().lock());
            let summary = loader::run::run(&opts, &mut out, started)?;
            eprintln!("{summary}");
            Ok(())
        }
    }
}
