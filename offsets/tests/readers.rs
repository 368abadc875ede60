//! The DWARF, BTF and profile readers on small synthetic inputs, and
//! property tests that arbitrary or damaged bytes give errors, never panics.

use std::path::PathBuf;

use offsets::btf::Btf;
use offsets::generate::{Request, from_btf, from_vmlinux};
use offsets::model::FieldPath;
use offsets::{NameArgType, Profile};
use proptest::prelude::*;

mod common;
use common::{TYPED_FIELDS, layout, typed_request};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(p).unwrap()
}

/// A BTF blob: int, char, const char, const char *, struct filename,
/// struct filename *, a FUNC_PROTO and FUNC `do_unlinkat`.
fn synthetic_btf(user_path: bool) -> Vec<u8> {
    let mut strings = b"\0int\0char\0filename\0name\0uptr\0refcnt\0dfd\0do_unlinkat\0".to_vec();
    let off = |s: &str, strings: &[u8]| {
        let needle = format!("\0{s}\0");
        (strings
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap()
            + 1) as u32
    };
    strings.extend_from_slice(b"pathname\0");
    let mut t: Vec<u32> = Vec::new();
    let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
    // 1 int
    t.extend([off("int", &strings), info(1, 0), 4, (1 << 24) | 32]);
    // 2 char
    t.extend([off("char", &strings), info(1, 0), 1, 8]);
    // 3 const char
    t.extend([0, info(10, 0), 2]);
    // 4 const char *
    t.extend([0, info(2, 0), 3]);
    // 5 struct filename { name; uptr; refcnt; } size 32
    t.extend([off("filename", &strings), info(4, 3), 32]);
    t.extend([off("name", &strings), 4, 0]);
    t.extend([off("uptr", &strings), 4, 64]);
    t.extend([off("refcnt", &strings), 1, 128]);
    // 6 struct filename *
    t.extend([0, info(2, 0), 5]);
    // 7 proto long (int dfd, X)
    let (pname, pty) = if user_path {
        (off("pathname", &strings), 4)
    } else {
        (off("name", &strings), 6)
    };
    t.extend([0, info(13, 2), 1, off("dfd", &strings), 1, pname, pty]);
    // 8 func
    t.extend([off("do_unlinkat", &strings), info(12, 1), 7]);
    let types: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = Vec::new();
    out.extend(kernel_headers::btf::BTF_MAGIC.to_le_bytes());
    out.extend([1, 0]);
    for v in [
        24u32,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        out.extend(v.to_le_bytes());
    }
    out.extend(types);
    out.extend(strings);
    out
}

/// The profile `from_btf` makes of `synthetic_btf(user_path)`.
fn synthetic_profile(user_path: bool, req: &Request) -> Profile {
    from_btf(&synthetic_btf(user_path), "synthetic", req)
        .unwrap()
        .profile
}

#[test]
fn raw_btf_takes_the_pointer_size_of_the_named_architecture() {
    let arm = kernel_headers::pt_regs::abi("arm");
    let req = Request {
        release: Some("6.1.0-armmp".into()),
        arch: arm,
        ..Request::default()
    };
    let p = synthetic_profile(false, &req);
    assert_eq!(p.kernel.arch, "arm");
    assert_eq!(layout(&p, &["filename.name"]), [(0, 4)]);
}

#[test]
fn an_elf_of_another_architecture_than_asked_is_refused() {
    let req = Request {
        arch: kernel_headers::pt_regs::abi("aarch64"),
        ..Request::default()
    };
    let e = from_vmlinux(&fixture("namei-5.4.o"), "namei-5.4.o", &req).unwrap_err();
    assert_eq!(
        e.to_string(),
        "namei-5.4.o is a x86_64 kernel, but --arch says aarch64: drop --arch or give the matching kernel"
    );
    let p = from_vmlinux(&fixture("namei-5.4.o"), "namei-5.4.o", &Request::default()).unwrap();
    assert_eq!(p.profile.kernel.arch, "x86_64");
}

#[test]
fn btf_synthetic_both_shapes() {
    let req = Request {
        release: Some("5.4.0-test".into()),
        ..Request::default()
    };
    let p = synthetic_profile(false, &req);
    assert_eq!(p.kernel.release, "5.4.0-test");
    assert_eq!(
        layout(&p, &["filename.refcnt", "filename.name"]),
        [(16, 4), (0, 8)]
    );
    let f = p.function("do_unlinkat").unwrap();
    assert_eq!(
        (f.name_arg, f.name_arg_type, f.decided_by.as_str()),
        (2, NameArgType::Filename, "btf")
    );

    let p = synthetic_profile(true, &req);
    assert_eq!(
        p.function("do_unlinkat").unwrap().name_arg_type,
        NameArgType::UserPath
    );

    let btf = Btf::parse(&synthetic_btf(false)).unwrap();
    let ty = |key: &str| {
        btf.field(&FieldPath::parse(key).unwrap())
            .unwrap()
            .c_type
            .unwrap()
    };
    assert_eq!(ty("filename.name"), "char *");
    assert_eq!(ty("filename.refcnt"), "int");
    let e = btf
        .field(&FieldPath::parse("filename.nope").unwrap())
        .unwrap_err();
    assert_eq!(e.to_string(), "struct `filename` has no member `nope`");
    let e = btf
        .field(&FieldPath::parse("inode.i_ino").unwrap())
        .unwrap_err();
    assert!(
        e.to_string().contains("struct `inode` is not defined"),
        "{e}"
    );
}

#[test]
fn dwarf_of_relocatable_objects_both_shapes() {
    let req = Request::default();
    let p = from_vmlinux(&fixture("namei-5.4.o"), "namei-5.4.o", &req)
        .unwrap()
        .profile;
    assert_eq!(layout(&p, &["filename.refcnt"]), [(16, 4)]);
    let f = p.function("do_unlinkat").unwrap();
    assert_eq!(
        (f.name_arg, f.name_arg_type, f.symbol),
        (2, NameArgType::Filename, true)
    );
    assert_eq!(f.decided_by, "dwarf");

    let req = Request {
        fields: vec!["filename.uptr".into()],
        release: None,
        arch: None,
        ..Request::default()
    };
    let p = from_vmlinux(&fixture("namei-4.14-dwarf4.o"), "namei-4.14", &req)
        .unwrap()
        .profile;
    assert_eq!(
        layout(&p, &["filename.refcnt", "filename.uptr"]),
        [(24, 4), (8, 8)]
    );
    let f = p.function("do_unlinkat").unwrap();
    assert_eq!((f.name_arg, f.name_arg_type), (2, NameArgType::UserPath));
    // Static but out of line: a (local) function symbol, so a kprobe can attach.
    assert!(f.symbol);
}

#[test]
fn no_btf_in_an_elf_is_a_clear_error() {
    let e = from_btf(&fixture("namei-5.4.o"), "namei-5.4.o", &Request::default()).unwrap_err();
    assert!(e.to_string().contains("no .BTF section"), "{e}");
}

fn no_panic_on(data: &[u8]) {
    let req = Request {
        fields: vec!["inode.i_ino".into()],
        release: None,
        arch: None,
        ..Request::default()
    };
    let _ = Btf::parse(data);
    let _ = from_btf(data, "fuzz", &req);
    let _ = from_vmlinux(data, "fuzz", &req);
    let _ = Profile::from_toml_str(&String::from_utf8_lossy(data));
}

/// `data` with each `(at, value)` written (at modulo its length), then cut
/// to `cut` bytes.
fn damaged(mut data: Vec<u8>, flips: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let n = data.len();
    for &(at, v) in flips {
        data[at % n] = v;
    }
    data.truncate(cut);
    data
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        no_panic_on(&data);
    }

    #[test]
    fn damaged_btf_never_panics(cut in 0usize..400, flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8)) {
        no_panic_on(&damaged(synthetic_btf(false), &flips, cut));
    }

    #[test]
    fn damaged_elf_dwarf_never_panics(cut in 0usize..4096, flips in proptest::collection::vec((0usize..4096, any::<u8>()), 0..8)) {
        no_panic_on(&damaged(fixture("namei-5.4.o"), &flips, cut));
    }

    #[test]
    fn damaged_profile_text_never_panics(cut in 0usize..800, at in 0usize..800, c in any::<char>()) {
        let mut text: Vec<char> = profile::builtin::FILENAME.profile("5.10.0").to_toml_string().chars().collect();
        let n = text.len();
        text[at % n] = c;
        text.truncate(cut.min(n));
        let _ = Profile::from_toml_str(&text.iter().collect::<String>());
    }
}

/// `offsets gen --fields-from OBJECT`: the fields a CO-RE object reads
/// become part of the profile. Needs clang (scripts/test installs it).
#[test]
fn fields_from_a_co_re_object() {
    let dir = std::env::temp_dir().join(format!("offsets-fields-from-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (c, o, btf) = (dir.join("p.c"), dir.join("p.o"), dir.join("btf"));
    std::fs::write(
        &c,
        "struct filename { const char *name; const char *uptr; int refcnt; }
             __attribute__((preserve_access_index));
         __attribute__((section(\"kprobe/do_unlinkat\"), used))
         int p(unsigned long *ctx) {
             struct filename *f = (void *)ctx[13];
             return (long)f->uptr;
         }
         char LICENSE[] __attribute__((section(\"license\"), used)) = \"GPL\";",
    )
    .unwrap();
    let clang = std::process::Command::new("clang")
        .args(["-target", "bpf", "-O2", "-g", "-c"])
        .arg(&c)
        .arg("-o")
        .arg(&o)
        .status()
        .expect("clang not found: this test compiles a CO-RE object; install clang");
    assert!(clang.success());
    std::fs::write(&btf, synthetic_btf(false)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offsets"))
        .args(["gen", "--release", "5.4.0-test", "--btf"])
        .arg(&btf)
        .arg("--fields-from")
        .arg(&o)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let profile = Profile::from_toml_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(layout(&profile, &["filename.uptr"]), [(8, 8)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same C (tree-5.4's fs/namei.c) as gcc's DWARF and as clang's BTF:
/// both readers give every field the same offset, size and type, and a
/// path's first member comes with it.
#[test]
fn dwarf_and_btf_agree_on_types() {
    let req = typed_request();
    let dwarf = from_vmlinux(&fixture("namei-5.4.o"), "namei-5.4.o", &req)
        .unwrap()
        .profile;
    let btf = from_btf(&fixture("namei-5.4.btf"), "namei-5.4.btf", &req)
        .unwrap()
        .profile;
    assert_eq!(dwarf.format, profile::FORMAT_VERSION);
    for (key, c_type) in TYPED_FIELDS {
        let from_dwarf = dwarf.field(key).unwrap();
        assert_eq!(from_dwarf.c_type.as_deref(), Some(*c_type), "{key}");
        assert_eq!(btf.field(key).unwrap(), from_dwarf, "{key}");
    }
    assert_eq!(dwarf.fields, btf.fields);
    // Typed, the profile file still reads back the same.
    let text = btf.to_toml_string();
    assert!(text.contains("type = \"struct dentry *\""), "{text}");
    assert_eq!(Profile::from_toml_str(&text).unwrap(), btf);
}
