//! The unlink probes' trace-pipe message (`bpf_trace_printk` with
//! `probes::unlink::ENTRY_FORMAT` / `EXIT_FORMAT`): written by nobtf's own
//! text printer in the same words, and parsed here, once per line.

use std::sync::LazyLock;

use probes::unlink::{ENTRY_FORMAT, EXIT_FORMAT};

/// What the probes reported for nobtf's own process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Entry {
        filename: String,
        /// `None` when the probe does not report it (trace pipe, user path).
        refcnt: Option<i32>,
    },
    Exit {
        ret: i64,
    },
}

/// The fixed words of the two messages, cut from the probes' formats.
pub struct Words {
    /// `KPROBE ENTRY pid = `
    pub entry: &'static str,
    /// `, filename = `
    pub filename: &'static str,
    /// `KPROBE EXIT: pid = `
    pub exit: &'static str,
    /// `, ret = `
    pub ret: &'static str,
}

/// The text of `format` before its first conversion, and between that and the
/// second.
fn cut(format: &'static str) -> (&'static str, &'static str) {
    let (before, after) = format.split_once('%').unwrap_or((format, ""));
    let after = after.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let (between, _) = after.split_once('%').unwrap_or((after, ""));
    (before, between)
}

pub static WORDS: LazyLock<Words> = LazyLock::new(|| {
    let (entry, filename) = cut(ENTRY_FORMAT);
    let (exit, ret) = cut(EXIT_FORMAT);
    Words {
        entry,
        filename,
        exit,
        ret,
    }
});

/// One of the probes' lines, as far as it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeLine {
    /// The `pid = N` of the message.
    pub pid: Option<u32>,
    /// What it reports, when the whole message reads.
    pub seen: Option<Seen>,
}

/// `None` for a line that is not one of the probes' messages (another
/// program's output, the kernel's own notes).
pub fn parse(line: &str) -> Option<ProbeLine> {
    let words = &*WORDS;
    if let Some((_, rest)) = line.split_once(words.entry) {
        let pid = leading_number(rest);
        // An empty filename loses its space to the line's trim.
        let seen = rest
            .split_once(words.filename.trim_end())
            .and_then(|(pid, filename)| {
                let filename = filename.strip_prefix(' ').unwrap_or(filename);
                pid.parse::<u32>().ok().map(|_| Seen::Entry {
                    filename: filename.to_string(),
                    refcnt: None,
                })
            });
        return Some(ProbeLine { pid, seen });
    }
    let (_, rest) = line.split_once(words.exit)?;
    let seen = rest.split_once(words.ret).and_then(|(pid, ret)| {
        pid.parse::<u32>().ok()?;
        Some(Seen::Exit {
            ret: ret.trim().parse().ok()?,
        })
    });
    Some(ProbeLine {
        pid: leading_number(rest),
        seen,
    })
}

fn leading_number(text: &str) -> Option<u32> {
    text.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_come_from_the_probes_formats() {
        assert_eq!(WORDS.entry, "KPROBE ENTRY pid = ");
        assert_eq!(WORDS.filename, ", filename = ");
        assert_eq!(WORDS.exit, "KPROBE EXIT: pid = ");
        assert_eq!(WORDS.ret, ", ret = ");
    }

    fn seen(line: &str) -> Option<(Option<u32>, Option<Seen>)> {
        parse(line).map(|p| (p.pid, p.seen))
    }

    #[test]
    fn lines_read_back() {
        assert_eq!(
            seen(
                "nobtf-7 [001] d... 1.0: bpf_trace_printk: KPROBE ENTRY pid = 7, filename = /tmp/a b"
            ),
            Some((
                Some(7),
                Some(Seen::Entry {
                    filename: "/tmp/a b".into(),
                    refcnt: None
                })
            ))
        );
        assert_eq!(
            seen("x-7 [001] d... 1.0: 0: KPROBE EXIT: pid = 7, ret = -2"),
            Some((Some(7), Some(Seen::Exit { ret: -2 })))
        );
        assert_eq!(
            seen("x-7 [001] d... 1.0: 0: KPROBE ENTRY pid = 7, filename ="),
            Some((
                Some(7),
                Some(Seen::Entry {
                    filename: String::new(),
                    refcnt: None
                })
            ))
        );
        assert_eq!(
            seen("rm-12 [000] d... 1.0: 0: KPROBE EXIT: pid = 12, ret = 0").map(|s| s.0),
            Some(Some(12))
        );
        assert_eq!(seen("KPROBE EXIT: pid = x, ret = 0"), Some((None, None)));
        assert_eq!(seen("sh-2 [000] .... 1.0: sched_switch"), None);
        assert_eq!(seen("nothing"), None);
    }
}
