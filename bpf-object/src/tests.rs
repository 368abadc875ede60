//! Tests on objects clang really writes: tests/c/*.bpf.c built by
//! tests/c/build.sh, small C snippets for each refused feature, and
//! malformed objects made from the good one here (none are committed).
//! They need clang (scripts/test installs it) and fail without it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kernel_headers::bpf::{Helper, PSEUDO_MAP_FD, RawInsn, map_type};
use object::read::elf::ElfFile64;
use object::{LittleEndian, Object as _, ObjectSection as _};
use proptest::prelude::*;

use super::*;

/// Where the objects for this test process go.
fn out_dir() -> PathBuf {
    std::env::temp_dir().join(format!("nobtf-legacy-tests-{}", std::process::id()))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails the test when clang is missing: these tests are about the objects
/// clang writes, and a run without them must not pass.
fn require_clang() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let found = Command::new("clang")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "clang not found: these tests compile BPF C; install clang and llvm (scripts/test --deps-only does)"
        );
    });
}

/// The objects of tests/c, built once per test process.
fn built(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        require_clang();
        let dir = out_dir().join("c");
        let status = Command::new("bash")
            .arg(repo_root().join("tests/c/build.sh"))
            .arg(&dir)
            .status()
            .expect("run tests/c/build.sh");
        assert!(status.success(), "tests/c/build.sh failed");
        dir
    });
    let path = dir.join(format!("{name}.o"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compiles a C snippet, after the prelude and a GPL license.
fn snippet(name: &str, body: &str, flags: &[&str]) -> Vec<u8> {
    compile(name, &format!("{PRELUDE}{GPL}{body}"), flags)
}

/// Compiles C source with `clang -target bpf -O2 -c` plus `flags`.
fn compile(name: &str, source: &str, flags: &[&str]) -> Vec<u8> {
    let dir = out_dir().join("snippets");
    std::fs::create_dir_all(&dir).unwrap();
    let (c, o) = (dir.join(format!("{name}.c")), dir.join(format!("{name}.o")));
    std::fs::write(&c, source).unwrap();
    clang_bpf(name, flags, &c, &o)
}

/// `clang -target bpf -O2 -c <flags> <source> -o <object>`: the object's bytes.
fn clang_bpf(name: &str, flags: &[&str], source: &Path, object: &Path) -> Vec<u8> {
    require_clang();
    let out = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-c"])
        .args(flags)
        .arg(source)
        .arg("-o")
        .arg(object)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clang {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(object).unwrap()
}

const PRELUDE: &str = r#"
#define SEC(n) __attribute__((section(n), used))
typedef unsigned int __u32;
typedef unsigned long long __u64;
static long (*bpf_trace_printk)(const char *fmt, __u32 size, ...) = (void *)6;
static long (*bpf_probe_read)(void *dst, __u32 size, const void *src) = (void *)4;
"#;

const GPL: &str = "char LICENSE[] SEC(\"license\") = \"GPL\";\n";

fn parse_err(data: &[u8]) -> ObjError {
    Object::parse(data).expect_err("the object must be refused")
}

/// Helper ids called by a program, in order.
fn helper_calls(insns: &[RawInsn]) -> Vec<u32> {
    insns
        .iter()
        .filter(|i| i.code == 0x85 && i.src() == 0)
        .map(|i| i.imm as u32)
        .collect()
}

// ---- the good objects ----

#[test]
fn unlink_object_has_both_probes_the_map_and_its_reference() {
    let data = built("unlink");
    let obj = Object::parse(&data).unwrap();
    assert_eq!(obj.license, "GPL");
    assert_eq!(obj.kern_version, Some(0xffff_fffe));
    assert_eq!(
        obj.maps,
        [MapDef {
            name: "unlink_count".into(),
            map_type: map_type::ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            map_flags: 0,
        }]
    );
    let [entry, exit] = &obj.programs[..] else {
        panic!("{obj}")
    };

    assert_eq!(
        (
            entry.section.as_str(),
            entry.name.as_str(),
            entry.kind,
            entry.function.as_str()
        ),
        (
            "kprobe/do_unlinkat",
            "unlink_entry",
            ProbeKind::Kprobe,
            "do_unlinkat"
        )
    );
    let [reloc] = entry.map_relocs[..] else {
        panic!("{:?}", entry.map_relocs)
    };
    assert_eq!(reloc.map, 0);
    assert_eq!(
        entry.insns[reloc.insn].code, 0x18,
        "a map reference is an ld_imm64"
    );
    // pid, the two reads, the map lookup, the print.
    let h = |h: Helper| h.id();
    assert_eq!(
        helper_calls(&entry.insns),
        [
            h(Helper::GetCurrentPidTgid),
            h(Helper::ProbeRead),
            h(Helper::ProbeRead),
            h(Helper::MapLookupElem),
            h(Helper::TracePrintk)
        ]
    );
    assert_eq!(entry.insns.last().unwrap().code, 0x95, "ends in exit");

    assert_eq!(
        (
            exit.section.as_str(),
            exit.name.as_str(),
            exit.kind,
            exit.function.as_str()
        ),
        (
            "kretprobe/do_unlinkat",
            "unlink_exit",
            ProbeKind::Kretprobe,
            "do_unlinkat"
        )
    );
    assert!(exit.map_relocs.is_empty());
    assert_eq!(
        helper_calls(&exit.insns),
        [h(Helper::GetCurrentPidTgid), h(Helper::TracePrintk)]
    );
}

#[test]
fn unlink_kernel_variant_reads_with_probe_read_kernel() {
    let data = built("unlink_kernel");
    let obj = Object::parse(&data).unwrap();
    let calls = helper_calls(&obj.programs[0].insns);
    assert_eq!(calls[1..3], [Helper::ProbeReadKernel.id(); 2]);
}

#[test]
fn relocation_patches_pseudo_map_fd_and_only_that() {
    let data = built("unlink");
    let obj = Object::parse(&data).unwrap();
    let entry = &obj.programs[0];
    let at = entry.map_relocs[0].insn;
    let insns = entry.relocated(&[7]).unwrap();
    assert_eq!(insns.len(), entry.insns.len());
    assert_eq!(insns[at].src(), PSEUDO_MAP_FD);
    assert_eq!(insns[at].dst(), entry.insns[at].dst());
    assert_eq!(
        (insns[at].code, insns[at].imm, insns[at + 1].imm),
        (0x18, 7, 0)
    );
    for (i, (new, old)) in insns.iter().zip(&entry.insns).enumerate() {
        if i != at && i != at + 1 {
            assert_eq!(new, old, "instruction {i} changed");
        }
    }
    assert_eq!(
        entry.relocated(&[]),
        Err(ObjError::MissingMapFd {
            program: "unlink_entry".into(),
            map_index: 0,
            fds: 0
        })
    );
    // Nothing to patch in the exit program.
    assert_eq!(
        obj.programs[1].relocated(&[]).unwrap(),
        obj.programs[1].insns
    );
}

#[test]
fn a_section_with_two_programs_and_larger_map_definitions() {
    let data = built("two_in_one");
    let obj = Object::parse(&data).unwrap();
    assert_eq!(obj.license, "Dual BSD/GPL");
    assert_eq!(obj.kern_version, None);
    let names: Vec<_> = obj.maps.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["first_hits", "second_hits"]);
    let second = &obj.maps[1];
    assert_eq!(
        (
            second.map_type,
            second.key_size,
            second.value_size,
            second.max_entries,
            second.map_flags
        ),
        (map_type::HASH, 4, 8, 64, 1)
    );
    let [first, second] = &obj.programs[..] else {
        panic!("{obj}")
    };
    assert_eq!(
        (first.name.as_str(), second.name.as_str()),
        ("first", "second")
    );
    assert!(
        obj.programs
            .iter()
            .all(|p| p.section == "kprobe/vfs_read" && p.function == "vfs_read")
    );
    // Each relocation is counted from its own program's start.
    let maps = |p: &ObjProgram| p.map_relocs.iter().map(|r| r.map).collect::<Vec<_>>();
    assert_eq!(maps(first), [0]);
    assert_eq!(maps(second), [1, 0]);
    for p in [first, second] {
        for r in &p.map_relocs {
            assert_eq!(p.insns[r.insn].code, 0x18);
        }
    }
    let patched = second.relocated(&[10, 11]).unwrap();
    let fds: Vec<i32> = second
        .map_relocs
        .iter()
        .map(|r| patched[r.insn].imm)
        .collect();
    assert_eq!(fds, [11, 10]);
}

#[test]
fn perf_event_array_without_size_is_left_for_the_loader() {
    let data = built("perf_output");
    let obj = Object::parse(&data).unwrap();
    let [events] = &obj.maps[..] else {
        panic!("{obj}")
    };
    assert_eq!(
        (events.map_type, events.max_entries),
        (map_type::PERF_EVENT_ARRAY, 0)
    );
    let calls = helper_calls(&obj.programs[0].insns);
    assert_eq!(
        calls,
        [Helper::GetCurrentPidTgid.id(), Helper::PerfEventOutput.id()]
    );
    assert_eq!(
        obj.programs[0].map_relocs,
        [MapReloc {
            insn: obj.programs[0].map_relocs[0].insn,
            map: 0
        }]
    );
}

#[test]
fn debug_info_and_btf_are_ignored() {
    let dir = repo_root().join("tests/c");
    let source = std::fs::read_to_string(dir.join("unlink.bpf.c")).unwrap();
    // The copy compiles elsewhere: its pt_regs.h is found through -I.
    let include = format!("-I{}", dir.display());
    let (plain, with_btf) = (
        built("unlink"),
        compile("unlink_g", &source, &["-g", &include]),
    );
    assert!(
        with_btf.windows(8).any(|w| w == b".BTF.ext"),
        "clang -g writes BTF"
    );
    assert_eq!(
        Object::parse(&with_btf).unwrap(),
        Object::parse(&plain).unwrap()
    );
}

#[test]
fn summary_lists_maps_and_programs() {
    let data = built("unlink");
    let text = Object::parse(&data).unwrap().to_string();
    assert!(
        text.starts_with("license \"GPL\", version 0xfffffffe\n"),
        "{text}"
    );
    assert!(
        text.contains("map 0 unlink_count: type 2 key 4 value 8 entries 1 flags 0x0\n"),
        "{text}"
    );
    assert!(
        text.contains("program unlink_exit in kretprobe/do_unlinkat: 25 insns, maps []\n"),
        "{text}"
    );
}

// ---- malformed objects, made from the good one ----

fn patched(data: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out[at..at + bytes.len()].copy_from_slice(bytes);
    out
}

/// Replaces every occurrence of `from` by `to` (same length), e.g. in the
/// string table, where section names live.
fn renamed(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = data.to_vec();
    let mut hits = 0;
    for i in 0..=out.len() - from.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + to.len()].copy_from_slice(to);
            hits += 1;
        }
    }
    assert!(hits > 0, "{} not found", String::from_utf8_lossy(from));
    out
}

/// File offset of the first relocation of the entry program.
fn first_rel(data: &[u8]) -> usize {
    let file = ElfFile64::<LittleEndian>::parse(data).unwrap();
    let section = file.section_by_name(".relkprobe/do_unlinkat").unwrap();
    section.file_range().unwrap().0 as usize
}

#[test]
fn every_truncation_is_reported_as_such() {
    let data = built("unlink");
    for len in 0..data.len() {
        let err = parse_err(&data[..len]);
        match err {
            ObjError::NotElf if len < 4 => {}
            ObjError::Truncated { len: l, need, .. } if l == len as u64 && need > l => {}
            other => panic!("cut at {len}: {other}"),
        }
    }
    let msg = parse_err(&data[..data.len() - 1]).to_string();
    assert!(
        msg.starts_with("truncated ELF: the section header table needs bytes up to"),
        "{msg}"
    );
}

#[test]
fn header_errors_name_the_cause() {
    let data = built("unlink");
    assert_eq!(parse_err(b"#!/bin/sh\necho hi\n"), ObjError::NotElf);
    assert_eq!(
        parse_err(&patched(&data, 4, &[1])),
        ObjError::NotElf64 { class: 1 }
    );
    assert_eq!(parse_err(&patched(&data, 5, &[2])), ObjError::BigEndian);
    // e_type at 16, e_machine at 18.
    assert_eq!(
        parse_err(&patched(&data, 16, &[2, 0])),
        ObjError::NotRelocatable { e_type: 2 }
    );
    let x86 = parse_err(&patched(&data, 18, &62u16.to_le_bytes()));
    assert_eq!(x86, ObjError::WrongMachine { machine: 62 });
    assert!(
        x86.to_string()
            .starts_with("ELF machine 62 (x86-64) is not BPF (247)"),
        "{x86}"
    );
}

#[test]
fn bad_relocations_are_refused_with_their_cause() {
    let data = built("unlink");
    let rel = first_rel(&data);
    let reloc = |at: usize, bytes: &[u8]| match parse_err(&patched(&data, at, bytes)) {
        ObjError::BadRelocation { program, cause, .. } => {
            assert_eq!(program, "unlink_entry");
            cause
        }
        other => panic!("{other}"),
    };
    // r_offset past the section, off an instruction boundary, on insn 0.
    let size = Object::parse(&data).unwrap().programs[0].insns.len() as u64 * 8;
    assert_eq!(
        reloc(rel, &0x1000u64.to_le_bytes()),
        RelocCause::OutOfRange { size }
    );
    assert_eq!(reloc(rel, &0x0au64.to_le_bytes()), RelocCause::Misaligned);
    assert!(
        matches!(reloc(rel, &0u64.to_le_bytes()), RelocCause::NotLdImm64 { code } if code != 0x18)
    );
    // r_info: type in the low 32 bits, symbol in the high 32.
    assert_eq!(
        reloc(rel + 8, &[10]),
        RelocCause::UnsupportedType { r_type: 10 }
    );
    assert_eq!(
        reloc(rel + 12, &999u32.to_le_bytes()),
        RelocCause::UnknownSymbol { index: 999 }
    );
    // Symbol 1 is the file symbol: no section, not a map.
    assert!(matches!(
        reloc(rel + 12, &1u32.to_le_bytes()),
        RelocCause::NotAMap { .. }
    ));
}

#[test]
fn unknown_program_sections_are_refused() {
    let data = built("unlink");
    let err = parse_err(&renamed(
        &data,
        b"kretprobe/do_unlinkat",
        b"uretprobe/do_unlinkat",
    ));
    assert_eq!(
        err,
        ObjError::UnsupportedSection {
            section: "uretprobe/do_unlinkat".into(),
            kind: "`uretprobe` program".into()
        }
    );
    let err = parse_err(&renamed(
        &data,
        b"kretprobe/do_unlinkat",
        b"kretprobX/do_unlinkat",
    ));
    assert!(
        matches!(err, ObjError::UnsupportedSection { ref kind, .. } if kind == "unknown"),
        "{err}"
    );
    // libbpf's `kprobe/fn+off`: nobtf attaches at function entry only.
    let err = parse_err(&renamed(
        &data,
        b"kprobe/do_unlinkat",
        b"kprobe/do_unlink+8",
    ));
    assert!(
        matches!(err, ObjError::UnsupportedSection { ref section, ref kind }
            if section == "kprobe/do_unlink+8" && kind.contains("offsets are not supported")),
        "{err}"
    );
}

#[test]
fn missing_license_is_refused() {
    let data = built("unlink");
    assert_eq!(
        parse_err(&renamed(&data, b"license\0", b"licenze\0")),
        ObjError::MissingLicense
    );
}

#[test]
fn extra_map_fields_must_be_zero() {
    let data = built("two_in_one");
    let file = ElfFile64::<LittleEndian>::parse(&*data).unwrap();
    let maps = file
        .section_by_name("maps")
        .unwrap()
        .file_range()
        .unwrap()
        .0 as usize;
    // inner_map_idx (bytes 20..24) of the second map.
    let err = parse_err(&patched(&data, maps + 28 + 20, &[1]));
    assert_eq!(
        err,
        ObjError::MapExtraFields {
            map: "second_hits".into(),
            stride: 28,
            from: 20,
            to: 21
        }
    );
}

// ---- what is refused by design, from real clang output ----

#[test]
fn bpf_printk_style_rodata_is_global_data() {
    let data = snippet(
        "rodata",
        "SEC(\"kprobe/do_unlinkat\") int p(void *ctx) {
                static const char fmt[] = \"hello %d\\n\";
                return bpf_trace_printk(fmt, sizeof(fmt), 1);
            }",
        &[],
    );
    let obj = Object::parse(&data).unwrap();
    let [rodata] = &obj.data[..] else {
        panic!("{obj}")
    };
    assert!(
        rodata.name.starts_with(".rodata") && rodata.read_only,
        "{obj}"
    );
    assert_eq!(
        obj.programs[0].data_relocs,
        [DataReloc {
            insn: 0,
            data: 0,
            offset: rodata.symbols[0].offset as u32
        }]
    );
    assert_eq!(&rodata.bytes[..10], b"hello %d\n\0");
    // Only `prepare` may place it: loading the addend as a pointer would be wrong.
    let err = obj.programs[0].relocated(&[]).unwrap_err();
    assert_eq!(
        err,
        ObjError::GlobalData {
            program: "p".into(),
            insn: 0
        }
    );
}

#[test]
fn co_re_relocations_are_read_and_left_for_prepare() {
    let source = "struct filename { const char *name; const char *uptr; int refcnt; }
            __attribute__((preserve_access_index));
        SEC(\"kprobe/do_unlinkat\") int p(unsigned long *ctx) {
            struct filename *f = (void *)ctx[13];
            int refcnt;
            bpf_probe_read(&refcnt, 4, &f->refcnt);
            return refcnt;
        }";
    let data = snippet("core", source, &["-g"]);
    let obj = Object::parse(&data).unwrap();
    let [reloc] = &obj.programs[0].core_relocs[..] else {
        panic!("{:?}", obj.programs[0].core_relocs)
    };
    assert_eq!(reloc.field.key(), "filename.refcnt");
    assert_eq!(
        (reloc.kind, reloc.local),
        (
            CoreKind::ByteOffset,
            LocalField {
                offset: 16,
                size: 4,
                signed: true
            }
        )
    );
    assert_eq!(obj.needed_fields(), ["filename.refcnt"]);
    assert_eq!(
        obj.programs[0].relocated(&[]),
        Err(ObjError::CoRe { count: 1 })
    );
    // Without -g clang writes no BTF, so the offsets are fixed and it loads.
    let plain = snippet("core_g0", source, &["-g0"]);
    assert_eq!(Object::parse(&plain).unwrap().programs.len(), 1);
}

#[test]
fn btf_defined_maps_are_refused() {
    let data = snippet(
        "btf_maps",
        "struct { int (*type)[2]; int (*max_entries)[1]; __u32 *key; __u64 *value; }
                counts SEC(\".maps\");
            SEC(\"kprobe/do_unlinkat\") int p(void *ctx) { return 0; }",
        &["-g"],
    );
    assert_eq!(parse_err(&data), ObjError::BtfMaps);
}

#[test]
fn bpf_to_bpf_calls_are_refused() {
    let data = snippet(
        "subprog",
        "__attribute__((noinline)) int twice(int x) { return bpf_trace_printk(0, 0) * x; }
            SEC(\"kprobe/do_unlinkat\") int p(void *ctx) { return twice(3); }",
        &[],
    );
    let err = parse_err(&data);
    assert!(
        matches!(err, ObjError::BpfToBpfCall { ref program, .. } if program == "p"),
        "{err}"
    );
}

#[test]
fn objects_without_programs_or_function_are_refused() {
    let data = snippet("empty", "", &[]);
    assert_eq!(parse_err(&data), ObjError::NoPrograms);
    let data = snippet(
        "nofn",
        "SEC(\"kprobe\") int p(void *ctx) { return 0; }",
        &[],
    );
    assert_eq!(
        parse_err(&data),
        ObjError::NoFunction {
            section: "kprobe".into()
        }
    );
}

#[test]
fn every_error_is_one_line() {
    let data = built("unlink");
    let mut errors = vec![
        parse_err(&data[..100]),
        parse_err(b"nope"),
        parse_err(&patched(&data, 18, &[62, 0])),
        parse_err(&renamed(&data, b"license\0", b"licenze\0")),
    ];
    errors.push(
        Object::parse(&data).unwrap().programs[0]
            .relocated(&[])
            .unwrap_err(),
    );
    for err in errors {
        let text = err.to_string();
        assert!(!text.contains('\n') && text.contains(": "), "{text}");
    }
}

// ---- no input panics ----

#[test]
fn every_single_byte_change_is_handled() {
    let data = built("two_in_one");
    for at in 0..data.len() {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mutated = patched(&data, at, &[data[at] ^ value]);
            if let Ok(obj) = Object::parse(&mutated) {
                for p in &obj.programs {
                    let _ = p.relocated(&[3, 4]);
                }
            }
        }
    }
}

fn good_object() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| built("unlink"))
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Object::parse(&data);
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.extend_from_slice(&data);
        let _ = Object::parse(&elf);
    }

    #[test]
    fn mutated_objects_never_panic(
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let good = good_object();
        let mut data = good.to_vec();
        for (at, byte) in changes {
            let at = at.index(data.len());
            data[at] = byte;
        }
        if truncate {
            data.truncate(cut.index(data.len()));
        }
        if let Ok(obj) = Object::parse(&data) {
            for p in &obj.programs {
                let _ = p.relocated(&[3]);
            }
        }
    }
}

mod seed;
