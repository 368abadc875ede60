//! Signal numbers (`include/uapi/asm-generic/signal.h`; x86 and 32-bit ARM
//! number signals 1 to 31 the same way), for `signal()`.

/// Each signal's name without `SIG`, and its number.
pub const SIGNALS: &[(&str, u32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// The number of `SIGNAME` or `NAME` (`SIGKILL`, `KILL`).
pub fn number(name: &str) -> Option<u32> {
    let bare = name.strip_prefix("SIG").unwrap_or(name);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == bare)
        .map(|&(_, number)| number)
}

/// Highest signal number `signal()` takes (`_NSIG - 1`, real-time ones included).
pub const MAX_SIGNAL: u32 = 64;

#[cfg(test)]
mod tests {
    #[test]
    fn signals_by_name() {
        assert_eq!(super::number("SIGKILL"), Some(9));
        assert_eq!(super::number("USR1"), Some(10));
        assert_eq!(super::number("SIGNOPE"), None);
    }
}
