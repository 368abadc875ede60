//! The command line (clap derive): parsing only; the work is in the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::attach::AttachMode;
use crate::check::ReadChoice;
use crate::output::Format;

/// What the first line of each kind of error means; the README has the table.
pub const ERRORS: &str = "\
Errors (one `error:` line first, details may follow; exit status 1):
  the offsets profile (...) does not fit this kernel: FIELD read X, expected Y
      the canary (a file nobtf removes itself) came back wrong: the profile's
      offsets are not this kernel's. Run `offsets gen` (docs/offsets.md) and
      pass --offsets FILE; --no-verify prints anyway.
  the probe did not fire: ...
      no event came for the canary within 5 s: unlink(2) does not reach the
      probed function, or the trace pipe has another reader.
  not allowed to load BPF programs
      run as root or with CAP_BPF+CAP_PERFMON (CAP_SYS_ADMIN before 5.8).
  this kernel has no bpf(2) / does not load kprobe BPF programs / no way to attach
      the kernel lacks CONFIG_BPF_SYSCALL, CONFIG_BPF_EVENTS or CONFIG_KPROBE_EVENTS.
  FUNCTION cannot be probed: ...
      not in /proc/kallsyms (inlined, renamed); the compiler's clones (.isra,
      .constprop) are listed. `nobtf check --function NAME` asks for any name.
  the kernel's verifier rejected program `P`
      the verifier's log and the program's disassembly follow.
  no offsets profile for kernel R
      the builtin profile fits 4.19+ only: run `offsets gen`, pass --offsets FILE.
Stale events: a SIGKILL'd nobtf leaves tracefs kprobe events behind; the
next `nobtf run` and `nobtf cleanup` remove those whose process is gone.";

/// Trace kernels without BTF: kprobes built for this kernel's offsets, no
/// clang, no libbpf.
#[derive(Debug, Parser)]
#[command(name = "nobtf", version, after_help = ERRORS)]
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
    Check {
        /// Only say whether a kprobe can attach to this function (and list
        /// its compiler clones when it cannot).
        #[arg(long, value_name = "NAME")]
        function: Option<String>,
    },
    /// Remove kprobe events left by nobtf processes that are gone (SIGKILL).
    Cleanup,
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
    #[arg(long, value_name = "FILE", env = "NOBTF_OFFSETS")]
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
    /// Skip the canary that checks the profile against this kernel first.
    #[arg(long)]
    pub no_verify: bool,
    /// Say how long each start-up step took (on stderr).
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
}
