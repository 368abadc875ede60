//! Reading profile files: what is refused, with which message, and files
//! written by earlier versions.

use profile::{Profile, builtin};

fn good() -> String {
    builtin::FILENAME.profile("5.10.0").to_toml_string()
}

/// As `offsets gen` wrote it before the register was derived.
fn with_registers(name: &str, ret: &str) -> String {
    format!(
        "{}\n[pt_regs]\n\"do_unlinkat.name\" = \"{name}\"\n\"do_unlinkat.ret\" = \"{ret}\"\n",
        good()
    )
}

#[test]
fn impossible_values_are_errors() {
    let good = good();
    for (from, to, why) in [
        ("offset = 16", "offset = 99999999", "beyond any struct"),
        ("size = 4", "size = 0", "size 0"),
        ("name_arg = 2", "name_arg = 7", "name_arg 7"),
        ("name_arg = 2", "name_arg = 0", "name_arg 0"),
        (
            "arch = \"x86_64\"",
            "arch = \"arm64\"",
            "arch `arm64` is not one nobtf knows (x86_64, aarch64, arm)",
        ),
        ("format = 2", "format = 9", "format 9"),
        (
            "type = \"int\"\n",
            "",
            "field `filename.refcnt` has no type, which format 2 gives every field",
        ),
        ("type = \"int\"", "type = \" \"", "empty type"),
        (
            "\"struct filename *\"",
            "\"struct inode *\"",
            "unknown variant",
        ),
        (
            "[fields.\"filename.name\"]",
            "[fields.\"filename\"]",
            "not `struct.member`",
        ),
    ] {
        let text = good.replacen(from, to, 1);
        assert_ne!(text, good, "{from}");
        let e = Profile::from_toml_str(&text).unwrap_err().to_string();
        assert!(e.contains(why), "{to}: {e}");
    }
}

#[test]
fn unknown_keys_are_errors() {
    let text = format!("{}\nsurprise = 1\n", good());
    let e = Profile::from_toml_str(&text).unwrap_err().to_string();
    assert!(e.contains("surprise"), "{e}");
}

#[test]
fn registers_are_derived_not_written() {
    assert!(!good().contains("pt_regs"), "{}", good());
}

#[test]
fn older_files_with_registers_still_read() {
    let expected = Profile::from_toml_str(&good()).unwrap();
    assert_eq!(
        Profile::from_toml_str(&with_registers("si", "ax")).unwrap(),
        expected
    );
}

#[test]
fn registers_that_disagree_with_the_convention_are_errors() {
    for (name, ret, why) in [("di", "ax", "in `si`"), ("si", "dx", "in `ax`")] {
        let e = Profile::from_toml_str(&with_registers(name, ret))
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{name} {ret}: {e}");
    }
    let unknown = good() + "\n[pt_regs]\n\"vfs_unlink.name\" = \"si\"\n";
    let e = Profile::from_toml_str(&unknown).unwrap_err().to_string();
    assert!(e.contains("not in [functions]"), "{e}");
    let role = good() + "\n[pt_regs]\n\"do_unlinkat.flags\" = \"dx\"\n";
    let e = Profile::from_toml_str(&role).unwrap_err().to_string();
    assert!(e.contains("role `flags`"), "{e}");
}

/// A format-1 file: the same fields without types, as `offsets gen` wrote
/// them before types came.
fn untyped() -> String {
    good()
        .replace("format = 2", "format = 1")
        .lines()
        .filter(|l| !l.starts_with("type = "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn format_1_files_read_without_types() {
    let old = Profile::from_toml_str(&untyped()).unwrap();
    assert_eq!(old.format, 1);
    let refcnt = old.field("filename.refcnt").unwrap();
    assert_eq!((refcnt.offset, refcnt.size, refcnt.c_type), (16, 4, None));
    // Still what the probes need.
    old.unlink().unwrap();
}

#[test]
fn format_2_files_carry_types() {
    let new = Profile::from_toml_str(&good()).unwrap();
    assert_eq!(new.format, 2);
    assert_eq!(
        new.field("filename.name").unwrap().c_type.as_deref(),
        Some("char *")
    );
    // A type in a format-1 file says the file is not what its number claims.
    let mixed = untyped().replacen("size = 4", "size = 4\ntype = \"int\"", 1);
    let e = Profile::from_toml_str(&mixed).unwrap_err().to_string();
    assert!(e.contains("format 1 does not carry"), "{e}");
}

/// `[structs]` and `[enums]`: what a trace program's own types and
/// constants need where there is no BTF; written only when not empty.
#[test]
fn struct_layouts_and_enumerators_read_and_answer() {
    use profile::FieldSource;
    assert!(!good().contains("[structs") && !good().contains("[enums]"));
    let text = format!(
        "{}\n[structs.path]\nsize = 16\nalign = 8\n\n[enums]\nTCP_SYN_RECV = 3\nNEG = -2\n",
        good()
    );
    let profile = Profile::from_toml_str(&text).unwrap();
    assert_eq!(profile.struct_layout("path"), Some((16, 8)));
    assert_eq!(profile.struct_layout("qstr"), None);
    assert_eq!(profile.enum_value("NEG"), Some(-2));
    assert_eq!(profile.enum_value("TCP_SYN_RECV"), Some(3));
    assert_eq!(profile.enum_value("TCP_CLOSE"), None);
    assert_eq!(
        Profile::from_toml_str(&profile.to_toml_string()).unwrap(),
        profile
    );
    for (from, to, why) in [
        (
            "align = 8",
            "align = 0",
            "struct `path` has size 16 and alignment 0",
        ),
        ("align = 8", "align = 6", "alignment 6"),
        ("size = 16\nalign", "size = 0\nalign", "size 0"),
        ("align = 8", "align = 8\ncount = 1", "unknown field `count`"),
        ("NEG = -2", "NEG = \"x\"", "invalid type"),
    ] {
        let bad = text.replacen(from, to, 1);
        assert_ne!(bad, text, "{from}");
        let err = Profile::from_toml_str(&bad).unwrap_err().to_string();
        assert!(err.contains(why), "{to}: {err}");
    }
}
