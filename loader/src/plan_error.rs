//! Why a plan cannot be made: what `detect` and `plan` refuse with, apart
//! from the plan itself so that `detect` can name these without depending
//! on the planner.

use std::io;

use kernel_headers::bpf::Helper;
use kernel_headers::pt_regs;

use crate::sys::SysError;

/// Which memory reader the probes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadChoice {
    /// The newest reader the kernel has: `bpf_probe_read_kernel`, else
    /// `bpf_probe_read` with `bpf_probe_read_str`, else fixed-size reads.
    Auto,
    ProbeRead,
    ProbeReadKernel,
    /// `bpf_probe_read` alone, fixed-size path reads (for kernels before
    /// 4.11, which have no `bpf_probe_read_str`).
    ProbeReadFixed,
}

impl ReadChoice {
    /// The `--read-helper` value that asks for it.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            ReadChoice::Auto => "auto",
            ReadChoice::ProbeRead => "probe_read",
            ReadChoice::ProbeReadKernel => "probe_read_kernel",
            ReadChoice::ProbeReadFixed => "probe_read_fixed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot tell the kernel version: {0}")]
    Kernel(String),
    #[error(
        "not allowed to load BPF programs ({0}): run as root or with CAP_BPF+CAP_PERFMON (CAP_SYS_ADMIN before 5.8)"
    )]
    NotRoot(SysError),
    #[error(
        "the kernel refused bpf(2) to root ({0}): kernel lockdown, an LSM, or RLIMIT_MEMLOCK that cannot be raised"
    )]
    Denied(SysError),
    #[error("this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL is off): {0}")]
    NoBpf(SysError),
    #[error(
        "this kernel does not load kprobe BPF programs ({0}); it needs CONFIG_BPF_EVENTS and CONFIG_KPROBE_EVENTS"
    )]
    NoKprobeProgs(SysError),
    #[error(
        "--read-helper {} needs helper {}, which this kernel does not have{}: use --read-helper auto",
        .choice.flag(), .helper.name(), since(*.helper)
    )]
    ReadHelper { choice: ReadChoice, helper: Helper },
    #[error("{name} cannot be probed: {why}")]
    Function { name: String, why: String },
    #[error("no way to attach: {0}")]
    Attach(String),
    #[error("helper {} is not available on this kernel (needed by the probes){}", .0.name(), since(*.0))]
    Helper(Helper),
    #[error(transparent)]
    Profile(#[from] ProfileChoiceError),
    #[error("building the probes: {0}")]
    Build(#[from] probes::BuildError),
}

fn since(helper: Helper) -> String {
    format!("; mainline has it since {}", helper.since().series())
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileChoiceError {
    #[error("reading offsets profile {path}: {err}")]
    Read { path: String, err: io::Error },
    #[error("offsets profile {path}: {err}")]
    Parse {
        path: String,
        err: profile::ProfileError,
    },
    #[error(
        "no offsets profile for kernel {release}: the builtin one is only known to fit {}; generate one with `offsets gen` and pass it with --offsets FILE",
        profile::builtin::known_versions(pt_regs::NATIVE.arch)
    )]
    NoBuiltin { release: String },
    #[error(
        "offsets profile {path} is for {arch}, but this nobtf runs on {}: use a profile made for this machine's kernel (`offsets gen --arch ...`)",
        pt_regs::NATIVE.arch
    )]
    OtherArch { path: String, arch: String },
    #[error(transparent)]
    OtherKernel(#[from] profile::IdentityError),
}
