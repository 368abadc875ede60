//! How events are printed: trace-pipe-like text lines or JSON lines. Pure.
//! Lines are appended to the caller's buffer: no allocation or string per
//! event, and one copy of each byte.

use std::borrow::Cow;
use std::io;

use serde::Serialize;

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
fn append_text(line: &mut Vec<u8>, event: &Event<'_>) {
    thread_prefix(line, event);
    time(line, event.ts_ns);
    message_head(line, event);
    message_tail(line, event);
}

/// `comm-tid [cpu] `
fn thread_prefix(line: &mut Vec<u8>, event: &Event<'_>) {
    let mut buf = itoa::Buffer::new();
    pad_left(line, &event.comm, 16);
    line.push(b'-');
    let tid = buf.format(event.tid);
    line.extend_from_slice(tid.as_bytes());
    pad(line, b' ', 7usize.saturating_sub(tid.len()));
    line.extend_from_slice(b" [");
    zero_padded(line, u64::from(event.cpu), 3);
    line.extend_from_slice(b"] ");
}

/// `secs.usecs: `
fn time(line: &mut Vec<u8>, ts_ns: u64) {
    pad_left(line, itoa::Buffer::new().format(ts_ns / 1_000_000_000), 5);
    line.push(b'.');
    zero_padded(line, ts_ns % 1_000_000_000 / 1000, 6);
    line.extend_from_slice(b": ");
}

/// The message up to its last value: `KPROBE ENTRY pid = N, filename = `.
fn message_head(line: &mut Vec<u8>, event: &Event<'_>) {
    let (first, second) = match event.kind {
        EventKind::Entry { .. } => (WORDS.entry, WORDS.filename),
        EventKind::Exit { .. } => (WORDS.exit, WORDS.ret),
    };
    line.extend_from_slice(first.as_bytes());
    line.extend_from_slice(itoa::Buffer::new().format(event.pid).as_bytes());
    line.extend_from_slice(second.as_bytes());
}

/// The message's last value: the path or the return value.
fn message_tail(line: &mut Vec<u8>, event: &Event<'_>) {
    match &event.kind {
        EventKind::Entry { filename, .. } => line.extend_from_slice(filename.as_bytes()),
        EventKind::Exit { ret } => {
            line.extend_from_slice(itoa::Buffer::new().format(*ret).as_bytes());
        }
    }
}

/// The parts of a text line that stay the same from one event of a thread
/// to the next (`comm-tid [cpu] ` and each kind's message head, with the
/// pid): under a storm one thread's events come one after another, so
/// most lines copy these instead of formatting them again.
#[derive(Debug, Default)]
pub struct LineCache {
    /// (tid, cpu, pid, comm) the parts below were made for.
    thread: Option<(u32, u32, u32, String)>,
    prefix: Vec<u8>,
    entry_head: Vec<u8>,
    exit_head: Vec<u8>,
}

impl LineCache {
    /// Appends the event as one line, newline included: the same bytes
    /// as [`append_line`].
    pub fn append(&mut self, buf: &mut Vec<u8>, format: Format, event: &Event<'_>) {
        if format != Format::Text {
            return append_line(buf, format, event);
        }
        let same = self.thread.as_ref().is_some_and(|(tid, cpu, pid, comm)| {
            (*tid, *cpu, *pid) == (event.tid, event.cpu, event.pid) && *comm == *event.comm
        });
        if !same {
            self.remember(event);
        }
        buf.extend_from_slice(&self.prefix);
        time(buf, event.ts_ns);
        buf.extend_from_slice(match event.kind {
            EventKind::Entry { .. } => &self.entry_head,
            EventKind::Exit { .. } => &self.exit_head,
        });
        message_tail(buf, event);
        buf.push(b'\n');
    }

    fn remember(&mut self, event: &Event<'_>) {
        self.prefix.clear();
        thread_prefix(&mut self.prefix, event);
        let entry = Event {
            kind: EventKind::Entry {
                filename: Cow::Borrowed(""),
                refcnt: None,
            },
            ..event.clone()
        };
        self.entry_head.clear();
        message_head(&mut self.entry_head, &entry);
        let exit = Event {
            kind: EventKind::Exit { ret: 0 },
            ..entry
        };
        self.exit_head.clear();
        message_head(&mut self.exit_head, &exit);
        self.thread = Some((event.tid, event.cpu, event.pid, event.comm.to_string()));
    }
}

/// `n` copies of `byte`: a slice of a constant where it is long enough
/// (every field here), which `Vec::resize`'s fill loop is not.
fn pad(line: &mut Vec<u8>, byte: u8, n: usize) {
    const SPACES: [u8; 16] = [b' '; 16];
    const ZEROS: [u8; 16] = [b'0'; 16];
    let fill = if byte == b' ' { &SPACES } else { &ZEROS };
    match fill.get(..n) {
        Some(slice) => line.extend_from_slice(slice),
        None => line.resize(line.len() + n, byte),
    }
}

/// `s` right-aligned in `width` characters, as `{:>width}` does.
fn pad_left(line: &mut Vec<u8>, s: &str, width: usize) {
    let chars = if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    };
    pad(line, b' ', width.saturating_sub(chars));
    line.extend_from_slice(s.as_bytes());
}

/// `n` with leading zeros to `width` digits, as `{:0width}` does.
fn zero_padded(line: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    pad(line, b'0', width.saturating_sub(digits.len()));
    line.extend_from_slice(digits.as_bytes());
}

/// The JSON object; fields in this (alphabetical) order.
#[derive(Serialize)]
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

fn append_json(line: &mut Vec<u8>, event: &Event<'_>) -> io::Result<()> {
    let (kind, filename, refcnt, ret) = match &event.kind {
        EventKind::Entry { filename, refcnt } => ("entry", Some(&**filename), *refcnt, None),
        EventKind::Exit { ret } => ("exit", None, None, Some(*ret)),
    };
    let json = JsonLine {
        comm: &event.comm,
        cpu: event.cpu,
        filename,
        kind,
        pid: event.pid,
        refcnt,
        ret,
        tid: event.tid,
        ts: event.ts_ns,
    };
    serde_json::to_writer(line, &json).map_err(io::Error::from)
}

/// Appends the event as one line, newline included.
pub fn append_line(buf: &mut Vec<u8>, format: Format, event: &Event<'_>) {
    match format {
        Format::Text => append_text(buf, event),
        // Serializing these fields into a Vec cannot fail.
        Format::Json => {
            let _ = append_json(buf, event);
        }
    }
    buf.push(b'\n');
}

/// The line as a string, without its newline.
pub fn line(format: Format, event: &Event<'_>) -> String {
    let mut buf = Vec::new();
    append_line(&mut buf, format, event);
    buf.pop();
    String::from_utf8_lossy(&buf).into_owned()
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
                let mut cached = Vec::new();
                cache.append(&mut cached, Format::Text, &event);
                let mut fresh = Vec::new();
                append_line(&mut fresh, Format::Text, &event);
                proptest::prop_assert_eq!(cached, fresh);
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
