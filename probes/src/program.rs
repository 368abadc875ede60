//! A finished kprobe program: instructions plus what the loader needs to load
//! and attach it (name, probe kind, function, maps).

use core::fmt;

use kernel_headers::bpf::{Helper, RawInsn};
use kernel_headers::kprobe::ProbeKind;
use thiserror::Error;

use crate::asm::{AsmError, Insn, Insns};

/// The perf event array records are written to (one entry per CPU), for
/// the unlink probes and `nobtf trace` alike.
pub const EVENTS_MAP: &str = "events";
use crate::check::{CheckError, check};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxEntries {
    Fixed(u32),
    /// One entry per possible CPU (`/sys/devices/system/cpu/possible`), as a
    /// perf event array needs; known only on the running machine.
    PossibleCpus,
    /// A BPF ring buffer's size in bytes (a power-of-two number of pages),
    /// which the loader chooses.
    RingBytes,
}

/// A map the program refers to by name; the loader creates it and passes its
/// fd to [`Program::encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSpec {
    pub name: &'static str,
    /// `kernel_headers::bpf::map_type::*`.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: MaxEntries,
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("offsets profile: {0}")]
    Profile(#[from] profile::ProfileError),
    #[error(
        "profile says the path is argument {0}, which is not passed in a register on this architecture; fix the profile's `name_arg`"
    )]
    ArgRegister(u8),
    #[error("{what} offset {offset} does not fit in an instruction; the profile is wrong")]
    Offset { what: &'static str, offset: u32 },
    #[error("assembling: {0}")]
    Asm(#[from] AsmError),
    #[error("static check: {0}")]
    Check(#[from] CheckError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub(crate) name: &'static str,
    pub(crate) kind: ProbeKind,
    pub(crate) function: &'static str,
    pub(crate) maps: Vec<MapSpec>,
    pub(crate) insns: Insns,
}

impl Program {
    /// The program name given to the kernel (at most 15 bytes).
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The kernel function to attach to.
    pub fn function(&self) -> &'static str {
        self.function
    }

    pub fn maps(&self) -> &[MapSpec] {
        &self.maps
    }

    pub fn insns(&self) -> &[Insn] {
        self.insns.as_slice()
    }

    /// Helpers called, each once, in order of first call; the loader checks
    /// them against the running kernel.
    pub fn helpers(&self) -> Vec<Helper> {
        let mut helpers = Vec::new();
        for insn in self.insns() {
            if let Insn::Call(helper) = *insn
                && !helpers.contains(&helper)
            {
                helpers.push(helper);
            }
        }
        helpers
    }

    /// Length in slots, as the kernel counts.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Bytes for `BPF_PROG_LOAD`: maps patched with the fds `map_fd` gives
    /// for their names, then statically checked.
    pub fn encode(&self, map_fd: impl Fn(&str) -> Option<i32>) -> Result<Vec<RawInsn>, BuildError> {
        let raw = self.insns.encode(map_fd)?;
        // The unlink probes load on every kernel nobtf targets.
        check(&raw)?;
        Ok(raw)
    }
}

impl fmt::Display for Program {
    /// The disassembly, one instruction a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.insns.fmt(f)
    }
}
