//! The unlink events' trace-pipe lines, read back as the BPF back end's
//! events.

use lang::tracefs::{self, ProbeEvent, Value};

use crate::backend::{COMM, NAME, REFCNT, RET};
use crate::output::{Event, EventKind};

/// Turns the unlink events' trace-pipe lines into events.
pub struct Decoder {
    pub(super) entry: ProbeEvent,
    pub(super) exit: ProbeEvent,
}

impl Decoder {
    /// `None` for a line of another event; an error for one of ours that
    /// does not read.
    pub fn decode<'l>(&self, line: &'l str) -> Option<Result<Event<'l>, String>> {
        let parsed = tracefs::parse_line(line)?;
        let probe = [&self.entry, &self.exit]
            .into_iter()
            .find(|e| e.name == parsed.event)?;
        let values = match tracefs::parse_args(&probe.args, parsed.args) {
            Ok(values) => values,
            Err(err) => return Some(Err(format!("trace line of {}: {err}", probe.name))),
        };
        let value = |name: &str| {
            probe
                .args
                .iter()
                .position(|a| a.name == name)
                .map(|i| &values[i])
        };
        let kind = if probe.name == self.entry.name {
            EventKind::Entry {
                filename: match value(NAME) {
                    Some(Value::Str(s)) => s.clone().into(),
                    // A path the kernel could not read prints as empty, as
                    // the BPF probe's failed read does.
                    _ => "".into(),
                },
                refcnt: match value(REFCNT) {
                    Some(Value::Int(n)) => Some(*n as i32),
                    _ => None,
                },
            }
        } else {
            EventKind::Exit {
                ret: match value(RET) {
                    Some(Value::Int(n)) => *n,
                    _ => return Some(Err(format!("trace line of {}: no ret", probe.name))),
                },
            }
        };
        Some(Ok(Event {
            ts_ns: parsed.ts_ns,
            cpu: parsed.cpu,
            // The trace line shows the thread id; the filter's `common_pid` is it too.
            pid: parsed.tid,
            tid: parsed.tid,
            comm: match value(COMM) {
                Some(Value::Str(s)) => s.clone().into(),
                _ => parsed.comm.into(),
            },
            kind,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend;

    fn decoder() -> Decoder {
        let profile = profile::builtin::FILENAME.profile("5.10.0");
        let (entry, exit) = backend::unlink_events(
            &profile,
            "nobtf_1_p_do_unlinkat_0".into(),
            "nobtf_1_r_do_unlinkat_1".into(),
            lang::tracefs::Syntax::default(),
        )
        .unwrap();
        Decoder { entry, exit }
    }

    #[test]
    fn lines_become_the_bpf_back_ends_events() {
        let d = decoder();
        let entry = d
            .decode(r#"              rm-99      [001] d...     3.402624: nobtf_1_p_do_unlinkat_0: (do_unlinkat+0x0/0x2b0) refcnt=1 name="/tmp/a.txt""#)
            .unwrap()
            .unwrap();
        assert_eq!(
            entry,
            Event {
                ts_ns: 3_402_624_000,
                cpu: 1,
                pid: 99,
                tid: 99,
                comm: "rm".into(),
                kind: EventKind::Entry {
                    filename: "/tmp/a.txt".into(),
                    refcnt: Some(1)
                }
            }
        );
        let exit = d
            .decode("rm-99 [001] d... 3.405658: nobtf_1_r_do_unlinkat_1: (do_syscall_64+0x33/0x80 <- do_unlinkat) ret=-2")
            .unwrap()
            .unwrap();
        assert_eq!(exit.kind, EventKind::Exit { ret: -2 });
        // With `$comm`, the name the task had when the probe fired.
        let profile = profile::builtin::FILENAME.profile("5.10.0");
        let syntax = lang::tracefs::Syntax {
            comm: true,
            ustring: true,
        };
        let (entry, exit) =
            backend::unlink_events(&profile, "e".into(), "x".into(), syntax).unwrap();
        let with_comm = Decoder { entry, exit };
        let exit = with_comm
            .decode(r#"nobtf-9 [001] d... 3.4: x: (a <- do_unlinkat) ret=0 comm="rm""#)
            .unwrap()
            .unwrap();
        assert_eq!((exit.comm.as_ref(), exit.tid), ("rm", 9));
        // Another nobtf's event, or anything else: not ours.
        assert!(
            d.decode("rm-9 [001] d... 3.4: nobtf_2_r_do_unlinkat_1: (x) ret=0")
                .is_none()
        );
        assert!(
            d.decode("rm-9 [001] d... 3.4: nobtf_1_r_do_unlinkat_1: (x) nope")
                .unwrap()
                .is_err()
        );
    }
}
