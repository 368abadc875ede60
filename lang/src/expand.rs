//! Wildcard attach points (`kprobe:vfs_*`, `tracepoint:syscalls:sys_enter_exec*`)
//! expanded into one attach point per match, before the checker runs: each
//! match has its own `probe` and `func`, and a tracepoint its own format.
//! What the kernel can probe comes from the loader, through
//! [`TracepointSource::matching`].

use std::collections::HashSet;

use crate::ast::Attach;
use crate::diag::Error;
use crate::glob;
use crate::providers::{AttachPoint, Context, resolve};
use crate::syscalls;
use crate::tracepoint::TracepointSource;
use kernel_headers::pt_regs::Abi;

/// bpftrace 0.23's default `max_probes`: more attach points than this are
/// refused (each match is its own program here, as on kernels without
/// multi-kprobes).
pub const MAX_PROBES: usize = 1024;

/// The attach points `attach` stands for: itself when it has no wildcard,
/// else every probe of the kernel it matches, in the list's order.
///
/// A syscall tracepoint the kernel lacks is lowered to a kprobe where it
/// can be ([`crate::syscalls`], for `abi`'s architecture); a wildcard
/// over syscall tracepoints takes the lowered ones too.
pub fn points(
    attach: &Attach,
    kernel: &dyn TracepointSource,
    abi: &Abi,
) -> Result<Vec<(AttachPoint, Context)>, Error> {
    let matches = matching(attach, kernel, abi)?;
    if matches.is_empty() {
        return Err(no_match(attach));
    }
    Ok(matches)
}

/// The attach points of a probe's list, each wildcard expanded, with the
/// attach point each came from. A wildcard that matches nothing is left
/// out, as bpftrace 0.23 leaves it (`kprobe:lookup_fast,
/// kprobe:lookup_fast.constprop.*` attaches the first), unless nothing of
/// the list is left.
pub fn list_points<'a>(
    attaches: &'a [Attach],
    kernel: &dyn TracepointSource,
    abi: &Abi,
) -> Result<Vec<(&'a Attach, AttachPoint, Context)>, Error> {
    let mut out = Vec::new();
    for attach in attaches {
        for (point, context) in matching(attach, kernel, abi)? {
            out.push((attach, point, context));
        }
    }
    match (out.is_empty(), attaches.first()) {
        (true, Some(first)) => Err(no_match(first)),
        _ => Ok(out),
    }
}

fn no_match(attach: &Attach) -> Error {
    let written = attach.parts.join(":");
    Error::at(
        attach.span,
        format!("`{written}`: the wildcard matches no probe of this kernel"),
    )
}

/// [`points`], empty when a wildcard matches nothing.
fn matching(
    attach: &Attach,
    kernel: &dyn TracepointSource,
    abi: &Abi,
) -> Result<Vec<(AttachPoint, Context)>, Error> {
    let (point, context) = resolve(attach)?;
    let point = with_binary(point, attach, kernel)?;
    let Some(pattern) = pattern(&point) else {
        let point = match &point {
            AttachPoint::Tracepoint { category, name } if category == syscalls::CATEGORY => {
                syscalls::lower(name, abi, kernel).unwrap_or(point)
            }
            _ => point,
        };
        return Ok(vec![(point, context)]);
    };
    let written = attach.parts.join(":");
    let lowered = match point {
        AttachPoint::Tracepoint { .. } => syscalls::lower_matching(&pattern, abi, kernel),
        _ => Vec::new(),
    };
    let names = match kernel.matching(&pattern) {
        Some(names) => names,
        None if !lowered.is_empty() => Vec::new(),
        None => {
            return Err(Error::at(
                attach.span,
                format!(
                    "`{written}`: a wildcard needs the kernel's list of probes (tracefs available_filter_functions or /proc/kallsyms for functions, available_events for tracepoints), which could not be read"
                ),
            ));
        }
    };
    let mut matches: Vec<(AttachPoint, Context)> = names
        .iter()
        .filter_map(|name| concrete(&point, name))
        .map(|p| (p, context))
        .collect();
    if !lowered.is_empty() {
        // In the order the real tracepoints would be listed.
        matches.extend(lowered.into_iter().map(|p| (p, context)));
        matches.sort_unstable_by_key(|(p, _)| p.to_string());
    }
    Ok(matches)
}

/// A uprobe's point with its binary found (`libc` to libc's path), as
/// bpftrace's `probe` shows it; other points as they are.
fn with_binary(
    point: AttachPoint,
    attach: &Attach,
    kernel: &dyn TracepointSource,
) -> Result<AttachPoint, Error> {
    let found = |binary: &str| {
        kernel.uprobe_binary(binary).ok_or_else(|| {
            Error::at(
                attach.span,
                format!("uprobe target file '{binary}' does not exist or is not executable"),
            )
        })
    };
    Ok(match point {
        AttachPoint::Uprobe { binary, func } => AttachPoint::Uprobe {
            binary: found(&binary)?,
            func,
        },
        AttachPoint::Uretprobe { binary, func } => AttachPoint::Uretprobe {
            binary: found(&binary)?,
            func,
        },
        other => other,
    })
}

/// The listing pattern for a wildcard point (`kprobe:vfs_*`; a kretprobe
/// matches the functions a kprobe may take), or `None` without a wildcard.
fn pattern(point: &AttachPoint) -> Option<String> {
    let text = match point {
        AttachPoint::Kprobe(f) | AttachPoint::Kretprobe(f) => format!("kprobe:{f}"),
        AttachPoint::Tracepoint { category, name } => format!("tracepoint:{category}:{name}"),
        // A uprobe's symbols are listed as the uprobe's (`uprobe:PATH:SYM`).
        AttachPoint::Uprobe { binary, func } | AttachPoint::Uretprobe { binary, func } => {
            return glob::has_wildcard(func).then(|| format!("uprobe:{binary}:{func}"));
        }
        _ => return None,
    };
    glob::has_wildcard(&text).then_some(text)
}

/// A listed name (`kprobe:vfs_read`, `tracepoint:sched:sched_switch`) as
/// an attach point of `like`'s kind; names of another kind are not matches.
fn concrete(like: &AttachPoint, listed: &str) -> Option<AttachPoint> {
    let (kind, name) = listed.split_once(':')?;
    match (like, kind) {
        (AttachPoint::Kprobe(_), "kprobe") => Some(AttachPoint::Kprobe(name.into())),
        (AttachPoint::Kretprobe(_), "kprobe") => Some(AttachPoint::Kretprobe(name.into())),
        (AttachPoint::Uprobe { .. } | AttachPoint::Uretprobe { .. }, "uprobe") => {
            let (binary, func) = name.rsplit_once(':')?;
            let (binary, func) = (binary.to_string(), func.to_string());
            Some(match like {
                AttachPoint::Uprobe { .. } => AttachPoint::Uprobe { binary, func },
                _ => AttachPoint::Uretprobe { binary, func },
            })
        }
        (AttachPoint::Tracepoint { .. }, "tracepoint") => {
            let (category, name) = name.split_once(':')?;
            Some(AttachPoint::Tracepoint {
                category: category.into(),
                name: name.into(),
            })
        }
        _ => None,
    }
}

/// What bpftrace 0.23 counts in `Attaching N probes...`: one per attach
/// point (BEGIN and END included), a wildcard once per match. (bpftrace
/// counts a k(ret)probe wildcard once where the kernel takes multi-kprobes
/// and the probe does not read `probe`; its debian-6.1 run counts each
/// match, as nobtf, which loads one program per match everywhere.) 0 for a
/// program that does not parse.
pub fn bpftrace_probe_count(source: &str, kernel: &dyn TracepointSource, abi: &Abi) -> u64 {
    let Ok(program) = crate::parse(source) else {
        return 0;
    };
    program
        .probes
        .iter()
        .map(|probe| {
            list_points(&probe.attach, kernel, abi).map_or(1, |points| points.len() as u64)
        })
        .sum()
}

/// A probe's points ([`list_points`]) with its kernel functions' entries
/// made one [`AttachPoint::KprobeMulti`], and their returns another, where
/// there are several of a kind: one program for all, in the place of the
/// first. Other points (tracepoints, syscalls lowered to kprobes, a lone
/// function) stay as they are.
pub fn group_multi<'a>(
    points: Vec<(&'a Attach, AttachPoint, Context)>,
) -> Vec<(&'a Attach, AttachPoint, Context)> {
    let kind = |point: &AttachPoint| match point {
        AttachPoint::Kprobe(_) => Some(false),
        AttachPoint::Kretprobe(_) => Some(true),
        _ => None,
    };
    let several = |ret: bool| {
        points
            .iter()
            .filter(|(_, p, _)| kind(p) == Some(ret))
            .count()
            > 1
    };
    let (entries, returns) = (several(false), several(true));
    if !entries && !returns {
        return points;
    }
    let mut out: Vec<(&'a Attach, AttachPoint, Context)> = Vec::new();
    // Each group's place in `out`, kind and functions. A function a probe
    // names twice goes to a second group: one link refuses a function
    // twice, and one kprobe per function runs the body twice.
    let mut groups: Vec<(usize, bool, HashSet<String>)> = Vec::new();
    for (attach, point, context) in points {
        let ret = match kind(&point) {
            Some(ret) if (ret && returns) || (!ret && entries) => ret,
            _ => {
                out.push((attach, point, context));
                continue;
            }
        };
        let function = point.func();
        let written_here = attach.parts.join(":");
        let group = groups
            .iter_mut()
            .find(|(_, r, members)| *r == ret && !members.contains(&function));
        match group {
            Some((at, _, members)) => {
                members.insert(function.clone());
                if let AttachPoint::KprobeMulti {
                    written, functions, ..
                } = &mut out[*at].1
                {
                    if !written.split(',').any(|w| w == written_here) {
                        written.push(',');
                        written.push_str(&written_here);
                    }
                    functions.push(function);
                }
            }
            None => {
                groups.push((out.len(), ret, HashSet::from([function.clone()])));
                out.push((
                    attach,
                    AttachPoint::KprobeMulti {
                        written: written_here,
                        functions: vec![function],
                        ret,
                    },
                    context,
                ));
            }
        }
    }
    out
}

/// Whether an attach point as written has a wildcard.
pub fn is_wildcard(attach: &Attach) -> bool {
    attach.parts.iter().any(|p| glob::has_wildcard(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;
    use crate::tracepoint::TracepointFormat;

    /// A kernel listing a few functions and tracepoints, matched with
    /// [`glob::matches`] as the loader's list does.
    struct Listed(Option<&'static [&'static str]>);

    impl TracepointSource for Listed {
        /// Every listed tracepoint, without arguments.
        fn format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
            Some(TracepointFormat {
                id: Some(1),
                fields: Vec::new(),
            })
        }
        fn matching(&self, pattern: &str) -> Option<Vec<String>> {
            let names = self.0?;
            Some(
                names
                    .iter()
                    .filter(|n| glob::matches(pattern, n))
                    .map(|n| n.to_string())
                    .collect(),
            )
        }
        /// `libc` is a library's name; `libnone` names nothing.
        fn uprobe_binary(&self, binary: &str) -> Option<String> {
            match binary {
                "libc" => Some("/lib/libc.so.6".into()),
                "libnone" => None,
                _ => Some(binary.into()),
            }
        }
    }

    const KERNEL: Listed = Listed(Some(&[
        "kprobe:vfs_read",
        "kprobe:vfs_readv",
        "kprobe:vfs_write",
        "tracepoint:syscalls:sys_enter_execve",
        "tracepoint:syscalls:sys_enter_execveat",
        "tracepoint:syscalls:sys_exit_execve",
        "uprobe:/bin/bash:readline",
        "uprobe:/bin/bash:readline_internal",
        "uprobe:/lib/libc.so.6:getaddrinfo",
    ]));

    fn attach(text: &str) -> Attach {
        Attach {
            parts: text.split(':').map(String::from).collect(),
            span: Span::default(),
        }
    }

    fn expanded(text: &str, kernel: &Listed) -> Result<Vec<String>, String> {
        points(&attach(text), kernel, kernel_headers::pt_regs::NATIVE)
            .map(|ps| ps.into_iter().map(|(p, _)| p.to_string()).collect())
            .map_err(|e| e.message)
    }

    /// The `func` of each point `text` expands to.
    fn funcs(text: &str) -> Vec<String> {
        points(&attach(text), &KERNEL, kernel_headers::pt_regs::NATIVE)
            .unwrap()
            .iter()
            .map(|(p, _)| p.func())
            .collect()
    }

    #[test]
    fn each_match_is_its_own_point() {
        assert_eq!(
            expanded("kprobe:vfs_rea*", &KERNEL).unwrap(),
            ["kprobe:vfs_read", "kprobe:vfs_readv"]
        );
        assert_eq!(
            expanded("kr:vfs_*e", &KERNEL).unwrap(),
            ["kretprobe:vfs_write"]
        );
        assert_eq!(
            expanded("tracepoint:syscalls:sys_enter_exec*", &KERNEL).unwrap(),
            [
                "tracepoint:syscalls:sys_enter_execve",
                "tracepoint:syscalls:sys_enter_execveat"
            ]
        );
        // Each has its own `func`.
        assert_eq!(
            funcs("kprobe:vfs_*"),
            ["vfs_read", "vfs_readv", "vfs_write"]
        );
    }

    /// dcsnoop's `kprobe:lookup_fast, kprobe:lookup_fast.constprop.*`:
    /// a wildcard of a list that matches nothing is left out, as bpftrace
    /// 0.23 leaves it; a list of nothing but such wildcards is an error.
    #[test]
    fn a_list_leaves_out_wildcards_that_match_nothing() {
        let list = [
            attach("kprobe:vfs_read"),
            attach("kprobe:nosuch_*"),
            attach("kprobe:vfs_w*"),
        ];
        let points: Vec<String> = list_points(&list, &KERNEL, kernel_headers::pt_regs::NATIVE)
            .unwrap()
            .iter()
            .map(|(_, p, _)| p.to_string())
            .collect();
        assert_eq!(points, ["kprobe:vfs_read", "kprobe:vfs_write"]);
        let none = [attach("kprobe:nosuch_*"), attach("kprobe:other_*")];
        let err = list_points(&none, &KERNEL, kernel_headers::pt_regs::NATIVE)
            .unwrap_err()
            .message;
        assert!(
            err.contains("`kprobe:nosuch_*`: the wildcard matches no probe"),
            "{err}"
        );
    }

    #[test]
    fn uprobes_name_the_file_their_library_is() {
        assert_eq!(
            expanded("uprobe:libc:getaddrinfo", &KERNEL).unwrap(),
            ["uprobe:/lib/libc.so.6:getaddrinfo"]
        );
        assert_eq!(
            expanded("ur:/bin/bash:readline*", &KERNEL).unwrap(),
            [
                "uretprobe:/bin/bash:readline",
                "uretprobe:/bin/bash:readline_internal"
            ]
        );
        assert_eq!(
            funcs("uprobe:/bin/bash:read*"),
            ["readline", "readline_internal"]
        );
        assert_eq!(
            expanded("uretprobe:libnone:readline", &KERNEL).unwrap_err(),
            "uprobe target file 'libnone' does not exist or is not executable"
        );
        let err = expanded("usdt:/bin/bash:probe", &KERNEL).unwrap_err();
        assert!(err.starts_with("`usdt` probes are not supported"), "{err}");
    }

    #[test]
    fn names_without_wildcards_are_not_looked_up() {
        let nothing = Listed(None);
        assert_eq!(
            expanded("kprobe:not_listed", &nothing).unwrap(),
            ["kprobe:not_listed"]
        );
    }

    #[test]
    fn no_match_or_no_list_is_an_error() {
        let err = expanded("kprobe:nosuch_*", &KERNEL).unwrap_err();
        assert!(err.contains("matches no probe"), "{err}");
        let err = expanded("kprobe:vfs_*", &Listed(None)).unwrap_err();
        assert!(err.contains("could not be read"), "{err}");
        // Only k(ret)probes and tracepoints take wildcards.
        assert!(expanded("interval:s:*", &KERNEL).is_err());
    }

    #[test]
    fn attached_probes_are_counted_as_bpftrace_counts_them() {
        let count =
            |source: &str| bpftrace_probe_count(source, &KERNEL, kernel_headers::pt_regs::NATIVE);
        assert_eq!(
            count("BEGIN { } kprobe:vfs_rea* { @[func] = count(); } END { }"),
            4
        );
        assert_eq!(
            count("kprobe:vfs_rea*,kprobe:vfs_write { @[probe] = count(); }"),
            3
        );
        assert_eq!(count("tracepoint:syscalls:sys_enter_exec* { }"), 2);
        assert_eq!(count("kprobe:a {"), 0);
    }

    #[test]
    fn the_checker_sees_each_match() {
        use crate::fields::{FieldSource, Lookup};
        use crate::kernel::Kernel;
        struct NoFields;
        impl FieldSource for NoFields {
            fn lookup(&self, _: &str, _: &str) -> Lookup {
                Lookup::Unknown
            }
        }
        let target = crate::Target {
            fields: &NoFields,
            tracepoints: &KERNEL,
            kernel: Kernel::for_release(
                kernel_headers::KernelVersion::new(4, 14, 0),
                kernel_headers::pt_regs::NATIVE,
            ),
        };
        let attached = |source: &str| -> Vec<String> {
            let compiled = crate::compile(source, &target).unwrap_or_else(|e| panic!("{e:?}"));
            compiled
                .probes
                .iter()
                .map(|p| p.attach.to_string())
                .collect()
        };
        assert_eq!(
            attached("kprobe:vfs_rea* { @[probe] = count(); }"),
            ["kprobe:vfs_read", "kprobe:vfs_readv"]
        );
        assert_eq!(
            attached("kprobe:vfs_write,tracepoint:*execve { @[func] = count(); }"),
            [
                "kprobe:vfs_write",
                "tracepoint:syscalls:sys_enter_execve",
                "tracepoint:syscalls:sys_exit_execve"
            ]
        );
    }
}
