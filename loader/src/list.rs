//! `nobtf trace -l [PATTERN]`: the probes this kernel offers, as bpftrace
//! lists them (`kprobe:FUNC`, `tracepoint:CAT:NAME`; with `-v` each
//! tracepoint's arguments), sorted within each type.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;

use lang::glob;

/// What the listing reads, as text: each `None` when the kernel does not
/// offer it (no tracefs, no ftrace).
#[derive(Debug, Default)]
pub struct Sources {
    /// tracefs `available_filter_functions`: `FUNC [MODULE]` a line.
    pub filter_functions: Option<String>,
    /// `/proc/kallsyms`, when the line above is missing.
    pub kallsyms: Option<String>,
    /// tracefs `available_events`: `CAT:NAME` a line.
    pub events: Option<String>,
    /// debugfs `kprobes/blacklist`: `START-END\tFUNC` a line, functions
    /// the kernel refuses to kprobe.
    pub blacklist: Option<String>,
}

impl Sources {
    /// Reads what this kernel has; missing files are left out.
    pub fn read(tracefs: Option<&Path>) -> Sources {
        let file = |name: &str| tracefs.and_then(|t| std::fs::read_to_string(t.join(name)).ok());
        let filter_functions = file("available_filter_functions");
        Sources {
            kallsyms: match filter_functions {
                Some(_) => None,
                None => std::fs::read_to_string("/proc/kallsyms").ok(),
            },
            filter_functions,
            events: file("available_events"),
            blacklist: std::fs::read_to_string(KPROBES_BLACKLIST).ok(),
        }
    }

    /// Whether the list `pattern` (`kprobe:...`, `tracepoint:...`) would
    /// search could be read.
    pub fn can_list(&self, pattern: &str) -> bool {
        match Pattern::parse(pattern).kind {
            Some(kind) if glob::matches(kind, TRACEPOINT.0) || TRACEPOINT.1.contains(&kind) => {
                self.events.is_some()
            }
            _ => self.filter_functions.is_some() || self.kallsyms.is_some(),
        }
    }
}

const KPROBES_BLACKLIST: &str = "/sys/kernel/debug/kprobes/blacklist";

/// Probe types as `-l` names them, with the spellings bpftrace also takes.
/// Return probes are listed only when asked for by name, as bpftrace.
const KPROBE: (&str, &[&str]) = ("kprobe", &["k"]);
const KRETPROBE: (&str, &[&str]) = ("kretprobe", &["kr"]);
const TRACEPOINT: (&str, &[&str]) = ("tracepoint", &["t"]);

/// A listing pattern: `TYPE:NAME` (each part may hold `*`), or a bare NAME
/// matched in every type.
struct Pattern<'a> {
    kind: Option<&'a str>,
    name: &'a str,
}

impl<'a> Pattern<'a> {
    fn parse(text: &'a str) -> Pattern<'a> {
        match text.split_once(':') {
            Some((kind, name)) => Pattern {
                kind: Some(kind),
                name,
            },
            None => Pattern {
                kind: None,
                name: text,
            },
        }
    }

    fn takes(&self, (kind, aliases): (&str, &[&str])) -> bool {
        match self.kind {
            None => kind != KRETPROBE.0,
            Some(k) if kind == KRETPROBE.0 => k == kind || aliases.contains(&k),
            Some(k) => glob::matches(k, kind) || aliases.contains(&k),
        }
    }
}

/// Every probe matching `pattern` (all when `None`), one `TYPE:NAME` a line.
pub fn probes(sources: &Sources, pattern: Option<&str>) -> Vec<String> {
    let pattern = Pattern::parse(pattern.unwrap_or("*:*"));
    // `*` alone as a name part means everything (`-l 'kprobe:'` too).
    let name = if pattern.name.is_empty() {
        "*"
    } else {
        pattern.name
    };
    let mut out = Vec::new();
    for kind in [KPROBE, KRETPROBE] {
        if pattern.takes(kind) {
            out.extend(
                functions_matching(sources, name)
                    .into_iter()
                    .map(|f| format!("{}:{f}", kind.0)),
            );
        }
    }
    if pattern.takes(TRACEPOINT) {
        // `tracepoint:*open*`: a wildcard name in every category, as bpftrace.
        let name = match name.contains(':') {
            false if pattern.kind.is_some() && glob::has_wildcard(name) => format!("*:{name}"),
            _ => name.to_string(),
        };
        let events: BTreeSet<&str> = sources
            .events
            .iter()
            .flat_map(|e| e.lines())
            .map(str::trim)
            .filter(|e| e.contains(':'))
            .collect();
        out.extend(
            events
                .into_iter()
                .filter(|e| glob::matches(&name, e))
                .map(|e| format!("{}:{e}", TRACEPOINT.0)),
        );
    }
    out
}

/// The functions a kprobe may take, sorted, as bpftrace 0.23 finds them:
/// ftrace's list (else kallsyms' text symbols), without the kprobe
/// blacklist, the functions known to hang the kernel when traced, and the
/// `.part.N` pieces of split functions.
pub fn functions(sources: &Sources) -> BTreeSet<&str> {
    functions_matching(sources, "*")
}

/// [`functions`] whose name `pattern` matches: the pattern is tried
/// first, so a narrow one (`vfs_*`) sorts a few names, not the tens of
/// thousands ftrace lists (each wildcard is expanded several times while
/// compiling; under emulation that sorting was most of `kprobe:vfs_*`'s
/// 2.3 s of compiling).
fn functions_matching<'s>(sources: &'s Sources, pattern: &str) -> BTreeSet<&'s str> {
    let blacklisted: BTreeSet<&str> = sources
        .blacklist
        .iter()
        .flat_map(|b| b.lines())
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let listed: Box<dyn Iterator<Item = &str>> =
        match (&sources.filter_functions, &sources.kallsyms) {
            (Some(filter), _) => Box::new(filter.lines().filter_map(filter_function)),
            (None, Some(kallsyms)) => Box::new(kallsyms.lines().filter_map(text_symbol)),
            (None, None) => Box::new(std::iter::empty()),
        };
    listed
        .filter(|f| pattern == "*" || glob::matches(pattern, f))
        .filter(|f| !blacklisted.contains(f) && !hangs_when_traced(f) && !f.contains(".part."))
        .collect()
}

/// bpftrace's list of functions left out of wildcards and listings (from
/// the kernel's kprobe_multi selftest): tracing them can hang the machine.
fn hangs_when_traced(func: &str) -> bool {
    matches!(
        func,
        "arch_cpu_idle" | "default_idle" | "bpf_dispatcher_xdp_func"
    ) || func.starts_with("rcu_")
        || func.starts_with("__ftrace_invalid_address__")
}

/// The function of an `available_filter_functions` line (`vfs_read`,
/// `ext4_file_open [ext4]`); none for the placeholders of functions ftrace
/// could not place.
pub(crate) fn filter_function(line: &str) -> Option<&str> {
    let func = line.split_whitespace().next()?;
    (!func.starts_with("__ftrace_invalid_address__")).then_some(func)
}

/// The function of a kallsyms text symbol line (`ADDR t NAME [MODULE]`).
pub(crate) fn text_symbol(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let (_, kind, name) = (words.next()?, words.next()?, words.next()?);
    matches!(kind, "t" | "T").then_some(name)
}

/// Prints the probes matching `pattern` (all when `None`) to `out`, one a
/// line; with `verbose`, each tracepoint's arguments under it, indented
/// four spaces, as bpftrace's `-lv`.
pub fn print(pattern: Option<&str>, verbose: bool, out: &mut dyn Write) -> io::Result<()> {
    let tracefs = crate::features::tracefs().ok();
    let sources = Sources::read(tracefs.as_deref());
    for probe in probes(&sources, pattern) {
        writeln!(out, "{probe}")?;
        let event = probe.strip_prefix("tracepoint:").filter(|_| verbose);
        if let (Some(event), Some(tracefs)) = (event, &tracefs) {
            let format = event
                .split_once(':')
                .and_then(|(cat, name)| {
                    std::fs::read_to_string(
                        tracefs.join("events").join(cat).join(name).join("format"),
                    )
                    .ok()
                })
                .unwrap_or_default();
            for arg in tracepoint_args(&format) {
                writeln!(out, "    {arg}")?;
            }
        }
    }
    out.flush()
}

/// A tracepoint's own arguments from its `format` file, as bpftrace's
/// `-lv` shows them (`int __syscall_nr`, `const char * filename`): the
/// fields after the common ones.
pub fn tracepoint_args(format: &str) -> Vec<String> {
    let mut lines = format.lines();
    // The common fields end at the first empty line.
    lines.by_ref().find(|l| l.is_empty());
    lines
        .filter_map(|l| l.strip_prefix("\tfield:"))
        .map(|f| f.split(';').next().unwrap_or(f).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Sources {
        Sources {
            filter_functions: Some(
                "vfs_write\nvfs_read\n__ftrace_invalid_address___64\next4_file_open [ext4]\nvfs_read\n".into(),
            ),
            kallsyms: None,
            events: Some("syscalls:sys_enter_openat\nsched:sched_switch\nsyscalls:sys_exit_openat\n".into()),
            blacklist: None,
        }
    }

    #[test]
    fn left_out_as_bpftrace_leaves_them_out() {
        let s = Sources {
            filter_functions: Some(
                "vfs_read\nrcu_note_context_switch\ndefault_idle\nvfs_rename.part.0\nvfs_readv\n"
                    .into(),
            ),
            kallsyms: None,
            events: None,
            blacklist: Some("0xffffffff81000000-0xffffffff81000010\tvfs_readv\n".into()),
        };
        assert_eq!(probes(&s, None), ["kprobe:vfs_read"]);
        assert!(probes(&s, Some("*:rcu_*")).is_empty());
    }

    #[test]
    fn return_probes_only_when_named() {
        let s = sources();
        assert_eq!(
            probes(&s, Some("kretprobe:vfs_w*")),
            ["kretprobe:vfs_write"]
        );
        assert_eq!(probes(&s, Some("kr:vfs_w*")), ["kretprobe:vfs_write"]);
        assert_eq!(probes(&s, Some("*:vfs_w*")), ["kprobe:vfs_write"]);
        // A tracepoint name alone is looked for in every category.
        assert_eq!(
            probes(&s, Some("tracepoint:*enter_open*")),
            ["tracepoint:syscalls:sys_enter_openat"]
        );
        assert!(s.can_list("tracepoint:*") && s.can_list("kprobe:*"));
        let no_events = Sources {
            events: None,
            ..sources()
        };
        assert!(!no_events.can_list("tracepoint:syscalls:*"));
    }

    #[test]
    fn lists_as_bpftrace_sorted_within_each_type() {
        let s = sources();
        assert_eq!(
            probes(&s, None),
            [
                "kprobe:ext4_file_open",
                "kprobe:vfs_read",
                "kprobe:vfs_write",
                "tracepoint:sched:sched_switch",
                "tracepoint:syscalls:sys_enter_openat",
                "tracepoint:syscalls:sys_exit_openat",
            ]
        );
        assert_eq!(
            probes(&s, Some("kprobe:vfs_*")),
            ["kprobe:vfs_read", "kprobe:vfs_write"]
        );
        assert_eq!(
            probes(&s, Some("*open*")),
            [
                "kprobe:ext4_file_open",
                "tracepoint:syscalls:sys_enter_openat",
                "tracepoint:syscalls:sys_exit_openat"
            ]
        );
        assert_eq!(
            probes(&s, Some("t:syscalls:sys_enter_*")),
            ["tracepoint:syscalls:sys_enter_openat"]
        );
        assert!(probes(&s, Some("uprobe:*")).is_empty());
    }

    #[test]
    fn kallsyms_text_symbols_without_ftrace() {
        let s = Sources {
            filter_functions: None,
            kallsyms: Some("ffffffff81300000 T do_unlinkat\nffffffff81300100 d some_data\nffffffff81300200 t vfs_read\n".into()),
            events: None,
            blacklist: None,
        };
        assert_eq!(probes(&s, None), ["kprobe:do_unlinkat", "kprobe:vfs_read"]);
    }

    #[test]
    fn tracepoint_args_skip_the_common_fields() {
        let format = "name: sys_enter_openat\nID: 633\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\nprint fmt: \"...\"\n";
        assert_eq!(
            tracepoint_args(format),
            ["int __syscall_nr", "const char * filename"]
        );
    }
}
