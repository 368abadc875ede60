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

/// `offsets gen --fields-from PROGRAM` on the fixture, which must fail;
/// its stderr.
fn refused(program: &str) -> String {
    let object = fixture("namei-5.4.o");
    let out = offsets(&["gen", "--vmlinux", &object, "--fields-from", program]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("--fields-from: the program does not compile"),
        "{err}"
    );
    err
}

#[test]
fn a_program_that_does_not_parse_is_refused_with_its_caret() {
    let err = refused("kprobe:f { $x = (struct filename *)arg0; $x-> }");
    assert!(err.contains("expected a member name"), "{err}");
    assert!(err.contains('^'), "{err}");
}

/// A chain of members without casts: each round of generation types one
/// more member, until the program's every field is in the profile, typed.
#[test]
fn a_chain_without_casts_is_followed_to_its_end() {
    let chain = r#"kprobe:vfs_read { $f = (struct file *)arg0; printf("R %s %d\n", str($f->f_path.dentry->d_name.name), $f->f_path.dentry->d_name.hash); }"#;
    let from_text = profile(&["--fields-from", chain]);
    for expected in [
        "[fields.\"file.f_path.dentry\"]\noffset = 16\nsize = 8\ntype = \"struct dentry *\"\n",
        "[fields.\"dentry.d_name.name\"]\noffset = 24\nsize = 8\ntype = \"unsigned char *\"\n",
        "[fields.\"file.f_path\"]\noffset = 8\nsize = 16\ntype = \"struct path\"\n",
    ] {
        assert!(from_text.contains(expected), "{expected}\n{from_text}");
    }
    let with_field = profile(&[
        "--field",
        "file.f_path.dentry",
        "--field",
        "dentry.d_name.name",
        "--field",
        "dentry.d_name.hash",
    ]);
    assert_eq!(from_text, with_field);
    // And the program compiles against it as it is.
    let profile = offsets::Profile::from_toml_str(&from_text).unwrap();
    let target = lang::Target {
        fields: &profile,
        tracepoints: &lang::tracepoint::NoTracepoints,
        kernel: lang::kernel::Kernel::for_release(
            kernel_headers::KernelVersion::new(6, 1, 0),
            kernel_headers::pt_regs::NATIVE,
        ),
    };
    lang::compile(chain, &target).unwrap();
}

#[test]
fn a_chain_through_a_member_without_members_is_refused() {
    let err = refused("kprobe:f { $f = (struct file *)arg0; printf(\"%d\\n\", $f->f_pos->x); }");
    assert!(err.contains("has no members"), "{err}");
}

/// A script's own struct embedding kernel structs (dcsnoop's `nameidata`
/// after its `struct path`): the profile records their sizes, and the
/// program's member after them is placed with it.
const EMBEDS: &str = r#"struct nd { struct path path; struct qstr last; };
kprobe:f { $n = (struct nd *)arg0; if (arg1 == SYNTH_ANON_B || arg1 == SYNTH_BELOW) { printf("%s\n", str($n->last.name)); } }"#;

#[test]
fn embedded_structs_and_named_enumerators_join_the_profile() {
    let text = profile(&["--fields-from", EMBEDS]);
    for expected in [
        "[structs.path]\nsize = 16\nalign = 8\n",
        "[structs.qstr]\nsize = 16\nalign = 8\n",
        "[enums]\nSYNTH_ANON_B = 9\nSYNTH_BELOW = -2\n",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
    // The script's own struct is the script's: not asked of the kernel.
    assert!(!text.contains("structs.nd"), "{text}");
    let btf = offsets(&[
        "gen",
        "--btf",
        &fixture("namei-5.4.btf"),
        "--fields-from",
        EMBEDS,
    ]);
    let btf = String::from_utf8(btf.stdout).unwrap();
    assert!(
        btf.contains("[structs.path]\nsize = 16\nalign = 8\n")
            && btf.contains("SYNTH_ANON_B = 9\n"),
        "{btf}"
    );
    // The program compiles against the profile alone: `last` sits after
    // the 16 bytes of `path`, its `name` 8 bytes further.
    let profile = offsets::Profile::from_toml_str(&text).unwrap();
    let target = lang::Target {
        fields: &profile,
        tracepoints: &lang::tracepoint::NoTracepoints,
        kernel: lang::kernel::Kernel::for_release(
            kernel_headers::KernelVersion::new(5, 4, 0),
            kernel_headers::pt_regs::NATIVE,
        ),
    };
    lang::compile(EMBEDS, &target).unwrap();
}

#[test]
fn what_the_kernel_lacks_is_a_warning_not_a_value() {
    let object = fixture("namei-5.4.o");
    let out = offsets(&[
        "gen",
        "--vmlinux",
        &object,
        "--fields-from",
        "struct nd { struct nosuch x; int y; }; kprobe:f { $n = (struct nd *)arg0; printf(\"%d %d\\n\", $n->y, NO_SUCH_ENUMERATOR); }",
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("struct `nosuch` is not defined in this kernel"),
        "{err}"
    );
    assert!(
        err.contains("`NO_SUCH_ENUMERATOR` is no enumerator of this kernel"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("[structs") && !text.contains("[enums]"),
        "{text}"
    );
}
