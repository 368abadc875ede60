//! The command line (clap derive): parsing only; the work is in the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::attach::AttachMode;
use crate::check::ReadChoice;
use crate::output::Format;

/// Trace kernels without BTF: kprobes built for this kernel's offsets, no
/// clang, no libbpf.
#[derive(Debug, Parser)]
#[command(name = "nobtf", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Attach a probe and print its events.
    Run {
        #[command(subcommand)]
        probe: RunProbe,
    },
    /// Print what this kernel supports, what nobtf will use, and what cannot work.
    Check,
    /// Load a legacy BPF C object (kprobe/kretprobe sections, `maps`), attach it, stream its output.
    Load(crate::legacy::load::LoadArgs),
    /// Print the bytecode that would be loaded.
    Dump {
        #[command(subcommand)]
        probe: DumpProbe,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunProbe {
    /// do_unlinkat entry (pid, filename) and return (ret).
    Unlink(RunArgs),
}

#[derive(Debug, Subcommand)]
pub enum DumpProbe {
    /// The do_unlinkat entry and exit programs.
    Unlink(DumpArgs),
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Offsets profile (from `offsets gen`); default: the builtin one, on 4.19+ only.
    #[arg(long, value_name = "FILE")]
    pub offsets: Option<PathBuf>,
    /// Memory reader the probes call.
    #[arg(long, value_enum, default_value_t = ReadChoice::Auto)]
    pub read_helper: ReadChoice,
    /// Use the bpf_trace_printk variant and stream the kernel's trace_pipe.
    #[arg(long)]
    pub trace_pipe: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Run `/bin/sh -c CMD` once attached; stop when it exits.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Stop after N events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Only events of this process id.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// How to attach the kprobes.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub attach: AttachMode,
    /// Data pages per CPU perf ring (a power of two).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub buffer_pages: usize,
}

#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
}
