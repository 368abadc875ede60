//! Wildcard attach points (`kprobe:vfs_*`, `tracepoint:syscalls:sys_enter_exec*`)
//! expanded into one attach point per match, before the checker runs: each
//! match has its own `probe` and `func`, and a tracepoint its own format.
//! What the kernel can probe comes from the loader, through
//! [`TracepointSource::matching`].

use crate::ast::Attach;
use crate::diag::Error;
use crate::glob;
use crate::providers::{AttachPoint, Context, resolve};
use crate::tracepoint::TracepointSource;

/// bpftrace 0.23's default `max_probes`: more attach points than this are
/// refused (each match is its own program here, as on kernels without
/// multi-kprobes).
pub const MAX_PROBES: usize = 1024;

/// The attach points `attach` stands for: itself when it has no wildcard,
/// else every probe of the kernel it matches, in the list's order.
pub fn points(
    attach: &Attach,
    kernel: &dyn TracepointSource,
) -> Result<Vec<(AttachPoint, Context)>, Error> {
    let (point, context) = resolve(attach)?;
    let Some(pattern) = pattern(&point) else {
        return Ok(vec![(point, context)]);
    };
    let written = attach.parts.join(":");
    let names = kernel.matching(&pattern).ok_or_else(|| {
        Error::at(
            attach.span,
            format!(
                "`{written}`: a wildcard needs the kernel's list of probes (tracefs available_filter_functions or /proc/kallsyms for functions, available_events for tracepoints), which could not be read"
            ),
        )
    })?;
    let matches: Vec<(AttachPoint, Context)> = names
        .iter()
        .filter_map(|name| concrete(&point, name))
        .map(|p| (p, context))
        .collect();
    if matches.is_empty() {
        return Err(Error::at(
            attach.span,
            format!("`{written}`: the wildcard matches no probe of this kernel"),
        ));
    }
    Ok(matches)
}

/// The listing pattern for a wildcard point (`kprobe:vfs_*`; a kretprobe
/// matches the functions a kprobe may take), or `None` without a wildcard.
fn pattern(point: &AttachPoint) -> Option<String> {
    let text = match point {
        AttachPoint::Kprobe(f) | AttachPoint::Kretprobe(f) => format!("kprobe:{f}"),
        AttachPoint::Tracepoint { category, name } => format!("tracepoint:{category}:{name}"),
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
pub fn bpftrace_probe_count(source: &str, kernel: &dyn TracepointSource) -> u64 {
    let Ok(program) = crate::parse(source) else {
        return 0;
    };
    program
        .probes
        .iter()
        .flat_map(|probe| &probe.attach)
        .map(|attach| points(attach, kernel).map_or(1, |points| points.len() as u64))
        .sum()
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
    }

    const KERNEL: Listed = Listed(Some(&[
        "kprobe:vfs_read",
        "kprobe:vfs_readv",
        "kprobe:vfs_write",
        "tracepoint:syscalls:sys_enter_execve",
        "tracepoint:syscalls:sys_enter_execveat",
        "tracepoint:syscalls:sys_exit_execve",
    ]));

    fn attach(text: &str) -> Attach {
        Attach {
            parts: text.split(':').map(String::from).collect(),
            span: Span::default(),
        }
    }

    fn expanded(text: &str, kernel: &Listed) -> Result<Vec<String>, String> {
        points(&attach(text), kernel)
            .map(|ps| ps.into_iter().map(|(p, _)| p.to_string()).collect())
            .map_err(|e| e.message)
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
        let funcs: Vec<String> = points(&attach("kprobe:vfs_*"), &KERNEL)
            .unwrap()
            .iter()
            .map(|(p, _)| p.func())
            .collect();
        assert_eq!(funcs, ["vfs_read", "vfs_readv", "vfs_write"]);
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
        let count = |source: &str| bpftrace_probe_count(source, &KERNEL);
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
