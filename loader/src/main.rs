//! `nobtf`: parse the command line, call the library, print one error line.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use loader::check::Report;
use loader::cli::{Cli, Cmd, DumpProbe, RunProbe};
use loader::run::{self, RunOptions};

fn main() {
    let started = Instant::now();
    let cli = Cli::parse();
    if let Err(err) = real_main(cli, started) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli, started: Instant) -> Result<()> {
    match cli.command {
        Cmd::Load(args) => Ok(loader::legacy::load::main(
            args,
            &mut std::io::stdout().lock(),
            started,
        )?),
        Cmd::Check => {
            print!("{}", Report::detect(true));
            Ok(())
        }
        Cmd::Dump {
            probe: DumpProbe::Unlink(args),
        } => {
            let text = run::dump(
                args.probe.offsets.as_ref(),
                args.probe.read_helper,
                args.probe.trace_pipe,
            )?;
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
            Ok(())
        }
        Cmd::Run {
            probe: RunProbe::Unlink(args),
        } => {
            let duration = match args.duration {
                Some(secs) if !(secs.is_finite() && secs > 0.0) => {
                    bail!("--duration {secs}: give a positive number of seconds")
                }
                Some(secs) => Some(Duration::from_secs_f64(secs)),
                None => None,
            };
            let opts = RunOptions {
                offsets: args.probe.offsets,
                format: args.format,
                command: args.command,
                count: args.count,
                duration,
                pid: args.pid,
                attach: args.attach,
                read: args.probe.read_helper,
                trace_pipe: args.probe.trace_pipe,
                buffer_pages: args.buffer_pages,
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let summary = run::run(&opts, &mut out, started)?;
            eprintln!("{summary}");
            Ok(())
        }
    }
}
