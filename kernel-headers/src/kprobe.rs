//! Kprobes: where a probe fires, and how the kernel's `kprobe_events` and BPF
//! object section names spell it.

/// Function entry or function return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Function entry: `p:` in `kprobe_events`, section `kprobe/<fn>`.
    Kprobe,
    /// Function return: `r:` in `kprobe_events`, section `kretprobe/<fn>`.
    Kretprobe,
}

impl ProbeKind {
    /// The `kprobe_events` command letter.
    pub fn letter(self) -> char {
        match self {
            ProbeKind::Kprobe => 'p',
            ProbeKind::Kretprobe => 'r',
        }
    }

    /// The section prefix of a BPF object, which is also the tracefs event kind.
    pub fn prefix(self) -> &'static str {
        match self {
            ProbeKind::Kprobe => "kprobe",
            ProbeKind::Kretprobe => "kretprobe",
        }
    }
}
