//! How events are printed: trace-pipe-like text lines or JSON lines. Pure.
//! Lines are appended to the caller's [`Lines`]: no allocation or string
//! per event, and one copy of each byte.

mod lines;
mod record;

use std::borrow::Cow;

pub use lines::Lines;

use crate::pipe_line::WORDS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lines as the trace pipe shows them.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind<'a> {
    Entry {
        filename: Cow<'a, str>,
        /// `None` when the kernel's argument has no refcnt (user path).
        refcnt: Option<i32>,
    },
    Exit {
        ret: i64,
    },
}

/// One unlink event as the printers see it, borrowing from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    /// `bpf_ktime_get_ns`: CLOCK_MONOTONIC.
    pub ts_ns: u64,
    pub cpu: u32,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    pub comm: Cow<'a, str>,
    pub kind: EventKind<'a>,
}

/// `comm-tid [cpu] secs.usecs: message`, laid out as the trace pipe does
/// (`%16s-%-7d [%03d] %5lu.%06lu: `), then the message as the probes'
/// `bpf_trace_printk` writes it (`pipe_line::WORDS`). Built by hand into one buffer:
/// under a storm this is most of the reader's work, and `write!` with
/// padding took about twice the instructions (a test pins the two equal).
fn append_text(line: &mut Lines, event: &Event<'_>) {
    thread_prefix(line, event);
    time(line, event.ts_ns);
    message_head(line, event);
    message_tail(line, event);
}

/// `comm-tid [cpu] `
fn thread_prefix(line: &mut Lines, event: &Event<'_>) {
    pad_left(line, &event.comm, 16);
    line.push(b'-');
    let digits = line.decimal(u64::from(event.tid));
    line.pad(b' ', 7usize.saturating_sub(digits));
    line.literal(b" [");
    line.padded(u64::from(event.cpu), b'0', 3);
    line.literal(b"] ");
}

/// `secs.usecs: `
fn time(line: &mut Lines, ts_ns: u64) {
    line.padded(ts_ns / 1_000_000_000, b' ', 5);
    line.push(b'.');
    line.padded(ts_ns % 1_000_000_000 / 1000, b'0', 6);
    line.literal(b": ");
}

/// The message up to its last value: `KPROBE ENTRY pid = N, filename = `.
fn message_head(line: &mut Lines, event: &Event<'_>) {
    let (first, second) = match event.kind {
        EventKind::Entry { .. } => (WORDS.entry, WORDS.filename),
        EventKind::Exit { .. } => (WORDS.exit, WORDS.ret),
    };
    line.extend(first.as_bytes());
    line.decimal(u64::from(event.pid));
    line.extend(second.as_bytes());
}

/// The message's last value: the path or the return value.
fn message_tail(line: &mut Lines, event: &Event<'_>) {
    match &event.kind {
        EventKind::Entry { filename, .. } => line.extend(filename.as_bytes()),
        EventKind::Exit { ret } => line.signed(*ret),
    }
}

/// The parts of a text line that stay the same from one event of a thread
/// to the next (`comm-tid [cpu] ` and each kind's message head, with the
/// pid): under a storm one thread's events come one after another, so
/// most lines copy these instead of formatting them again.
#[derive(Debug, Default)]
pub struct LineCache {
    thread: Option<Thread>,
    /// The last line's seconds, formatted.
    seconds: Option<record::Seconds>,
    /// What lines straight from records start with (`append_record`).
    record: Option<Box<record::RecordThread>>,
}

/// The parts made for one (tid, cpu, pid, comm).
#[derive(Debug)]
struct Thread {
    tid: u32,
    cpu: u32,
    pid: u32,
    comm: String,
    /// `None` when a part is longer than a [`Part`] (a comm of many
    /// replaced bytes): such lines are formatted afresh.
    parts: Option<[Part; 3]>,
}

/// Bytes of a cached part: the longest prefix of a kernel's comm (15
/// bytes padded to 16, ten-digit tid and cpu) is 41, the longest head 42.
const PART: usize = 48;

/// A part of a line, held at a fixed size so that it is copied as one.
#[derive(Debug, Clone, Copy)]
struct Part {
    bytes: [u8; PART],
    len: usize,
}

impl Part {
    /// The part `write` formats, if it fits.
    fn new(write: impl FnOnce(&mut Lines)) -> Option<Part> {
        let mut made = Lines::with_capacity(PART);
        write(&mut made);
        let made = made.as_bytes();
        let mut bytes = [0; PART];
        bytes.get_mut(..made.len())?.copy_from_slice(made);
        Some(Part {
            bytes,
            len: made.len(),
        })
    }
}

impl LineCache {
    /// Appends the event as one line, newline included: the same bytes
    /// as [`append_line`].
    pub fn append(&mut self, line: &mut Lines, format: Format, event: &Event<'_>) {
        if format != Format::Text {
            return append_line(line, format, event);
        }
        let same = self.thread.as_ref().is_some_and(|t| {
            (t.tid, t.cpu, t.pid) == (event.tid, event.cpu, event.pid)
                && same_bytes(t.comm.as_bytes(), event.comm.as_bytes())
        });
        if !same {
            self.remember(event);
        }
        let Some([prefix, entry_head, exit_head]) = self.thread.as_ref().and_then(|t| t.parts)
        else {
            return append_line(line, format, event);
        };
        line.put(&prefix.bytes, prefix.len);
        self.time(line, event.ts_ns);
        let head = match event.kind {
            EventKind::Entry { .. } => entry_head,
            EventKind::Exit { .. } => exit_head,
        };
        line.put(&head.bytes, head.len);
        message_tail(line, event);
        line.push(b'\n');
    }

    fn remember(&mut self, event: &Event<'_>) {
        let entry = Event {
            kind: EventKind::Entry {
                filename: Cow::Borrowed(""),
                refcnt: None,
            },
            ..event.clone()
        };
        let exit = Event {
            kind: EventKind::Exit { ret: 0 },
            ..entry.clone()
        };
        let parts = (|| {
            Some([
                Part::new(|line| thread_prefix(line, event))?,
                Part::new(|line| message_head(line, &entry))?,
                Part::new(|line| message_head(line, &exit))?,
            ])
        })();
        self.thread = Some(Thread {
            tid: event.tid,
            cpu: event.cpu,
            pid: event.pid,
            comm: event.comm.to_string(),
            parts,
        });
    }
}

/// `a == b` by words: a comm is a few bytes, and the slice comparison
/// calls `memcmp`, which musl's compares byte by byte.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if let (Some(a_last), Some(b_last)) = (a.last_chunk::<8>(), b.last_chunk::<8>()) {
        let (a_words, _) = a.as_chunks::<8>();
        let (b_words, _) = b.as_chunks::<8>();
        let word = |bytes: &[u8; 8]| u64::from_ne_bytes(*bytes);
        return word(a_last) == word(b_last)
            && a_words.iter().zip(b_words).all(|(x, y)| word(x) == word(y));
    }
    if let (Some(a_first), Some(a_last), Some(b_first), Some(b_last)) = (
        a.first_chunk::<4>(),
        a.last_chunk::<4>(),
        b.first_chunk::<4>(),
        b.last_chunk::<4>(),
    ) {
        let word = |bytes: &[u8; 4]| u32::from_ne_bytes(*bytes);
        return word(a_first) == word(b_first) && word(a_last) == word(b_last);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// `s` right-aligned in `width` characters, as `{:>width}` does.
fn pad_left(line: &mut Lines, s: &str, width: usize) {
    let chars = if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    };
    line.pad(b' ', width.saturating_sub(chars));
    line.extend(s.as_bytes());
}

/// The JSON object, keys in alphabetical order:
/// `{"comm":…,"cpu":…,"filename":…,"kind":…,"pid":…,"refcnt":…,"ret":…,"tid":…,"ts":…}`,
/// absent values `null`. Written by hand as serde_json writes it (a test
/// compares the two): serde_json's writer copied each quote and colon
/// through its own `memcpy` call.
fn append_json(line: &mut Lines, event: &Event<'_>) {
    let (kind, filename, refcnt, ret) = match &event.kind {
        EventKind::Entry { filename, refcnt } => ("entry", Some(&**filename), *refcnt, None),
        EventKind::Exit { ret } => ("exit", None, None, Some(*ret)),
    };
    line.literal(b"{\"comm\":");
    json_str(line, &event.comm);
    line.literal(b",\"cpu\":");
    line.decimal(u64::from(event.cpu));
    line.literal(b",\"filename\":");
    match filename {
        Some(filename) => json_str(line, filename),
        None => line.literal(b"null"),
    }
    line.literal(b",\"kind\":\"");
    line.extend(kind.as_bytes());
    line.literal(b"\",\"pid\":");
    line.decimal(u64::from(event.pid));
    line.literal(b",\"refcnt\":");
    match refcnt {
        Some(n) => line.signed(i64::from(n)),
        None => line.literal(b"null"),
    }
    line.literal(b",\"ret\":");
    match ret {
        Some(n) => line.signed(n),
        None => line.literal(b"null"),
    }
    line.literal(b",\"tid\":");
    line.decimal(u64::from(event.tid));
    line.literal(b",\"ts\":");
    line.decimal(event.ts_ns);
    line.push(b'}');
}

/// A JSON string, escaped as serde_json escapes: `"` and `\`, control
/// characters as `\b \t \n \f \r` or `\u00xx`; the rest as it is.
fn json_str(line: &mut Lines, s: &str) {
    line.push(b'"');
    let bytes = s.as_bytes();
    if bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\') {
        line.extend(bytes);
    } else {
        for &b in bytes {
            match b {
                b'"' => line.literal(b"\\\""),
                b'\\' => line.literal(b"\\\\"),
                b'\x08' => line.literal(b"\\b"),
                b'\t' => line.literal(b"\\t"),
                b'\n' => line.literal(b"\\n"),
                b'\x0c' => line.literal(b"\\f"),
                b'\r' => line.literal(b"\\r"),
                0..0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    line.literal(b"\\u00");
                    line.push(HEX[usize::from(b >> 4)]);
                    line.push(HEX[usize::from(b & 0xf)]);
                }
                _ => line.push(b),
            }
        }
    }
    line.push(b'"');
}

/// Appends the event as one line, newline included.
pub fn append_line(line: &mut Lines, format: Format, event: &Event<'_>) {
    match format {
        Format::Text => append_text(line, event),
        Format::Json => append_json(line, event),
    }
    line.push(b'\n');
}

/// The line as a string, without its newline.
pub fn line(format: Format, event: &Event<'_>) -> String {
    let mut line = Lines::with_capacity(128);
    append_line(&mut line, format, event);
    let bytes = line.as_bytes();
    String::from_utf8_lossy(&bytes[..bytes.len() - 1]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Event<'static> {
        Event {
            ts_ns: 4_188_004_100_123,
            cpu: 1,
            pid: 123,
            tid: 123,
            comm: "rm".into(),
            kind: EventKind::Entry {
                filename: "/tmp/a.txt".into(),
                refcnt: Some(1),
            },
        }
    }

    #[test]
    fn text_lines_match_the_trace_pipe() {
        assert_eq!(
            line(Format::Text, &entry()),
            "              rm-123     [001]  4188.004100: KPROBE ENTRY pid = 123, filename = /tmp/a.txt"
        );
        let exit = Event {
            kind: EventKind::Exit { ret: -2 },
            ..entry()
        };
        assert!(line(Format::Text, &exit).ends_with(": KPROBE EXIT: pid = 123, ret = -2"));
    }

    /// The layout spelled with `format!`, as the trace pipe's printf does.
    fn reference_text(event: &Event<'_>) -> String {
        let message = match &event.kind {
            EventKind::Entry { filename, .. } => {
                format!("KPROBE ENTRY pid = {}, filename = {filename}", event.pid)
            }
            EventKind::Exit { ret } => format!("KPROBE EXIT: pid = {}, ret = {ret}", event.pid),
        };
        format!(
            "{:>16}-{:<7} [{:03}] {:>5}.{:06}: {message}",
            event.comm,
            event.tid,
            event.cpu,
            event.ts_ns / 1_000_000_000,
            event.ts_ns % 1_000_000_000 / 1000,
        )
    }

    proptest::proptest! {
        #[test]
        fn text_lines_equal_the_format_reference(
            ts_ns: u64, cpu: u32, pid: u32, tid: u32, ret: i64, entry: bool,
            comm in "\\PC{0,20}", filename in "\\PC{0,40}",
        ) {
            let kind = if entry {
                EventKind::Entry { filename: filename.into(), refcnt: None }
            } else {
                EventKind::Exit { ret }
            };
            let event = Event { ts_ns, cpu, pid, tid, comm: comm.into(), kind };
            proptest::prop_assert_eq!(line(Format::Text, &event), reference_text(&event));
        }
    }

    proptest::proptest! {
        #[test]
        fn cached_lines_equal_fresh_ones(
            events in proptest::collection::vec(
                (0u64..4_000_000_000_000, 0u32..3, 0u32..3, 0u32..3, any_kind(), 0usize..3),
                1..12,
            ),
        ) {
            let comms = ["rm", "a-much-longer-name", "rm "];
            let mut cache = LineCache::default();
            for (ts_ns, cpu, pid, tid, kind, comm) in events {
                let event = Event { ts_ns, cpu, pid, tid, comm: comms[comm].into(), kind };
                let mut cached = Lines::default();
                cache.append(&mut cached, Format::Text, &event);
                let mut fresh = Lines::default();
                append_line(&mut fresh, Format::Text, &event);
                proptest::prop_assert_eq!(cached.as_bytes(), fresh.as_bytes());
            }
        }
    }

    fn any_kind() -> impl proptest::strategy::Strategy<Value = EventKind<'static>> {
        use proptest::prelude::*;
        prop_oneof![
            "\\PC{0,20}".prop_map(|f| EventKind::Entry {
                filename: f.into(),
                refcnt: None
            }),
            any::<i64>().prop_map(|ret| EventKind::Exit { ret }),
        ]
    }

    /// The JSON object as serde_json writes it: the hand-written lines
    /// must be these bytes.
    #[derive(serde::Serialize)]
    struct JsonLine<'a> {
        comm: &'a str,
        cpu: u32,
        filename: Option<&'a str>,
        kind: &'static str,
        pid: u32,
        refcnt: Option<i32>,
        ret: Option<i64>,
        tid: u32,
        ts: u64,
    }

    fn reference_json(event: &Event<'_>) -> String {
        let (kind, filename, refcnt, ret) = match &event.kind {
            EventKind::Entry { filename, refcnt } => ("entry", Some(&**filename), *refcnt, None),
            EventKind::Exit { ret } => ("exit", None, None, Some(*ret)),
        };
        serde_json::to_string(&JsonLine {
            comm: &event.comm,
            cpu: event.cpu,
            filename,
            kind,
            pid: event.pid,
            refcnt,
            ret,
            tid: event.tid,
            ts: event.ts_ns,
        })
        .unwrap()
    }

    proptest::proptest! {
        #[test]
        fn json_lines_equal_serde_jsons(
            ts_ns: u64, cpu: u32, pid: u32, tid: u32, ret: i64, refcnt: Option<i32>, entry: bool,
            comm in json_text(), filename in json_text(),
        ) {
            let kind = if entry {
                EventKind::Entry { filename: filename.into(), refcnt }
            } else {
                EventKind::Exit { ret }
            };
            let event = Event { ts_ns, cpu, pid, tid, comm: comm.into(), kind };
            proptest::prop_assert_eq!(line(Format::Json, &event), reference_json(&event));
        }
    }

    /// Text with the characters JSON escapes: each control character,
    /// quote and backslash often.
    fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                any::<char>(),
                (0u8..0x20).prop_map(char::from),
                Just('"'),
                Just('\\'),
                Just('\x7f'),
            ],
            0..30,
        )
        .prop_map(String::from_iter)
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let texts: [&[u8]; 9] = [
            b"",
            b"r",
            b"rm",
            b"rn",
            b"rm ",
            b"abcd",
            b"abce",
            b"benchctl",
            b"benchctl-a-longer",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
        let mut long = *b"0123456789abcdefghij";
        for i in 0..long.len() {
            long[i] ^= 1;
            assert!(!same_bytes(&long, b"0123456789abcdefghij"));
            long[i] ^= 1;
        }
        assert!(same_bytes(&long, b"0123456789abcdefghij"));
    }

    #[test]
    fn json_lines() {
        let v: serde_json::Value = serde_json::from_str(&line(Format::Json, &entry())).unwrap();
        assert_eq!(v["kind"], "entry");
        assert_eq!(v["filename"], "/tmp/a.txt");
        assert_eq!(v["refcnt"], 1);
        assert_eq!(v["ret"], serde_json::Value::Null);
        assert_eq!(v["pid"], 123);
        let exit = Event {
            kind: EventKind::Exit { ret: 0 },
            ..entry()
        };
        let v: serde_json::Value = serde_json::from_str(&line(Format::Json, &exit)).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["ret"].as_i64()),
            (Some("exit"), Some(0))
        );
    }

    #[test]
    fn json_keys_in_order() {
        assert_eq!(
            line(Format::Json, &entry()),
            r#"{"comm":"rm","cpu":1,"filename":"/tmp/a.txt","kind":"entry","pid":123,"refcnt":1,"ret":null,"tid":123,"ts":4188004100123}"#
        );
    }
}
