//! How events are printed: trace-pipe-like text lines or JSON lines. Pure.

use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines as the trace pipe shows them.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Entry {
        filename: String,
        /// `None` when the kernel's argument has no refcnt (user path).
        refcnt: Option<i32>,
    },
    Exit {
        ret: i64,
    },
}

/// One unlink event as the printers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns`: CLOCK_MONOTONIC.
    pub ts_ns: u64,
    pub cpu: u32,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    pub comm: String,
    pub kind: EventKind,
}

/// The message part, as the reference's `bpf_printk` writes it.
pub fn message(event: &Event) -> String {
    match &event.kind {
        EventKind::Entry { filename, .. } => {
            format!("KPROBE ENTRY pid = {}, filename = {filename}", event.pid)
        }
        EventKind::Exit { ret } => format!("KPROBE EXIT: pid = {}, ret = {ret}", event.pid),
    }
}

/// `comm-tid [cpu] secs.usecs: message`, laid out as the trace pipe does
/// (`%16s-%-7d [%03d] %5lu.%06lu: `).
pub fn text_line(event: &Event) -> String {
    format!(
        "{:>16}-{:<7} [{:03}] {:>5}.{:06}: {}",
        event.comm,
        event.tid,
        event.cpu,
        event.ts_ns / 1_000_000_000,
        event.ts_ns % 1_000_000_000 / 1000,
        message(event)
    )
}

pub fn json_line(event: &Event) -> String {
    let (kind, filename, refcnt, ret) = match &event.kind {
        EventKind::Entry { filename, refcnt } => ("entry", Some(filename.as_str()), *refcnt, None),
        EventKind::Exit { ret } => ("exit", None, None, Some(*ret)),
    };
    json!({
        "ts": event.ts_ns,
        "kind": kind,
        "cpu": event.cpu,
        "pid": event.pid,
        "tid": event.tid,
        "comm": event.comm,
        "filename": filename,
        "refcnt": refcnt,
        "ret": ret,
    })
    .to_string()
}

pub fn line(format: Format, event: &Event) -> String {
    match format {
        Format::Text => text_line(event),
        Format::Json => json_line(event),
    }
}

/// Whether a trace_pipe line is one of nobtf's probe messages.
pub fn is_probe_line(line: &str) -> bool {
    line.contains("KPROBE ENTRY pid = ") || line.contains("KPROBE EXIT: pid = ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Event {
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
            text_line(&entry()),
            "              rm-123     [001]  4188.004100: KPROBE ENTRY pid = 123, filename = /tmp/a.txt"
        );
        let exit = Event {
            kind: EventKind::Exit { ret: -2 },
            ..entry()
        };
        assert!(text_line(&exit).ends_with(": KPROBE EXIT: pid = 123, ret = -2"));
    }

    #[test]
    fn json_lines() {
        let v: serde_json::Value = serde_json::from_str(&json_line(&entry())).unwrap();
        assert_eq!(v["kind"], "entry");
        assert_eq!(v["filename"], "/tmp/a.txt");
        assert_eq!(v["refcnt"], 1);
        assert_eq!(v["ret"], serde_json::Value::Null);
        assert_eq!(v["pid"], 123);
        let exit = Event {
            kind: EventKind::Exit { ret: 0 },
            ..entry()
        };
        let v: serde_json::Value = serde_json::from_str(&json_line(&exit)).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["ret"].as_i64()),
            (Some("exit"), Some(0))
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
