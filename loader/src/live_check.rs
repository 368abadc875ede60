//! Live checks: before a trace program's first record, nobtf proves on the
//! running kernel the profile's offsets of the fields the program reads,
//! as the canary (`canary.rs`) proves `filename` for `nobtf run unlink`.
//! A wrong profile prints plausible garbage; a check turns it into a
//! refusal naming the field.
//!
//! Also here: the profile's identity against the running kernel (another
//! release or architecture is refused; another build of the same release
//! is allowed only when the live checks pass).

use profile::{Identity, Profile, Running};

use crate::detect::Report;
use crate::plan::{PlanError, ProfileChoiceError};
use crate::sys;

/// Refuses a profile of another release or architecture; another build of
/// this release is said (the live checks then decide).
pub fn identity(profile: &Profile, shown: &str, report: &Report) -> Result<Identity, PlanError> {
    let identity = identity_quiet(profile, shown, report)?;
    if let Identity::OtherBuild { profile, running } = &identity {
        eprintln!(
            "nobtf: offsets profile {shown} was made for another build of this release ({profile}; this kernel: {running}): it is used only if the live checks pass"
        );
    }
    Ok(identity)
}

/// [`identity`], saying nothing.
pub fn identity_quiet(
    profile: &Profile,
    shown: &str,
    report: &Report,
) -> Result<Identity, PlanError> {
    let Some(running) = running_kernel(report) else {
        return Ok(Identity::ReleaseOnly);
    };
    Ok(profile
        .identity(
            shown,
            &Running {
                release: &running.0,
                version: &running.1,
                machine: kernel_headers::pt_regs::NATIVE.arch,
            },
        )
        .map_err(ProfileChoiceError::from)?)
}

/// The running kernel's `uname -r` and `uname -v`.
fn running_kernel(report: &Report) -> Option<(String, String)> {
    let release = report.kernel.as_ref().ok()?.release.clone();
    let version = sys::uname().ok()?.1;
    Some((release, version))
}

/// Where the live checks take the truth from: nobtf's own process, which a
/// probe on `__set_task_comm` sees when nobtf writes its own name to
/// `/proc/self/comm` (the kernel then calls it with nobtf's task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    /// The thread's id (nobtf checks from its main thread: the process id).
    Tid,
    Tgid,
    Comm,
    ParentTgid,
    Uid,
}

/// A field nobtf can check live: the expression reading it from `$t`
/// (nobtf's own `struct task_struct *`), the other fields that expression
/// reads, and what it must equal.
struct Known {
    key: &'static str,
    expr: &'static str,
    through: &'static [&'static str],
    truth: Truth,
}

/// The function whose first argument is nobtf's own task when it writes
/// `/proc/self/comm`; in every release from 3.17 to 6.x.
pub const PROBED: &str = "__set_task_comm";

/// Checked in this order: a wrong `tgid` is named before the parent
/// check that reads through it.
const KNOWN: &[Known] = &[
    Known {
        key: "task_struct.pid",
        expr: "$t->pid",
        through: &[],
        truth: Truth::Tid,
    },
    Known {
        key: "task_struct.tgid",
        expr: "$t->tgid",
        through: &[],
        truth: Truth::Tgid,
    },
    Known {
        key: "task_struct.real_parent",
        expr: "$t->real_parent->tgid",
        through: &["task_struct.tgid"],
        truth: Truth::ParentTgid,
    },
    Known {
        key: "task_struct.parent",
        expr: "$t->parent->tgid",
        through: &["task_struct.tgid"],
        truth: Truth::ParentTgid,
    },
    Known {
        key: "cred.uid",
        expr: "$t->real_cred->uid",
        through: &["task_struct.real_cred"],
        truth: Truth::Uid,
    },
    Known {
        key: "task_struct.real_cred",
        expr: "$t->real_cred->uid",
        through: &["cred.uid"],
        truth: Truth::Uid,
    },
    Known {
        key: "task_struct.cred",
        expr: "$t->cred->uid",
        through: &["cred.uid"],
        truth: Truth::Uid,
    },
    // Last: the only string, so the record splits on a separator the
    // numbers cannot hold and the name may.
    Known {
        key: "task_struct.comm",
        expr: "$t->comm",
        through: &[],
        truth: Truth::Comm,
    },
];

/// What the live checks will check of a program's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Keys checked, in record order.
    pub checked: Vec<&'static str>,
    /// Fields the program reads that nobtf cannot check on a live kernel.
    pub unchecked: Vec<String>,
}

/// Splits the fields a program reads (`struct.member[.member]`) into those
/// nobtf checks (with every field their check reads in `profile`) and the
/// others.
pub fn plan(used: &[String], profile: &Profile) -> Plan {
    let mut checked = Vec::new();
    let mut unchecked = Vec::new();
    for known in KNOWN {
        let has_all = std::iter::once(known.key)
            .chain(known.through.iter().copied())
            .all(|k| profile.fields.contains_key(k));
        if used.iter().any(|u| u == known.key) && has_all {
            checked.push(known.key);
        }
    }
    for field in used {
        if !checked.contains(&field.as_str()) && !unchecked.contains(field) {
            unchecked.push(field.clone());
        }
    }
    Plan { checked, unchecked }
}

/// The separator between the record's values.
const SEPARATOR: char = '\u{1f}';

impl Plan {
    /// The trace program that reads the checked fields from nobtf's own
    /// task (process `me`) and prints them in one record.
    pub fn program(&self, me: u32) -> String {
        let mut format = Vec::new();
        let mut args = Vec::new();
        for key in &self.checked {
            let known = known(key);
            format.push(if known.truth == Truth::Comm {
                "%s"
            } else {
                "%d"
            });
            args.push(known.expr);
        }
        format!(
            "kprobe:{PROBED} /pid == {me}/ {{ $t = (struct task_struct *)arg0; printf(\"{}\\n\", {}); exit(); }}",
            format.join(&SEPARATOR.to_string()),
            args.join(", ")
        )
    }

    /// Judges the record against the truth; the first field that differs
    /// refuses, naming its offset in the profile.
    pub fn judge(
        &self,
        record: &str,
        truth: &Facts,
        profile: &Profile,
        shown: &str,
    ) -> Result<Vec<String>, LiveCheckError> {
        let values: Vec<&str> = record
            .trim_end_matches('\n')
            .splitn(self.checked.len(), SEPARATOR)
            .collect();
        let mut passed = Vec::new();
        for (key, read) in self.checked.iter().zip(&values) {
            let known = known(key);
            let expected = truth.of(known.truth);
            let offset = profile.fields.get(*key).map_or(0, |f| f.offset);
            let shown_field = format!("{key} (offset {offset})");
            if *read != expected {
                return Err(LiveCheckError::Mismatch {
                    profile: shown.to_string(),
                    field: shown_field,
                    how: known.expr.replace("$t", "nobtf's task"),
                    read: read.to_string(),
                    expected,
                });
            }
            passed.push(format!("{shown_field} = {read}"));
        }
        if values.len() < self.checked.len() {
            return Err(LiveCheckError::Short(record.to_string()));
        }
        Ok(passed)
    }
}

fn known(key: &str) -> &'static Known {
    KNOWN
        .iter()
        .find(|k| k.key == key)
        .expect("checked keys come from KNOWN")
}

/// What nobtf knows of its own process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub uid: u32,
}

impl Facts {
    /// This process's, from std and /proc/self.
    pub fn own() -> Result<Facts, LiveCheckError> {
        let read = |path: &str| {
            std::fs::read_to_string(path).map_err(|err| LiveCheckError::Own {
                what: path.to_string(),
                err: err.to_string(),
            })
        };
        let status = read("/proc/self/status")?;
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| LiveCheckError::Own {
                what: "/proc/self/status".into(),
                err: "no Uid: line".into(),
            })?;
        Ok(Facts {
            pid: std::process::id(),
            ppid: std::os::unix::process::parent_id(),
            comm: read("/proc/self/comm")?.trim_end_matches('\n').to_string(),
            uid,
        })
    }

    fn of(&self, truth: Truth) -> String {
        match truth {
            Truth::Tid | Truth::Tgid => self.pid.to_string(),
            Truth::Comm => self.comm.clone(),
            Truth::ParentTgid => self.ppid.to_string(),
            Truth::Uid => self.uid.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveCheckError {
    #[error(
        "the offsets profile ({profile}) does not fit this kernel: {field} read {read:?} as {how}, expected {expected:?}; generate one for this kernel with `offsets gen` (see docs/offsets.md) and pass it with --offsets FILE"
    )]
    Mismatch {
        profile: String,
        field: String,
        how: String,
        read: String,
        expected: String,
    },
    #[error("the live check's record is short: {0:?}")]
    Short(String),
    #[error(
        "the live check did not fire: no record from kprobe:{PROBED} for nobtf's own write of /proc/self/comm within 5 s; pass a profile made for this build, or check `nobtf check --function {PROBED}`"
    )]
    NoRecord,
    #[error(
        "offsets profile {profile} was made for another build of this release, and {} cannot be checked on the live kernel: generate one for this build with `offsets gen` (docs/offsets.md)", .fields.join(", ")
    )]
    OtherBuildUnchecked {
        profile: String,
        fields: Vec<String>,
    },
    #[error("reading {what}: {err}")]
    Own { what: String, err: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use profile::Field;

    fn profile(keys: &[(&str, u32)]) -> Profile {
        let mut p = profile::builtin::FILENAME.profile("5.10.223");
        for (key, offset) in keys {
            p.fields
                .insert(key.to_string(), Field::typed(*offset, 4, "int"));
        }
        p
    }

    fn used(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    const TASK: &[(&str, u32)] = &[
        ("task_struct.pid", 904),
        ("task_struct.tgid", 908),
        ("task_struct.comm", 1392),
        ("task_struct.real_parent", 912),
    ];

    fn facts() -> Facts {
        Facts {
            pid: 42,
            ppid: 7,
            comm: "no|btf".into(),
            uid: 0,
        }
    }

    #[test]
    fn the_program_reads_what_is_checked_the_string_last() {
        let p = profile(TASK);
        let checks = plan(
            &used(&[
                "task_struct.comm",
                "task_struct.real_parent",
                "file.f_path",
                "task_struct.pid",
            ]),
            &p,
        );
        // real_parent's check reads tgid through it, which the profile has.
        assert_eq!(
            checks.checked,
            [
                "task_struct.pid",
                "task_struct.real_parent",
                "task_struct.comm"
            ]
        );
        assert_eq!(checks.unchecked, ["file.f_path"]);
        assert_eq!(
            checks.program(42),
            "kprobe:__set_task_comm /pid == 42/ { $t = (struct task_struct *)arg0; printf(\"%d\u{1f}%d\u{1f}%s\\n\", $t->pid, $t->real_parent->tgid, $t->comm); exit(); }"
        );
        // Without the field its check reads through, it is not checked.
        let p = profile(&TASK[..1]);
        let checks = plan(&used(&["task_struct.real_parent"]), &p);
        assert!(checks.checked.is_empty());
        assert_eq!(checks.unchecked, ["task_struct.real_parent"]);
    }

    #[test]
    fn the_truth_passes_and_a_wrong_field_is_named() {
        let p = profile(TASK);
        let checks = plan(&used(&["task_struct.pid", "task_struct.comm"]), &p);
        let passed = checks
            .judge("42\u{1f}no|btf\n", &facts(), &p, "p.toml")
            .unwrap();
        assert_eq!(
            passed,
            [
                "task_struct.pid (offset 904) = 42",
                "task_struct.comm (offset 1392) = no|btf"
            ]
        );
        let err = checks
            .judge("42\u{1f}\u{1}\n", &facts(), &p, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the offsets profile (p.toml) does not fit this kernel: task_struct.comm (offset 1392) read \"\\u{1}\" as nobtf's task->comm, expected \"no|btf\";"),
            "{err}"
        );
        let err = checks
            .judge("0\u{1f}no|btf", &facts(), &p, "p.toml")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("task_struct.pid (offset 904) read \"0\"")
        );
        assert_eq!(
            checks.judge("42", &facts(), &p, "p.toml").unwrap_err(),
            LiveCheckError::Short("42".into())
        );
    }
}
