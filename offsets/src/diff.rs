//! Compare two profiles on what a probe consumes.

use std::collections::BTreeSet;
use std::fmt::Debug;

use profile::Profile;

/// The differences that change what a probe would do (arch, fields,
/// functions' signatures, and so the registers read; struct sizes and
/// enumerators, which a trace program's own types and constants read),
/// one line each; and notes on the rest
/// (release, provenance, how a signature was decided), which do not count.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub differences: Vec<String>,
    pub notes: Vec<String>,
}

fn compare_maps<V: PartialEq + Debug>(
    what: &str,
    a: &std::collections::BTreeMap<String, V>,
    b: &std::collections::BTreeMap<String, V>,
    out: &mut Vec<String>,
    same: impl Fn(&V, &V) -> bool,
    show: impl Fn(&V) -> String,
) {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for key in keys {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if !same(x, y) => {
                out.push(format!("{what} `{key}`: {} vs {}", show(x), show(y)));
            }
            (Some(x), None) => out.push(format!("{what} `{key}` only in A ({})", show(x))),
            (None, Some(y)) => out.push(format!("{what} `{key}` only in B ({})", show(y))),
            _ => {}
        }
    }
}

pub fn diff(a: &Profile, b: &Profile) -> Diff {
    let mut d = Diff::default();
    if a.kernel.arch != b.kernel.arch {
        d.differences.push(format!(
            "kernel.arch: {} vs {}",
            a.kernel.arch, b.kernel.arch
        ));
    }
    compare_maps(
        "field",
        &a.fields,
        &b.fields,
        &mut d.differences,
        // A format-1 profile knows no types: only two known types can differ.
        |x, y| {
            (x.offset, x.size) == (y.offset, y.size)
                && (x.c_type == y.c_type || x.c_type.is_none() || y.c_type.is_none())
        },
        |f| match &f.c_type {
            Some(t) => format!("offset {} size {} `{t}`", f.offset, f.size),
            None => format!("offset {} size {}", f.offset, f.size),
        },
    );
    compare_maps(
        "function",
        &a.functions,
        &b.functions,
        &mut d.differences,
        |x, y| (x.symbol, x.name_arg, x.name_arg_type) == (y.symbol, y.name_arg, y.name_arg_type),
        |f| {
            let ty = toml::Value::try_from(f.name_arg_type)
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            format!("symbol {} name_arg {} `{ty}`", f.symbol, f.name_arg)
        },
    );
    // A trace program's own structs and constants read these.
    compare_maps(
        "struct",
        &a.structs,
        &b.structs,
        &mut d.differences,
        |x, y| x == y,
        |s| format!("size {} align {}", s.size, s.align),
    );
    compare_maps(
        "enumerator",
        &a.enums,
        &b.enums,
        &mut d.differences,
        |x, y| x == y,
        |v| v.to_string(),
    );
    if a.kernel.release != b.kernel.release {
        d.notes.push(format!(
            "kernel.release: {} vs {}",
            a.kernel.release, b.kernel.release
        ));
    }
    // Which build and config: told apart, though the offsets may agree.
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not recorded)".into());
    if a.kernel.version != b.kernel.version {
        d.notes.push(format!(
            "kernel.version: {} vs {}",
            shown(&a.kernel.version),
            shown(&b.kernel.version)
        ));
    }
    if a.kernel.layout_config != b.kernel.layout_config {
        d.notes.push(format!(
            "kernel.layout_config: {} vs {}",
            shown(&a.kernel.layout_config),
            shown(&b.kernel.layout_config)
        ));
    }
    if a.source != b.source {
        d.notes.push(format!(
            "source: {} ({}) vs {} ({})",
            a.source.method, a.source.detail, b.source.method, b.source.detail
        ));
    }
    for (name, fa) in &a.functions {
        if let Some(fb) = b.functions.get(name)
            && fa.decided_by != fb.decided_by
        {
            d.notes.push(format!(
                "function `{name}` decided by {} vs {}",
                fa.decided_by, fb.decided_by
            ));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use profile::{Field, NameArgType};

    #[test]
    fn provenance_is_not_a_difference() {
        let a = profile::builtin::FILENAME.profile("5.10.0");
        let mut b = profile::builtin::FILENAME.profile("5.10.0-x");
        b.source.method = "btf".into();
        b.functions.get_mut("do_unlinkat").unwrap().decided_by = "btf".into();
        let d = diff(&a, &b);
        assert!(d.differences.is_empty(), "{d:?}");
        assert_eq!(d.notes.len(), 3, "{d:?}");
        // Another build or config is said, not counted.
        b.kernel.version = Some("#2 SMP".into());
        b.kernel.layout_config = Some("00ff".into());
        let d = diff(&a, &b);
        assert!(d.differences.is_empty(), "{d:?}");
        assert!(
            d.notes
                .contains(&"kernel.version: (not recorded) vs #2 SMP".to_string()),
            "{d:?}"
        );
        assert!(
            d.notes
                .contains(&"kernel.layout_config: (not recorded) vs 00ff".to_string()),
            "{d:?}"
        );
    }

    #[test]
    fn each_difference_is_named() {
        let a = profile::builtin::FILENAME.profile("4.14");
        let mut b = a.clone();
        b.fields
            .insert("filename.refcnt".into(), Field::typed(24, 4, "int"));
        b.fields.insert("inode.i_ino".into(), Field::untyped(64, 8));
        b.fields.insert(
            "filename.name".into(),
            Field::typed(0, 8, "unsigned char *"),
        );
        b.functions.get_mut("do_unlinkat").unwrap().name_arg_type = NameArgType::UserPath;
        let mut a = a;
        a.structs
            .insert("path".into(), profile::StructLayout { size: 16, align: 8 });
        b.structs
            .insert("path".into(), profile::StructLayout { size: 24, align: 8 });
        b.enums.insert("TCP_SYN_RECV".into(), 3);
        let d = diff(&a, &b);
        assert_eq!(
            d.differences,
            [
                "field `filename.name`: offset 0 size 8 `char *` vs offset 0 size 8 `unsigned char *`",
                "field `filename.refcnt`: offset 16 size 4 `int` vs offset 24 size 4 `int`",
                "field `inode.i_ino` only in B (offset 64 size 8)",
                "function `do_unlinkat`: symbol true name_arg 2 `struct filename *` vs symbol true name_arg 2 `const char __user *`",
                "struct `path`: size 16 align 8 vs size 24 align 8",
                "enumerator `TCP_SYN_RECV` only in B (3)",
            ]
        );
    }
}
