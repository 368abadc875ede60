//! The canary: before any event is shown, nobtf removes a file of its own
//! with a known unique name and checks that the probes read back exactly what
//! it knows is true (the path through `filename.name`, `refcnt`'s value, a
//! return of 0). A wrong offset does not crash anything; it prints plausible
//! garbage, so this is what turns a wrong profile into a refusal.
//!
//! `check` drives it through a session (the unlink, the wait); `verify`,
//! the judgement, is pure and tested here.

use std::fmt;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::pipe_line::Seen;
use crate::session::{Events, LATENCY_MS, Session};
use crate::sys;

/// How long to wait for the canary's events.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// `refcnt` of the `struct filename` that `getname()` has just built for
/// unlink(2): its only reference, 1, when `do_unlinkat` starts. Seen on
/// 5.10, 6.1 and 6.12 (an int until 6.7, an atomic_t after; the same value).
/// Audit takes a second reference (`__audit_getname`) only when syscall
/// audit rules are loaded; 2 is then right, but indistinguishable from a
/// wrong offset that happens to read 2, so it is refused with a hint.
pub const FRESH_REFCNT: i32 = 1;

/// What the canary knows to be true, and where the offsets came from.
#[derive(Debug, Clone)]
pub struct Expected {
    pub filename: String,
    /// Where the path was read, e.g. `filename.name (offset 0)`.
    pub name_field: String,
    /// Where refcnt was read, when the probe reads one.
    pub refcnt_field: Option<String>,
    /// The profile, as the user named it (`--offsets FILE` or builtin).
    pub profile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanaryError {
    #[error(
        "the probe did not fire: no {probe} event for nobtf's own unlink of {path} within {secs} s{note}; check that unlink(2) reaches do_unlinkat here (`nobtf check`), or pass --no-verify"
    )]
    NoEvent {
        probe: &'static str,
        path: String,
        secs: u64,
        note: String,
    },
    #[error(
        "the offsets profile ({profile}) does not fit this kernel: {field} read {read}, expected {expected}{hint}; generate one for this kernel with `offsets gen` (see docs/offsets.md) and pass it with --offsets FILE, or pass --no-verify to print anyway"
    )]
    Mismatch {
        profile: String,
        field: String,
        read: String,
        expected: String,
        hint: &'static str,
    },
    #[error("{what}: {err}")]
    File { what: String, err: String },
}

struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Judges what was seen. `note` explains a missing event (e.g. samples lost).
pub fn verify(expected: &Expected, seen: &[Seen], note: &str) -> Result<(), CanaryError> {
    let missing = |probe| CanaryError::NoEvent {
        probe,
        path: expected.filename.to_string(),
        secs: TIMEOUT.as_secs(),
        note: note.to_string(),
    };
    let mismatch = |field: String, read: String, want: String, hint| CanaryError::Mismatch {
        profile: expected.profile.to_string(),
        field,
        read,
        expected: want,
        hint,
    };
    let Some((filename, refcnt)) = seen.iter().find_map(|s| match s {
        Seen::Entry { filename, refcnt } => Some((filename, *refcnt)),
        Seen::Exit { .. } => None,
    }) else {
        return Err(missing("entry"));
    };
    if *filename != expected.filename {
        return Err(mismatch(
            expected.name_field.clone(),
            Quoted(filename).to_string(),
            Quoted(&expected.filename).to_string(),
            "",
        ));
    }
    if let (Some(read), Some(field)) = (refcnt, &expected.refcnt_field)
        && read != FRESH_REFCNT
    {
        let hint = if read == 2 {
            " (2 is also what audit makes of it when syscall audit rules are loaded: see `auditctl -l`)"
        } else {
            ""
        };
        return Err(mismatch(
            field.clone(),
            read.to_string(),
            FRESH_REFCNT.to_string(),
            hint,
        ));
    }
    let Some(ret) = seen.iter().find_map(|s| match s {
        Seen::Exit { ret } => Some(*ret),
        Seen::Entry { .. } => None,
    }) else {
        return Err(missing("return"));
    };
    if ret != 0 {
        return Err(mismatch(
            "do_unlinkat's return value".into(),
            ret.to_string(),
            "0 (the file was removed)".into(),
            "",
        ));
    }
    Ok(())
}

/// A front end that watches for the canary: the probes' reports for
/// nobtf's own process are kept apart from what it shows.
pub trait Witness: Events {
    /// What the probes reported for nobtf's own process so far.
    fn own(&mut self) -> &mut Vec<Seen>;
    /// Samples the kernel dropped so far (they may hold the canary's).
    fn lost_total(&self) -> u64;
}

/// How the canary ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// A termination signal came first: nothing to judge.
    Interrupted,
}

/// Removes a file of nobtf's own while the probes are attached, waits (up
/// to `TIMEOUT`) for their entry and return reports of it, and judges them.
pub fn check<H>(
    session: &mut Session,
    events: &mut H,
    mut expected: Expected,
) -> Result<Outcome, H::Error>
where
    H: Witness,
    H::Error: From<CanaryError>,
{
    let path = canary_file(std::process::id())?;
    expected.filename = path.display().to_string();
    std::fs::remove_file(&path).map_err(|err| CanaryError::File {
        what: format!("removing the canary file {}", path.display()),
        err: err.to_string(),
    })?;
    let deadline = Instant::now() + TIMEOUT;
    // The probes ran inside unlink(2), so their records are usually in
    // the ring already: read before waiting (they are too few to wake us).
    session.drain(events)?;
    loop {
        let own = events.own();
        let entry = own.iter().any(|s| matches!(s, Seen::Entry { .. }));
        let exit = own.iter().any(|s| matches!(s, Seen::Exit { .. }));
        let left = deadline.saturating_duration_since(Instant::now());
        if (entry && exit) || left.is_zero() {
            break;
        }
        let signalled = session.wait(left.as_millis().min(LATENCY_MS as u128) as i32)?;
        session.drain(events)?;
        if signalled {
            return Ok(Outcome::Interrupted);
        }
    }
    let lost = events.lost_total();
    let note = if lost > 0 {
        format!(" ({lost} samples were lost: the rings were full; try a larger --buffer-pages)")
    } else {
        String::new()
    };
    let seen = std::mem::take(events.own());
    verify(&expected, &seen, &note)?;
    let refcnt_read = seen.iter().any(|s| {
        matches!(
            s,
            Seen::Entry {
                refcnt: Some(_),
                ..
            }
        )
    });
    eprintln!(
        "nobtf: canary passed: read back {}{} and a return of 0",
        expected.filename,
        if expected.refcnt_field.is_some() && refcnt_read {
            format!(", refcnt {FRESH_REFCNT}")
        } else {
            String::new()
        }
    );
    Ok(Outcome::Passed)
}

/// A fresh file for the canary to remove: in /tmp, else in the current
/// directory (by a relative name: the probe sees the path as passed).
fn canary_file(me: u32) -> Result<PathBuf, CanaryError> {
    let name = format!(".nobtf-canary-{me}-{:x}", sys::monotonic_ns());
    let mut last = None;
    for path in [Path::new("/tmp").join(&name), PathBuf::from(&name)] {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => return Ok(path),
            Err(err) => last = Some(err),
        }
    }
    Err(CanaryError::File {
        what: format!("creating the canary file {name} in /tmp or the current directory"),
        err: last.map_or_else(|| "no directory to try".to_string(), |e| e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/tmp/.nobtf-canary-1-ab";

    fn expected() -> Expected {
        Expected {
            filename: PATH.into(),
            name_field: "filename.name (offset 0)".into(),
            refcnt_field: Some("filename.refcnt (offset 16)".into()),
            profile: "builtin".into(),
        }
    }

    fn entry(filename: &str, refcnt: i32) -> Seen {
        Seen::Entry {
            filename: filename.into(),
            refcnt: Some(refcnt),
        }
    }

    #[test]
    fn the_truth_passes() {
        let seen = [entry(PATH, 1), Seen::Exit { ret: 0 }];
        assert_eq!(verify(&expected(), &seen, ""), Ok(()));
        // The trace pipe shows no refcnt: only the rest is checked.
        let seen = [
            Seen::Entry {
                filename: PATH.into(),
                refcnt: None,
            },
            Seen::Exit { ret: 0 },
        ];
        assert_eq!(verify(&expected(), &seen, ""), Ok(()));
    }

    #[test]
    fn each_wrong_field_is_named() {
        let err = verify(&expected(), &[entry("", 1), Seen::Exit { ret: 0 }], "")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "the offsets profile (builtin) does not fit this kernel: filename.name (offset 0) read \"\", expected \"/tmp/.nobtf-canary-1-ab\"; generate one"
            ),
            "{err}"
        );
        assert!(err.contains("`offsets gen`") && err.contains("--no-verify"));
        let err = verify(&expected(), &[entry(PATH, 0), Seen::Exit { ret: 0 }], "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("filename.refcnt (offset 16) read 0, expected 1;"),
            "{err}"
        );
        let err = verify(&expected(), &[entry(PATH, 2), Seen::Exit { ret: 0 }], "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("read 2, expected 1 (2 is also"), "{err}");
        let err = verify(&expected(), &[entry(PATH, 1), Seen::Exit { ret: -2 }], "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("do_unlinkat's return value read -2, expected 0"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn missing_events_say_the_probe_did_not_fire() {
        let err = verify(&expected(), &[], " (3 samples lost)")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the probe did not fire: no entry event for nobtf's own unlink of /tmp/.nobtf-canary-1-ab within 5 s (3 samples lost);"),
            "{err}"
        );
        let err = verify(&expected(), &[entry(PATH, 1)], "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no return event"), "{err}");
    }
}
