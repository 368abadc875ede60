//! How events are printed: trace-pipe-like text lines or JSON lines. Pure.
//! Lines are written straight into the caller's (buffered) writer: no
//! string is built per event.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

/// The message part, as the reference's `bpf_printk` writes it.
fn write_message(out: &mut dyn Write, event: &Event<'_>) -> io::Result<()> {
    match &event.kind {
        EventKind::Entry { filename, .. } => {
            write!(
                out,
                "KPROBE ENTRY pid = {}, filename = {filename}",
                event.pid
            )
        }
        EventKind::Exit { ret } => write!(out, "KPROBE EXIT: pid = {}, ret = {ret}", event.pid),
    }
}

/// `comm-tid [cpu] secs.usecs: message`, laid out as the trace pipe does
/// (`%16s-%-7d [%03d] %5lu.%06lu: `).
fn write_text(out: &mut dyn Write, event: &Event<'_>) -> io::Result<()> {
    write!(
        out,
        "{:>16}-{:<7} [{:03}] {:>5}.{:06}: ",
        event.comm,
        event.tid,
        event.cpu,
        event.ts_ns / 1_000_000_000,
        event.ts_ns % 1_000_000_000 / 1000,
    )?;
    write_message(out, event)
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

fn write_json(out: &mut dyn Write, event: &Event<'_>) -> io::Result<()> {
    let (kind, filename, refcnt, ret) = match &event.kind {
        EventKind::Entry { filename, refcnt } => ("entry", Some(&**filename), *refcnt, None),
        EventKind::Exit { ret } => ("exit", None, None, Some(*ret)),
    };
    let line = JsonLine {
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
    serde_json::to_writer(out, &line).map_err(io::Error::from)
}

/// Writes the event as one line, newline included.
pub fn write_line(out: &mut dyn Write, format: Format, event: &Event<'_>) -> io::Result<()> {
    match format {
        Format::Text => write_text(out, event)?,
        Format::Json => write_json(out, event)?,
    }
    out.write_all(b"\n")
}

/// The line as a string, without its newline.
pub fn line(format: Format, event: &Event<'_>) -> String {
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = write_line(&mut buf, format, event);
    buf.pop();
    String::from_utf8_lossy(&buf).into_owned()
}

/// Whether a trace_pipe line is one of nobtf's probe messages.
pub fn is_probe_line(line: &str) -> bool {
    line.contains("KPROBE ENTRY pid = ") || line.contains("KPROBE EXIT: pid = ")
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

    #[test]
    fn probe_lines() {
        assert!(is_probe_line(
            "rm-1 [000] d... 1.0: 0: KPROBE EXIT: pid = 1, ret = 0"
        ));
        assert!(!is_probe_line("sh-2 [000] .... 1.0: sched_switch"));
    }
}
