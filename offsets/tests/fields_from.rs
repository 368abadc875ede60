//! `offsets gen --fields-from PROGRAM`: the fields a trace program reads
//! join the profile as `--field` would add them (the binary, on the DWARF
//! fixture of the synthetic 5.4 tree).

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn offsets(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offsets"))
        .args(args)
        .output()
        .unwrap()
}

fn profile(extra: &[&str]) -> String {
    let object = fixture("namei-5.4.o");
    let mut args = vec!["gen", "--vmlinux", object.as_str()];
    args.extend_from_slice(extra);
    let out = offsets(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Reads `filename.uptr`, which the default profile lacks, and a
/// tracepoint argument, which is no struct field.
const PROGRAM: &str = r#"kprobe:do_unlinkat { $f = (struct filename *)arg1; printf("%d %s\n", $f->refcnt, str($f->uptr)); }
tracepoint:syscalls:sys_enter_openat /args->flags/ { @[str(args->filename)] = count(); }"#;

#[test]
fn program_fields_join_the_profile_like_field_does() {
    let plain = profile(&[]);
    assert!(!plain.contains("filename.uptr"), "{plain}");
    let from_text = profile(&["--fields-from", PROGRAM]);
    assert!(
        from_text.contains("[fields.\"filename.uptr\"]\noffset = 8\nsize = 8\n"),
        "{from_text}"
    );
    let with_field = profile(&["--field", "filename.uptr", "--field", "filename.refcnt"]);
    assert_eq!(from_text, with_field);

    let dir = std::env::temp_dir().join(format!("nobtf-fields-from-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("unlink.bt");
    std::fs::write(&file, PROGRAM).unwrap();
    let from_file = profile(&["--fields-from", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(from_file, with_field);
}

#[test]
fn a_program_that_does_not_parse_is_refused_with_its_caret() {
    let object = fixture("namei-5.4.o");
    let out = offsets(&[
        "gen",
        "--vmlinux",
        &object,
        "--fields-from",
        "kprobe:f { $x = (struct filename *)arg0; $x-> }",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--fields-from: the program does not compile"),
        "{err}"
    );
    assert!(err.contains("expected a member name"), "{err}");
    assert!(err.contains('^'), "{err}");
}
