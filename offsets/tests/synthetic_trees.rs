//! `gen --kernel-src` end to end on tiny synthetic trees (a Makefile standing
//! in for kbuild, headers with the 4.14 and 5.4 shapes), with the host gcc.

use std::path::PathBuf;

use offsets::generate::Request;
use offsets::kbuild::{SrcOptions, generate};
use offsets::{GenError, NameArgType, UnlinkArg};

mod common;
use common::{TYPED_FIELDS, layout, typed_request};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("nobtf-offsets-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(tree: &str, fields: &[&str]) -> (SrcOptions, PathBuf) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = scratch(&format!("{tree}-{}", N.fetch_add(1, Ordering::Relaxed)));
    let config = dir.join("config");
    std::fs::write(&config, "CONFIG_SYNTHETIC=y\n").unwrap();
    let opts = SrcOptions {
        tree: fixture(tree),
        config: Some(config),
        build_dir: Some(dir.join("build")),
        arch: Some("x86_64".into()),
        jobs: 1,
        make_vars: Vec::new(),
        headers: Vec::new(),
        request: Request {
            fields: fields.iter().map(|s| s.to_string()).collect(),
            release: None,
            arch: None,
            ..Request::default()
        },
    };
    (opts, dir)
}

#[test]
fn old_shape_refcnt_after_aname_and_static_user_path() {
    let (opts, dir) = options("tree-4.14", &[]);
    let mut steps = Vec::new();
    let generated = generate(&opts, &mut |m| steps.push(m.to_string())).unwrap();
    // The headers-only preparation was enough for this tree.
    assert!(
        steps.iter().any(|s| s.contains("headers only")),
        "{steps:?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("whole prepare0")),
        "{steps:?}"
    );
    let p = &generated.profile;
    assert_eq!(p.kernel.release, "4.14.0-synthetic");
    assert_eq!(
        layout(p, &["filename.refcnt", "filename.name"]),
        [(24, 4), (0, 8)]
    );
    let f = p.function("do_unlinkat").unwrap();
    assert_eq!(f.name_arg, 2);
    assert_eq!(f.name_arg_type, NameArgType::UserPath);
    // No header declares it: decided from fs/namei.c's text.
    assert_eq!(f.decided_by, "source");
    // Static, but compiled out of line (-O0), so it is a symbol.
    assert!(f.symbol);
    assert_eq!(p.unlink().unwrap().kind, UnlinkArg::UserPath);
    // The tree is left untouched; outputs are in the build dir.
    assert!(!fixture("tree-4.14").join("include/generated").exists());
    assert!(dir.join("build/fs/namei.s").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn new_shape_type_checked_against_the_declaration() {
    let (opts, dir) = options("tree-5.4", &["inode.i_ino"]);
    let mut steps = Vec::new();
    let generated = generate(&opts, &mut |m| steps.push(m.to_string())).unwrap();
    let p = &generated.profile;
    // `inode.i_ino` is a member of an anonymous union.
    assert_eq!(
        layout(p, &["filename.refcnt", "inode.i_ino"]),
        [(16, 4), (8, 8)]
    );
    let f = p.function("do_unlinkat").unwrap();
    assert_eq!((f.name_arg, f.name_arg_type), (2, NameArgType::Filename));
    assert_eq!(f.decided_by, "type-check");
    assert!(steps.iter().any(|s| s.contains("prepar")), "{steps:?}");
    // The headers-only preparation lacked a header this tree's compile
    // includes: the whole prepare0 ran, and then the compile succeeded.
    assert!(
        steps
            .iter()
            .any(|s| s.contains("running the whole prepare0")),
        "{steps:?}"
    );

    // A second run reuses the prepared dir.
    let mut steps = Vec::new();
    let again = generate(&opts, &mut |m| steps.push(m.to_string())).unwrap();
    assert_eq!(again.profile, generated.profile);
    assert!(steps.iter().any(|s| s.contains("reusing")), "{steps:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn errors_name_the_cause() {
    let (opts, dir) = options("tree-5.4", &["filename.nosuch"]);
    let e = generate(&opts, &mut |_| {}).unwrap_err();
    assert!(matches!(e, GenError::Compile(_)), "{e}");
    assert!(e.to_string().contains("nosuch"), "{e}");

    let (mut opts, dir2) = options("tree-5.4", &[]);
    opts.config = None;
    let e = generate(&opts, &mut |_| {}).unwrap_err();
    assert!(matches!(e, GenError::NoConfig(_)), "{e}");

    let (mut opts, dir3) = options("tree-5.4", &[]);
    opts.arch = Some("sparc".into());
    let e = generate(&opts, &mut |_| {}).unwrap_err();
    assert!(matches!(e, GenError::Arch(_)), "{e}");

    let (mut opts, dir4) = options("tree-5.4", &[]);
    opts.tree = dir4.clone();
    let e = generate(&opts, &mut |_| {}).unwrap_err();
    assert!(matches!(e, GenError::NotATree(_)), "{e}");
    for d in [dir, dir2, dir3, dir4] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The types come from the compiler's DWARF of the offsets file, as the
/// DWARF and BTF readers give them (tests/readers.rs).
#[test]
fn each_field_has_the_compilers_type() {
    let (mut opts, dir) = options("tree-5.4", &[]);
    opts.request = typed_request();
    let p = generate(&opts, &mut |_| {}).unwrap().profile;
    for (key, c_type) in TYPED_FIELDS {
        assert_eq!(
            p.field(key).unwrap().c_type.as_deref(),
            Some(*c_type),
            "{key}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of a fixture tree configured in place (its `.config` beside its
/// Makefile), and options that name nothing but the tree.
fn in_place(tree: &str, config: &str) -> (SrcOptions, PathBuf) {
    let (mut opts, dir) = options(tree, &[]);
    copy_tree(&fixture(tree), &dir.join("tree"));
    std::fs::write(dir.join("tree/.config"), config).unwrap();
    opts.tree = dir.join("tree");
    opts.config = None;
    opts.build_dir = None;
    opts.arch = None;
    (opts, dir)
}

#[test]
fn a_tree_configured_in_place_gives_the_pristine_profile_and_keeps_its_config() {
    let config = "CONFIG_X86_64=y\nCONFIG_SYNTHETIC=y\n";
    for tree in ["tree-4.14", "tree-5.4"] {
        let (pristine, dir) = options(tree, &[]);
        let want = generate(&pristine, &mut |_| {}).unwrap().profile;
        let (opts, dir2) = in_place(tree, config);
        let mut steps = Vec::new();
        let got = generate(&opts, &mut |m| steps.push(m.to_string())).unwrap();
        assert!(steps.iter().any(|s| s.contains("in place")), "{steps:?}");
        assert_eq!(got.profile.fields, want.fields, "{tree}");
        assert_eq!(got.profile.functions, want.functions, "{tree}");
        assert_eq!(got.profile.kernel, want.kernel, "{tree}");
        let t = &opts.tree;
        assert_eq!(std::fs::read_to_string(t.join(".config")).unwrap(), config);
        // Prepared in place; nothing of this run's own is left behind.
        assert!(t.join("include/generated/bounds.h").exists());
        assert!(!t.join("nobtf-offsets").exists());
        assert!(!t.join("fs/namei.s").exists());
        // A second run on the now prepared tree gives the same.
        let again = generate(&opts, &mut |_| {}).unwrap();
        assert_eq!(again.profile, got.profile);
        for d in [dir, dir2] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}

#[test]
fn a_tree_that_cannot_be_used_in_place_says_why_in_one_line() {
    let x86 = "CONFIG_X86_64=y\n";
    let one_line = |e: &GenError, wanted: &str| {
        let text = e.to_string();
        assert!(matches!(e, GenError::NotATree(_)), "{text}");
        assert!(text.contains(wanted), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    };
    let mut dirs = Vec::new();

    // Its own config and build dir are the tree's.
    let (mut opts, dir) = in_place("tree-5.4", x86);
    opts.config = Some(dir.join("config"));
    one_line(&generate(&opts, &mut |_| {}).unwrap_err(), "drop --config");
    opts.config = None;
    opts.build_dir = Some(dir.join("build"));
    one_line(
        &generate(&opts, &mut |_| {}).unwrap_err(),
        "drop --build-dir",
    );
    dirs.push(dir);

    // Read-only (by its mode: root could still write).
    let (opts, dir) = in_place("tree-5.4", x86);
    use std::os::unix::fs::PermissionsExt;
    let mode = |m| std::fs::set_permissions(&opts.tree, std::fs::Permissions::from_mode(m));
    mode(0o555).unwrap();
    let e = generate(&opts, &mut |_| {}).unwrap_err();
    mode(0o755).unwrap();
    one_line(&e, "cannot be written (read-only)");
    assert!(!opts.tree.join("include/generated").exists());
    dirs.push(dir);

    // Configured for a compiler this machine lacks, or of another version.
    let (opts, dir) = in_place("tree-5.4", x86);
    std::fs::create_dir_all(opts.tree.join("include/config")).unwrap();
    let record = |text: &str| std::fs::write(opts.tree.join("include/config/auto.conf.cmd"), text);
    record("ifneq \"$(CC)\" \"no-such-vendor-gcc\"\ninclude/config/auto.conf: FORCE\nendif\n")
        .unwrap();
    one_line(
        &generate(&opts, &mut |_| {}).unwrap_err(),
        "`no-such-vendor-gcc` (include/config/auto.conf.cmd), which is not on PATH",
    );
    record("ifneq \"$(CC_VERSION_TEXT)\" \"gcc (Vendor) 4.9.4\"\n").unwrap();
    one_line(
        &generate(&opts, &mut |_| {}).unwrap_err(),
        "was configured with `gcc (Vendor) 4.9.4`",
    );
    assert!(!opts.tree.join("include/generated").exists());
    dirs.push(dir);

    // Half cleaned: kbuild's marks of a configured tree, without .config.
    let (opts, dir) = in_place("tree-5.4", x86);
    std::fs::remove_file(opts.tree.join(".config")).unwrap();
    std::fs::create_dir_all(opts.tree.join("include/config")).unwrap();
    let mut opts = opts;
    opts.config = Some(dir.join("config"));
    one_line(
        &generate(&opts, &mut |_| {}).unwrap_err(),
        "run `make mrproper` in it",
    );
    dirs.push(dir);

    // A config for another architecture than --arch.
    let (mut opts, dir) = in_place("tree-5.4", "CONFIG_ARM=y\n");
    opts.arch = Some("x86_64".into());
    let e = generate(&opts, &mut |_| {}).unwrap_err();
    assert!(matches!(e, GenError::ArchMismatch { .. }), "{e}");
    dirs.push(dir);

    for d in dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
}
