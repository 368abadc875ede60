//! The command line: every clap type, and the conversion of what was
//! parsed into the library's options. The work is in the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::attach::AttachMode;
use crate::backend::BackendChoice;
use crate::legacy::load::LoadRequest;
use crate::output::Format;
use crate::plan::ReadChoice;
use crate::run::RunOptions;
use crate::session::{self, SessionError};
use crate::trace::{self, TraceOptions};

/// What the first line of each kind of error means; the README has the table.
pub const ERRORS: &str = "\
Errors (one `error:` line first, details may follow; exit status 1):
  the offsets profile (...) does not fit this kernel: FIELD read X, expected Y
      the canary (a file nobtf removes itself) came back wrong: the profile's
      offsets are not this kernel's. Run `offsets gen` (docs/offsets.md) and
      pass --offsets FILE; --no-verify prints anyway.
  the offsets profile (...) does not fit this kernel: FIELD (offset N) read X as ..., expected Y
      `nobtf trace`'s live check of a field the program reads came back wrong.
  offsets profile P is for kernel R on A, but this kernel is R2 on A2
      the profile describes another kernel: run `offsets gen` for this one.
  the probe did not fire: ...
      no event came for the canary within 5 s: unlink(2) does not reach the
      probed function, or the trace pipe has another reader.
  not allowed to load BPF programs
      run as root or with CAP_BPF+CAP_PERFMON (CAP_SYS_ADMIN before 5.8).
  this kernel has no bpf(2) / does not load kprobe BPF programs / no way to attach
      the kernel lacks CONFIG_BPF_SYSCALL, CONFIG_BPF_EVENTS or CONFIG_KPROBE_EVENTS.
      Without bpf(2), `--backend auto` takes the tracefs back end (kprobe
      events with fetch arguments) by itself; `nobtf check` says which and why.
  ... tracefs is mounted at D but has no kprobe_events / this kernel has no kprobes
      CONFIG_KPROBE_EVENTS or CONFIG_KPROBES is off: nothing can be probed here.
  FUNCTION cannot be probed: ...
      not in /proc/kallsyms (inlined, renamed); the compiler's clones (.isra,
      .constprop) are listed. `nobtf check --function NAME` asks for any name.
  the kernel's verifier rejected program `P`
      the verifier's log and the program's disassembly follow.
  no offsets profile for kernel R
      the builtin profile fits 4.19+ only: run `offsets gen`, pass --offsets FILE.
  F has CO-RE relocations (...) and this kernel has neither BTF nor a builtin offsets profile
      `nobtf load` of a CO-RE object: run `offsets gen --fields-from F`, pass --offsets FILE.
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

// `defer`: a subcommand's arguments are built only when it is the one
// invoked; building every subcommand's took most of nobtf's start-up work
// before the kernel is touched (callgrind: 0.43M of 0.81M instructions).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
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
        /// Judge `nobtf run unlink` with this offsets profile (default: the
        /// builtin one, on 4.19+ only; not used with --function).
        #[arg(long, value_name = "FILE", env = "NOBTF_OFFSETS")]
        offsets: Option<PathBuf>,
        /// Judge this back end (default: the one `run` would take).
        #[arg(long, value_enum, default_value_t = BackendArg::Auto, conflicts_with = "function")]
        backend: BackendArg,
    },
    /// Remove kprobe events left by nobtf processes that are gone (SIGKILL).
    Cleanup,
    /// Load a legacy BPF C object (kprobe/kretprobe sections, `maps`), attach it, stream its output.
    Load(LoadArgs),
    /// Run a bpftrace-language program (text, or a file): kprobes, tracepoints, maps, printf.
    Trace(TraceArgs),
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
    #[arg(long, value_enum, default_value_t = ReadArg::Auto)]
    pub read_helper: ReadArg,
    /// Use the bpf_trace_printk variant and stream the kernel's trace_pipe.
    #[arg(long)]
    pub trace_pipe: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
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
    #[arg(long, value_enum, default_value_t = AttachArg::Auto)]
    pub attach: AttachArg,
    /// Data pages per CPU perf ring (a power of two); the BPF ring buffer
    /// holds as many for all CPUs.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub buffer_pages: usize,
    /// Send records through the per-CPU perf buffer even where the kernel
    /// has the BPF ring buffer (5.8+).
    #[arg(long)]
    pub perf_buffer: bool,
    /// Skip the canary that checks the profile against this kernel first.
    #[arg(long)]
    pub no_verify: bool,
    /// Say how long each start-up step took (on stderr).
    #[arg(short, long)]
    pub verbose: bool,
    /// What traces: nobtf's BPF programs, or tracefs kprobe events with
    /// fetch arguments (kernels without bpf(2)).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
}

// `nobtf trace` arguments (a plain comment: a doc comment here would replace
// the subcommand's own about text, as subcommands are deferred).
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The program, or a file holding it (with `-l`, the probes to list).
    #[arg(value_name = "PROGRAM", required_unless_present_any = ["expr", "list"])]
    pub program: Option<String>,
    /// The program's positional parameters `$1`, `$2`, ... (after `--` when
    /// one starts with `-`).
    #[arg(value_name = "ARG")]
    pub params: Vec<String>,
    /// The program's text (then every word after the options is an ARG).
    #[arg(short = 'e', value_name = "PROGRAM", conflicts_with = "list")]
    pub expr: Option<String>,
    /// List the probes matching PROGRAM as a pattern (`kprobe:vfs_*`,
    /// `tracepoint:syscalls:*`; all without one) instead of tracing; with
    /// `-v`, each tracepoint's arguments.
    #[arg(short = 'l')]
    pub list: bool,
    /// Offsets profile for struct fields (default: the kernel's BTF, else
    /// the builtin profile where it fits).
    #[arg(long, value_name = "FILE", env = "NOBTF_OFFSETS")]
    pub offsets: Option<PathBuf>,
    /// Check and compile for the kernel the --offsets profile describes,
    /// touching no kernel: print what would attach, or refuse as a real
    /// run on that box would.
    #[arg(short = 'd', long, conflicts_with = "list")]
    pub dry_run: bool,
    /// With --dry-run: a copy of the box's /proc/kallsyms.
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    pub kallsyms: Option<PathBuf>,
    /// With --dry-run: a copy of the box's tracefs (or its events directory).
    #[arg(long, value_name = "DIR", requires = "dry_run")]
    pub tracepoints: Option<PathBuf>,
    /// Run `/bin/sh -c CMD` once attached; stop when it exits.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Only events of this process id.
    #[arg(short = 'p', value_name = "PID")]
    pub pid: Option<u32>,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Output format; `-f` as bpftrace spells it.
    #[arg(short = 'f', long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// How to attach the kprobes.
    #[arg(long, value_enum, default_value_t = AttachArg::Auto)]
    pub attach: AttachArg,
    /// Memory reader the programs call.
    #[arg(long, value_enum, default_value_t = ReadArg::Auto)]
    pub read_helper: ReadArg,
    /// Data pages per CPU perf ring (a power of two); the BPF ring buffer
    /// holds as many for all CPUs.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub buffer_pages: usize,
    /// Send records through the per-CPU perf buffer even where the kernel
    /// has the BPF ring buffer (5.8+).
    #[arg(long)]
    pub perf_buffer: bool,
    /// Say where fields come from and how long each start-up step took (on stderr).
    #[arg(short, long)]
    pub verbose: bool,
    /// What traces: BPF programs, or tracefs kprobe events with fetch
    /// arguments (printf of arguments, members, strings; no maps).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Allow what bpftrace calls unsafe: `system()` runs commands, and
    /// `signal()` sends signals.
    #[arg(long = "unsafe")]
    pub unsafe_allowed: bool,
}

#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
}

// `nobtf load` arguments (a plain comment, as for `TraceArgs`).
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The object, as `clang -target bpf -O2 -c prog.bpf.c -o prog.o` writes it.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How to attach the kprobes.
    #[arg(long, value_enum, default_value_t = AttachArg::Auto)]
    pub attach: AttachArg,
    /// Run `/bin/sh -c CMD` once attached; stop when it exits.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Offsets profile (from `offsets gen --fields-from FILE`) for a CO-RE
    /// object's field relocations; default: the kernel's BTF, else the
    /// builtin profile where it fits.
    #[arg(long, value_name = "FILE", env = "NOBTF_OFFSETS")]
    pub offsets: Option<PathBuf>,
    /// Say what was rewritten for this kernel (on stderr).
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachArg {
    /// The kprobe PMU where the kernel has it, else tracefs.
    Auto,
    /// perf_event_open on the kprobe PMU (4.17+).
    Pmu,
    /// tracefs kprobe_events (any kernel with CONFIG_KPROBE_EVENTS).
    Tracefs,
}

impl From<AttachArg> for AttachMode {
    fn from(arg: AttachArg) -> AttachMode {
        match arg {
            AttachArg::Auto => AttachMode::Auto,
            AttachArg::Pmu => AttachMode::Pmu,
            AttachArg::Tracefs => AttachMode::Tracefs,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// BPF where bpf(2) loads kprobe programs, else tracefs kprobe events.
    Auto,
    /// nobtf's BPF programs on kprobes.
    Bpf,
    /// tracefs kprobe events whose fetch arguments the kernel reads (no BPF).
    Tracefs,
}

impl From<BackendArg> for BackendChoice {
    fn from(arg: BackendArg) -> BackendChoice {
        match arg {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Bpf => BackendChoice::Bpf,
            BackendArg::Tracefs => BackendChoice::Tracefs,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadArg {
    /// The newest reader the kernel has: `bpf_probe_read_kernel`, else
    /// `bpf_probe_read` with `bpf_probe_read_str`, else fixed-size reads.
    Auto,
    #[value(name = "probe_read")]
    ProbeRead,
    #[value(name = "probe_read_kernel")]
    ProbeReadKernel,
    /// `bpf_probe_read` alone, fixed-size path reads (for kernels before
    /// 4.11, which have no `bpf_probe_read_str`).
    #[value(name = "probe_read_fixed")]
    ProbeReadFixed,
}

impl From<ReadArg> for ReadChoice {
    fn from(arg: ReadArg) -> ReadChoice {
        match arg {
            ReadArg::Auto => ReadChoice::Auto,
            ReadArg::ProbeRead => ReadChoice::ProbeRead,
            ReadArg::ProbeReadKernel => ReadChoice::ProbeReadKernel,
            ReadArg::ProbeReadFixed => ReadChoice::ProbeReadFixed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Lines as the trace pipe shows them.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Format {
        match arg {
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
        }
    }
}

impl RunArgs {
    pub fn options(self) -> Result<RunOptions, SessionError> {
        Ok(RunOptions {
            duration: session::duration(self.duration)?,
            offsets: self.probe.offsets,
            format: self.format.into(),
            command: self.command,
            count: self.count,
            pid: self.pid,
            attach: self.attach.into(),
            read: self.probe.read_helper.into(),
            trace_pipe: self.probe.trace_pipe,
            buffer_pages: self.buffer_pages,
            perf_buffer: self.perf_buffer,
            verify: !self.no_verify,
            verbose: self.verbose,
            backend: self.backend.into(),
        })
    }
}

impl TraceArgs {
    pub fn options(self) -> anyhow::Result<TraceOptions> {
        let mut params = self.params;
        let program = match (self.expr, self.program) {
            (None, pattern) if self.list => pattern.unwrap_or_default(),
            // With -e, bpftrace takes every word as a parameter.
            (Some(text), first) => {
                params.splice(0..0, first);
                text
            }
            (None, Some(arg)) => trace::program_text(&arg)
                .map_err(|e| anyhow::anyhow!("reading program file {arg}: {e}"))?,
            (None, None) => anyhow::bail!("give a program: nobtf trace PROGRAM or -e PROGRAM"),
        };
        Ok(TraceOptions {
            program,
            params,
            offsets: self.offsets,
            format: match self.format {
                FormatArg::Text => lang::report::Format::Text,
                FormatArg::Json => lang::report::Format::Json,
            },
            command: self.command,
            duration: session::duration(self.duration)?,
            pid: self.pid,
            attach: self.attach.into(),
            read: self.read_helper.into(),
            buffer_pages: self.buffer_pages,
            perf_buffer: self.perf_buffer,
            verbose: self.verbose,
            backend: self.backend.into(),
            list: self.list,
            dry_run: self.dry_run.then_some(trace::DryRun {
                kallsyms: self.kallsyms,
                tracefs: self.tracepoints,
            }),
            unsafe_allowed: self.unsafe_allowed,
        })
    }
}

impl LoadArgs {
    pub fn request(self) -> Result<LoadRequest, SessionError> {
        Ok(LoadRequest {
            duration: session::duration(self.duration)?,
            file: self.file,
            attach: self.attach.into(),
            command: self.command,
            offsets: self.offsets,
            verbose: self.verbose,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_is_well_formed() {
        // Builds the deferred subcommands too, so clap's own checks see them.
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments_become_options() {
        let cli = Cli::try_parse_from([
            "nobtf",
            "run",
            "unlink",
            "--attach",
            "tracefs",
            "--read-helper",
            "probe_read",
            "--format",
            "json",
            "--duration",
            "1.5",
        ])
        .unwrap();
        let Cmd::Run {
            probe: RunProbe::Unlink(args),
        } = cli.command
        else {
            panic!("not run unlink");
        };
        let opts = args.options().unwrap();
        assert_eq!(opts.attach, AttachMode::Tracefs);
        assert_eq!(opts.read, ReadChoice::ProbeRead);
        assert_eq!(opts.format, Format::Json);
        assert_eq!(opts.duration, Some(std::time::Duration::from_millis(1500)));
        assert!(opts.verify);

        // bpftrace's spelling of the output format carries over.
        let cli = Cli::try_parse_from(["nobtf", "trace", "-f", "json", "-e", "BEGIN {}"]).unwrap();
        let Cmd::Trace(args) = cli.command else {
            panic!("not trace");
        };
        assert_eq!(args.format, FormatArg::Json);

        let cli = Cli::try_parse_from(["nobtf", "load", "x.o", "--duration", "0"]).unwrap();
        let Cmd::Load(args) = cli.command else {
            panic!("not load");
        };
        assert_eq!(
            args.request().unwrap_err().to_string(),
            "--duration 0: give a positive number of seconds"
        );
    }

    /// Positional parameters follow the program as bpftrace takes them;
    /// options may still come after them, and `--` passes `-3`.
    #[test]
    fn words_after_the_program_are_its_parameters() {
        let trace = |words: &[&str]| {
            let cli = Cli::try_parse_from(words).unwrap();
            let Cmd::Trace(args) = cli.command else {
                panic!("not trace");
            };
            args.options().unwrap()
        };
        let opts = trace(&[
            "nobtf", "trace", "-e", "BEGIN {}", "5", "eth0", "-c", "true",
        ]);
        assert_eq!(opts.program, "BEGIN {}");
        assert_eq!(opts.params, ["5", "eth0"]);
        assert_eq!(opts.command.as_deref(), Some("true"));
        let opts = trace(&["nobtf", "trace", "kprobe:f { }", "1", "--", "-3"]);
        assert_eq!(opts.program, "kprobe:f { }");
        assert_eq!(opts.params, ["1", "-3"]);
        assert!(
            trace(&["nobtf", "trace", "-e", "BEGIN {}"])
                .params
                .is_empty()
        );
        // `-l [PATTERN]`, `-lv` as bpftrace spells them.
        let opts = trace(&["nobtf", "trace", "-lv", "kprobe:vfs_*"]);
        assert!(opts.list && opts.verbose);
        assert_eq!(opts.program, "kprobe:vfs_*");
        let opts = trace(&["nobtf", "trace", "-l"]);
        assert!(opts.list && opts.program.is_empty());
        assert!(Cli::try_parse_from(["nobtf", "trace", "-l", "-e", "BEGIN {}"]).is_err());
        // --dry-run and the box's files it takes; those only with it.
        let opts = trace(&[
            "nobtf",
            "trace",
            "-d",
            "--kallsyms",
            "k",
            "--tracepoints",
            "t",
            "BEGIN {}",
        ]);
        let dry = opts.dry_run.expect("a dry run");
        assert_eq!(dry.kallsyms, Some(PathBuf::from("k")));
        assert_eq!(dry.tracefs, Some(PathBuf::from("t")));
        assert!(trace(&["nobtf", "trace", "BEGIN {}"]).dry_run.is_none());
        assert!(Cli::try_parse_from(["nobtf", "trace", "--kallsyms", "k", "BEGIN {}"]).is_err());
    }
}
