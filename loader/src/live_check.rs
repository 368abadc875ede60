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

/// What nobtf does so that a probe sees a struct whose values it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    /// Writes its own name to `/proc/self/comm`: the kernel calls
    /// `__set_task_comm` with nobtf's task (every release from 3.17 to 6.x).
    Comm,
    /// Reads [`READ_SIZE`] bytes of a file of its own: `vfs_read(file, ..)`.
    Read,
    /// Sends [`SEND_SIZE`] bytes on a loopback TCP connection of its own:
    /// `tcp_sendmsg(sock, ..)`.
    Send,
    /// Removes a file of its own: `do_unlinkat(.., struct filename *)`
    /// (4.19+; the profile says which argument).
    Unlink,
}

/// The read and send sizes the probes filter on: sizes nothing else of
/// nobtf's asks for.
pub const READ_SIZE: usize = 4093;
pub const SEND_SIZE: usize = 13;

impl Trigger {
    /// The probe and its predicate (thread `me`, nobtf's main thread), and `$v`, the struct
    /// pointer the checks read from.
    fn head(self, me: u32, unlink_arg: u8) -> String {
        let (probe, filter, var) = match self {
            Trigger::Comm => (
                "__set_task_comm",
                String::new(),
                "struct task_struct *)arg0".to_string(),
            ),
            Trigger::Read => (
                "vfs_read",
                format!(" && arg2 == {READ_SIZE}"),
                "struct file *)arg0".to_string(),
            ),
            Trigger::Send => (
                "tcp_sendmsg",
                format!(" && arg2 == {SEND_SIZE}"),
                "struct sock *)arg0".to_string(),
            ),
            Trigger::Unlink => (
                "do_unlinkat",
                String::new(),
                format!("struct filename *)arg{}", unlink_arg.saturating_sub(1)),
            ),
        };
        format!("kprobe:{probe} /tid == {me}{filter}/ {{ $v = ({var}; ")
    }

    /// The function probed, for messages.
    pub fn function(self) -> &'static str {
        match self {
            Trigger::Comm => "__set_task_comm",
            Trigger::Read => "vfs_read",
            Trigger::Send => "tcp_sendmsg",
            Trigger::Unlink => "do_unlinkat",
        }
    }

    /// What nobtf does, for messages.
    pub fn action(self) -> &'static str {
        match self {
            Trigger::Comm => "nobtf's write of its own name to /proc/self/comm",
            Trigger::Read => "nobtf's read of a file of its own",
            Trigger::Send => "nobtf's send on a loopback connection of its own",
            Trigger::Unlink => "nobtf's removal of a file of its own",
        }
    }
}

/// A value nobtf knows, to compare with what a probe read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Truth {
    /// The thread's id (nobtf checks from its main thread: the process id).
    Tid,
    Tgid,
    ParentTgid,
    Uid,
    /// `/proc/self/stat`'s arg_start, arg_end, env_start, env_end, startstack.
    ArgStart,
    ArgEnd,
    EnvStart,
    EnvEnd,
    StartStack,
    Ino,
    Size,
    /// The connection's local port, host order (`skc_num`).
    LocalPort,
    /// Its remote port as the `__be16` reads (`skc_dport`).
    RemotePortBe,
    /// 127.0.0.1 as the `__be32` reads (`skc_rcv_saddr`, `skc_daddr`).
    LoopbackBe,
    /// AF_INET.
    Family,
    FreshRefcnt,
    Comm,
    FileName,
    UnlinkPath,
}

impl Truth {
    fn trigger(self) -> Trigger {
        match self {
            Truth::Tid
            | Truth::Tgid
            | Truth::ParentTgid
            | Truth::Uid
            | Truth::ArgStart
            | Truth::ArgEnd
            | Truth::EnvStart
            | Truth::EnvEnd
            | Truth::StartStack
            | Truth::Comm => Trigger::Comm,
            Truth::Ino | Truth::Size | Truth::FileName => Trigger::Read,
            Truth::LocalPort | Truth::RemotePortBe | Truth::LoopbackBe | Truth::Family => {
                Trigger::Send
            }
            Truth::FreshRefcnt | Truth::UnlinkPath => Trigger::Unlink,
        }
    }

    fn is_string(self) -> bool {
        matches!(self, Truth::Comm | Truth::FileName | Truth::UnlinkPath)
    }
}

/// A field nobtf can check live: the expression reading it from `$v`
/// (the trigger's struct), the other fields that expression reads, and
/// what it must equal.
struct Known {
    key: &'static str,
    expr: &'static str,
    through: &'static [&'static str],
    truth: Truth,
}

const fn known(
    key: &'static str,
    expr: &'static str,
    through: &'static [&'static str],
    truth: Truth,
) -> Known {
    Known {
        key,
        expr,
        through,
        truth,
    }
}

const D_NAME: &[&str] = &[
    "file.f_path",
    "file.f_path.dentry",
    "dentry.d_name",
    "dentry.d_name.name",
];
const D_NAME_EXPR: &str = "str($v->f_path.dentry->d_name.name)";

/// Checked in this order within a trigger's record (strings last): a wrong
/// `tgid` is named before the parent check that reads through it.
const KNOWN: &[Known] = &[
    known("task_struct.pid", "$v->pid", &[], Truth::Tid),
    known("task_struct.tgid", "$v->tgid", &[], Truth::Tgid),
    known(
        "task_struct.real_parent",
        "$v->real_parent->tgid",
        &["task_struct.tgid"],
        Truth::ParentTgid,
    ),
    known(
        "task_struct.parent",
        "$v->parent->tgid",
        &["task_struct.tgid"],
        Truth::ParentTgid,
    ),
    known(
        "cred.uid",
        "$v->real_cred->uid",
        &["task_struct.real_cred"],
        Truth::Uid,
    ),
    known(
        "task_struct.real_cred",
        "$v->real_cred->uid",
        &["cred.uid"],
        Truth::Uid,
    ),
    known(
        "task_struct.cred",
        "$v->cred->uid",
        &["cred.uid"],
        Truth::Uid,
    ),
    known(
        "task_struct.mm",
        "$v->mm->arg_start",
        &["mm_struct.arg_start"],
        Truth::ArgStart,
    ),
    known(
        "mm_struct.arg_start",
        "$v->mm->arg_start",
        &["task_struct.mm"],
        Truth::ArgStart,
    ),
    known(
        "mm_struct.arg_end",
        "$v->mm->arg_end",
        &["task_struct.mm"],
        Truth::ArgEnd,
    ),
    known(
        "mm_struct.env_start",
        "$v->mm->env_start",
        &["task_struct.mm"],
        Truth::EnvStart,
    ),
    known(
        "mm_struct.env_end",
        "$v->mm->env_end",
        &["task_struct.mm"],
        Truth::EnvEnd,
    ),
    known(
        "mm_struct.start_stack",
        "$v->mm->start_stack",
        &["task_struct.mm"],
        Truth::StartStack,
    ),
    known(
        "file.f_inode",
        "$v->f_inode->i_ino",
        &["inode.i_ino"],
        Truth::Ino,
    ),
    known(
        "inode.i_ino",
        "$v->f_inode->i_ino",
        &["file.f_inode"],
        Truth::Ino,
    ),
    known(
        "inode.i_size",
        "$v->f_inode->i_size",
        &["file.f_inode"],
        Truth::Size,
    ),
    known(
        "dentry.d_inode",
        "$v->f_path.dentry->d_inode->i_ino",
        &["file.f_path", "file.f_path.dentry", "inode.i_ino"],
        Truth::Ino,
    ),
    known(
        "sock.__sk_common.skc_num",
        "$v->__sk_common.skc_num",
        &["sock.__sk_common"],
        Truth::LocalPort,
    ),
    known(
        "sock.__sk_common.skc_dport",
        "$v->__sk_common.skc_dport",
        &["sock.__sk_common"],
        Truth::RemotePortBe,
    ),
    known(
        "sock.__sk_common.skc_rcv_saddr",
        "$v->__sk_common.skc_rcv_saddr",
        &["sock.__sk_common"],
        Truth::LoopbackBe,
    ),
    known(
        "sock.__sk_common.skc_daddr",
        "$v->__sk_common.skc_daddr",
        &["sock.__sk_common"],
        Truth::LoopbackBe,
    ),
    known(
        "sock.__sk_common.skc_family",
        "$v->__sk_common.skc_family",
        &["sock.__sk_common"],
        Truth::Family,
    ),
    known(
        "sock_common.skc_num",
        "((struct sock_common *)$v)->skc_num",
        &[],
        Truth::LocalPort,
    ),
    known(
        "sock_common.skc_dport",
        "((struct sock_common *)$v)->skc_dport",
        &[],
        Truth::RemotePortBe,
    ),
    known(
        "sock_common.skc_rcv_saddr",
        "((struct sock_common *)$v)->skc_rcv_saddr",
        &[],
        Truth::LoopbackBe,
    ),
    known(
        "sock_common.skc_daddr",
        "((struct sock_common *)$v)->skc_daddr",
        &[],
        Truth::LoopbackBe,
    ),
    known(
        "sock_common.skc_family",
        "((struct sock_common *)$v)->skc_family",
        &[],
        Truth::Family,
    ),
    known("filename.refcnt", "$v->refcnt", &[], Truth::FreshRefcnt),
    known("task_struct.comm", "$v->comm", &[], Truth::Comm),
    known("file.f_path", D_NAME_EXPR, D_NAME, Truth::FileName),
    known("file.f_path.dentry", D_NAME_EXPR, D_NAME, Truth::FileName),
    known("dentry.d_name", D_NAME_EXPR, D_NAME, Truth::FileName),
    known("dentry.d_name.name", D_NAME_EXPR, D_NAME, Truth::FileName),
    known(
        "dentry.d_iname",
        "str($v->f_path.dentry->d_iname)",
        &["file.f_path", "file.f_path.dentry"],
        Truth::FileName,
    ),
    known("filename.name", "str($v->name)", &[], Truth::UnlinkPath),
];

/// What the live checks will check of a program's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Keys checked, in record order within each trigger.
    pub checked: Vec<&'static str>,
    /// Fields the program reads that nobtf cannot check on a live kernel.
    pub unchecked: Vec<String>,
    /// `do_unlinkat`'s argument carrying a `struct filename *`, 1-based.
    unlink_arg: u8,
}

/// The argument of `do_unlinkat` that is a `struct filename *`, when the
/// profile says so (4.19+).
fn unlink_filename_arg(profile: &Profile) -> Option<u8> {
    let f = profile.functions.get(profile::DO_UNLINKAT)?;
    (f.symbol && f.name_arg_type == profile::NameArgType::Filename).then_some(f.name_arg)
}

/// Splits the fields a program reads (`struct.member[.member]`) into those
/// nobtf checks (with every field their check reads in `profile`) and the
/// others.
pub fn plan(used: &[String], profile: &Profile) -> Plan {
    let unlink_arg = unlink_filename_arg(profile);
    let mut checked = Vec::new();
    for known in KNOWN {
        let has_all = std::iter::once(known.key)
            .chain(known.through.iter().copied())
            .all(|k| profile.fields.contains_key(k));
        let can_trigger = known.truth.trigger() != Trigger::Unlink || unlink_arg.is_some();
        if used.iter().any(|u| u == known.key) && has_all && can_trigger {
            checked.push(known.key);
        }
    }
    let mut unchecked = Vec::new();
    for field in used {
        if !checked.contains(&field.as_str()) && !unchecked.contains(field) {
            unchecked.push(field.clone());
        }
    }
    Plan {
        checked,
        unchecked,
        unlink_arg: unlink_arg.unwrap_or(0),
    }
}

/// The separator between the record's values.
const SEPARATOR: char = '\u{1f}';

impl Plan {
    /// The triggers the checked fields need, each once.
    pub fn triggers(&self) -> Vec<Trigger> {
        let mut out: Vec<Trigger> = self
            .checked
            .iter()
            .map(|k| find(k).truth.trigger())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The keys `trigger` checks, numbers first, in record order.
    pub fn keys(&self, trigger: Trigger) -> Vec<&'static str> {
        let mut keys: Vec<&'static str> = self
            .checked
            .iter()
            .copied()
            .filter(|k| find(k).truth.trigger() == trigger)
            .collect();
        keys.sort_by_key(|k| find(k).truth.is_string());
        keys
    }

    /// The trace program that reads `trigger`'s checked fields (process
    /// `me` fires it) and prints them in one record.
    pub fn program(&self, trigger: Trigger, me: u32) -> String {
        let mut format = Vec::new();
        let mut args = Vec::new();
        for key in self.keys(trigger) {
            let known = find(key);
            // 64 bits: `unsigned long` members (mm_struct's) print whole.
            format.push(if known.truth.is_string() {
                "%s"
            } else {
                "%lld"
            });
            args.push(known.expr);
        }
        format!(
            "{}printf(\"{}\\n\", {}); exit(); }}",
            trigger.head(me, self.unlink_arg),
            format.join(&SEPARATOR.to_string()),
            args.join(", ")
        )
    }

    /// Judges `trigger`'s record against the truth; the first field that
    /// differs refuses, naming its offset in the profile.
    pub fn judge(
        &self,
        trigger: Trigger,
        record: &str,
        truth: &Facts,
        profile: &Profile,
        shown: &str,
    ) -> Result<Vec<String>, LiveCheckError> {
        let keys = self.keys(trigger);
        let values: Vec<&str> = record
            .trim_end_matches('\n')
            .splitn(keys.len(), SEPARATOR)
            .collect();
        if values.len() < keys.len() {
            return Err(LiveCheckError::Short(record.to_string()));
        }
        let mut passed = Vec::new();
        for (key, read) in keys.iter().zip(&values) {
            let known = find(key);
            let expected = truth.get(known.truth)?;
            let offset = |k: &str| profile.fields.get(k).map_or(0, |f| f.offset);
            let shown_field = format!("{key} (offset {})", offset(key));
            if *read != expected {
                // The check reads through other fields: any of them may be
                // the wrong one.
                let through: Vec<String> = known
                    .through
                    .iter()
                    .filter(|t| *t != key)
                    .map(|t| format!("{t} (offset {})", offset(t)))
                    .collect();
                let field = if through.is_empty() {
                    shown_field
                } else {
                    format!("{shown_field} or {}", through.join(" or "))
                };
                return Err(LiveCheckError::Mismatch {
                    profile: shown.to_string(),
                    field,
                    how: known.expr.replace("$v", trigger.subject()),
                    read: read.to_string(),
                    expected: expected.to_string(),
                });
            }
            passed.push(format!("{shown_field} = {read}"));
        }
        Ok(passed)
    }
}

impl Trigger {
    /// The struct `$v` stands for, in messages.
    fn subject(self) -> &'static str {
        match self {
            Trigger::Comm => "nobtf's task",
            Trigger::Read => "nobtf's file",
            Trigger::Send => "nobtf's socket",
            Trigger::Unlink => "nobtf's filename",
        }
    }
}

fn find(key: &str) -> &'static Known {
    KNOWN
        .iter()
        .find(|k| k.key == key)
        .expect("checked keys come from KNOWN")
}

/// What nobtf knows of what it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts(std::collections::BTreeMap<Truth, String>);

impl Facts {
    pub fn set(&mut self, truth: Truth, value: impl ToString) {
        self.0.insert(truth, value.to_string());
    }

    pub fn value(&self, truth: Truth) -> Option<&str> {
        self.0.get(&truth).map(String::as_str)
    }

    fn get(&self, truth: Truth) -> Result<&str, LiveCheckError> {
        self.0
            .get(&truth)
            .map(String::as_str)
            .ok_or_else(|| LiveCheckError::Own {
                what: format!("{truth:?}"),
                err: "not known".into(),
            })
    }

    /// This process's own: ids, name, uid (std and /proc/self), and its
    /// memory layout from `/proc/self/stat`.
    pub fn own() -> Result<Facts, LiveCheckError> {
        let read = |path: &str| {
            std::fs::read_to_string(path).map_err(|err| LiveCheckError::Own {
                what: path.to_string(),
                err: err.to_string(),
            })
        };
        let status = read("/proc/self/status")?;
        let uid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| LiveCheckError::Own {
                what: "/proc/self/status".into(),
                err: "no Uid: line".into(),
            })?;
        let mut facts = Facts::default();
        let pid = std::process::id();
        facts.set(Truth::Tid, pid);
        facts.set(Truth::Tgid, pid);
        facts.set(Truth::ParentTgid, std::os::unix::process::parent_id());
        facts.set(Truth::Uid, uid);
        facts.set(Truth::Comm, read("/proc/self/comm")?.trim_end_matches('\n'));
        // After the name in parentheses (which may hold spaces), field 3 on.
        let stat = read("/proc/self/stat")?;
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, r)| r.split_whitespace().collect());
        let field = |n: usize| rest.get(n - 3).copied();
        for (truth, n) in [
            (Truth::StartStack, 28),
            (Truth::ArgStart, 48),
            (Truth::ArgEnd, 49),
            (Truth::EnvStart, 50),
            (Truth::EnvEnd, 51),
        ] {
            if let Some(v) = field(n) {
                facts.set(truth, v);
            }
        }
        Ok(facts)
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
        "the live check did not fire: no record from kprobe:{function} for {action} within 5 s; pass a profile made for this build, or see `nobtf check --function {function}`"
    )]
    NoRecord {
        function: &'static str,
        action: &'static str,
    },
    #[error(
        "offsets profile {profile} was made for another build of this release, and {} cannot be checked on the live kernel: generate one for this build with `offsets gen` (docs/offsets.md)", .fields.join(", ")
    )]
    OtherBuildUnchecked {
        profile: String,
        fields: Vec<String>,
    },
    #[error("{what}: {err}")]
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
        let mut f = Facts::default();
        f.set(Truth::Tid, 42);
        f.set(Truth::ParentTgid, 7);
        f.set(Truth::Comm, "no|btf");
        f
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
        assert_eq!(checks.triggers(), [Trigger::Comm]);
        assert_eq!(
            checks.program(Trigger::Comm, 42),
            "kprobe:__set_task_comm /tid == 42/ { $v = (struct task_struct *)arg0; printf(\"%lld\u{1f}%lld\u{1f}%s\\n\", $v->pid, $v->real_parent->tgid, $v->comm); exit(); }"
        );
        // Without the field its check reads through, it is not checked.
        let p = profile(&TASK[..1]);
        let checks = plan(&used(&["task_struct.real_parent"]), &p);
        assert!(checks.checked.is_empty());
        assert_eq!(checks.unchecked, ["task_struct.real_parent"]);
    }

    #[test]
    fn each_trigger_has_its_probe() {
        let p = profile(&[
            ("file.f_path", 16),
            ("file.f_path.dentry", 24),
            ("dentry.d_name", 32),
            ("dentry.d_name.name", 40),
            ("sock.__sk_common", 0),
            ("sock.__sk_common.skc_num", 14),
        ]);
        let checks = plan(
            &used(&[
                "dentry.d_name.name",
                "sock.__sk_common.skc_num",
                "filename.name",
            ]),
            &p,
        );
        assert_eq!(
            checks.triggers(),
            [Trigger::Read, Trigger::Send, Trigger::Unlink]
        );
        assert!(
            checks
                .program(Trigger::Read, 9)
                .starts_with("kprobe:vfs_read /tid == 9 && arg2 == 4093/ { $v = (struct file *)arg0; printf(\"%s\\n\", str($v->f_path.dentry->d_name.name));")
        );
        assert!(checks.program(Trigger::Send, 9).starts_with(
            "kprobe:tcp_sendmsg /tid == 9 && arg2 == 13/ { $v = (struct sock *)arg0;"
        ));
        // do_unlinkat(int dfd, struct filename *name): the second argument.
        assert!(
            checks
                .program(Trigger::Unlink, 9)
                .starts_with("kprobe:do_unlinkat /tid == 9/ { $v = (struct filename *)arg1;")
        );
        // 4.14's do_unlinkat takes a user path: no struct filename to check.
        let mut old = p.clone();
        old.functions
            .get_mut(profile::DO_UNLINKAT)
            .unwrap()
            .name_arg_type = profile::NameArgType::UserPath;
        assert_eq!(
            plan(&used(&["filename.name"]), &old).unchecked,
            ["filename.name"]
        );
    }

    #[test]
    fn the_truth_passes_and_a_wrong_field_is_named() {
        let p = profile(TASK);
        let checks = plan(&used(&["task_struct.pid", "task_struct.comm"]), &p);
        let judge = |record: &str| checks.judge(Trigger::Comm, record, &facts(), &p, "p.toml");
        assert_eq!(
            judge("42\u{1f}no|btf\n").unwrap(),
            [
                "task_struct.pid (offset 904) = 42",
                "task_struct.comm (offset 1392) = no|btf"
            ]
        );
        let err = judge("42\u{1f}\u{1}\n").unwrap_err().to_string();
        assert!(
            err.starts_with("the offsets profile (p.toml) does not fit this kernel: task_struct.comm (offset 1392) read \"\\u{1}\" as nobtf's task->comm, expected \"no|btf\";"),
            "{err}"
        );
        let err = judge("0\u{1f}no|btf").unwrap_err();
        assert!(
            err.to_string()
                .contains("task_struct.pid (offset 904) read \"0\"")
        );
        assert_eq!(judge("42").unwrap_err(), LiveCheckError::Short("42".into()));
    }
}
