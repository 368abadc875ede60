//! The seed's programs (bpf-object/testdata), compiled as libbpf-bootstrap
//! compiles them (`clang -target bpf -D__TARGET_ARCH_x86 -O2 -g` with
//! libbpf-dev's headers), prepared for old and new kernels and run in the
//! interpreter against fake kernel memory. They need clang and libbpf-dev
//! (scripts/test installs both) and fail without them.

use kernel_headers::KernelVersion;
use kernel_headers::bpf::{Helper, PSEUDO_MAP_VALUE, class, reg};
use probes::interp::{Space, Vm, fake_pt_regs_of};

const X86_64: &kernel_headers::pt_regs::Abi = &kernel_headers::pt_regs::x86_64::ABI;

use super::*;

const FILENAME_ADDR: u64 = 0xffff_8880_0000_1000;
const PATH_ADDR: u64 = 0xffff_8880_0000_2000;
const PID: u64 = 4242;
const SEED_LINE: &str = "KPROBE ENTRY pid = 4242, refcnt=1 filename = /tmp/a.txt";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Fails the test when libbpf's headers are missing, as clang does.
fn require_libbpf() {
    let header = Path::new("/usr/include/bpf/bpf_helpers.h");
    assert!(
        header.exists(),
        "{} not found: these tests build the seed with libbpf's headers; install libbpf-dev",
        header.display()
    );
}

/// `testdata/<name>.bpf.c` built the libbpf-bootstrap way.
fn seed(name: &str) -> Vec<u8> {
    seed_for(name, "x86")
}

/// The same for another `__TARGET_ARCH_*` (`arm64`, `arm`).
fn seed_for(name: &str, target_arch: &str) -> Vec<u8> {
    require_clang();
    require_libbpf();
    let multiarch = Command::new("clang")
        .arg("-print-multiarch")
        .output()
        .expect("clang -print-multiarch");
    // <linux/types.h> includes <asm/types.h>, which lives in the multiarch
    // directory: libbpf-bootstrap passes clang's system includes the same way.
    let arch_include = format!(
        "-I/usr/include/{}",
        String::from_utf8_lossy(&multiarch.stdout).trim()
    );
    let dir = out_dir().join("seed");
    std::fs::create_dir_all(&dir).unwrap();
    let o = dir.join(format!("{name}_{target_arch}.o"));
    let target = format!("-D__TARGET_ARCH_{target_arch}");
    let source = testdata().join(format!("{name}.bpf.c"));
    clang_bpf(name, &["-g", &target, &arch_include], &source, &o)
}

/// A kernel of `version`: global data from 5.2, each helper from its release.
fn prepare_for(
    obj: &Object,
    version: KernelVersion,
    fields: &dyn FieldSource,
) -> Result<Prepared, ObjError> {
    let mut has = |h: Helper| h.since() <= version;
    let mut kernel = KernelFacts {
        global_data: version >= KernelVersion::new(5, 2, 0),
        has_helper: &mut has,
    };
    obj.prepare(&mut kernel, fields)
}

/// Runs a prepared kprobe with `struct filename` at FILENAME_ADDR (name at
/// +0, refcnt at `refcnt_at`) as its second argument; returns the trace pipe.
fn run_entry(program: &ReadyProgram, refcnt_at: usize) -> Vec<String> {
    let mut filename = vec![0u8; 48];
    filename[..8].copy_from_slice(&PATH_ADDR.to_le_bytes());
    filename[refcnt_at..refcnt_at + 4].copy_from_slice(&1i32.to_le_bytes());
    let mut vm = Vm::new();
    vm.pid_tgid = PID << 32 | 7;
    vm.map(Space::Kernel, FILENAME_ADDR, filename).unwrap();
    vm.map(Space::Kernel, PATH_ADDR, b"/tmp/a.txt\0".to_vec())
        .unwrap();
    // The seed object is built for x86-64: its registers, on any host.
    let ctx = fake_pt_regs_of(X86_64, &[("di", u64::MAX - 99), ("si", FILENAME_ADDR)]).unwrap();
    let insns = program.relocated(&[]).unwrap();
    assert_eq!(vm.run(&insns, &ctx).unwrap(), 0);
    vm.trace_pipe
}

fn log_lines(prepared: &Prepared) -> Vec<String> {
    prepared.log.iter().map(ToString::to_string).collect()
}

// ---- the non-CO-RE seed ----

#[test]
fn seed_reads_its_printk_formats_from_rodata() {
    let obj = Object::parse(&seed("seed_kprobe")).unwrap();
    let [rodata] = &obj.data[..] else {
        panic!("{obj}")
    };
    assert_eq!(rodata.name, ".rodata");
    assert!(rodata.read_only);
    let [entry, exit] = &obj.programs[..] else {
        panic!("{obj}")
    };
    assert_eq!(
        (entry.name.as_str(), exit.name.as_str()),
        ("do_unlinkat", "do_unlinkat_exit")
    );
    let format = |p: &ObjProgram| {
        let r = p.data_relocs[0];
        let start = r.offset as usize;
        let end = start + rodata.bytes[start..].iter().position(|&b| b == 0).unwrap();
        String::from_utf8_lossy(&rodata.bytes[start..end]).into_owned()
    };
    assert_eq!(
        format(entry),
        "KPROBE ENTRY pid = %d, refcnt=%d filename = %s"
    );
    assert_eq!(format(exit), "KPROBE EXIT: pid = %d, ret = %ld");
    assert!(entry.core_relocs.is_empty() && obj.needed_fields().is_empty());
}

/// Before 5.2 (no global data maps) and 5.5 (no probe_read_kernel).
const OLD: KernelVersion = KernelVersion::new(4, 19, 0);

#[test]
fn seed_on_4_19_copies_the_format_to_the_stack_and_falls_back_to_probe_read() {
    let obj = Object::parse(&seed("seed_kprobe")).unwrap();
    let prepared = prepare_for(&obj, OLD, &NoFields).unwrap();
    assert_eq!(prepared.maps, [], "no map for .rodata before 5.2");
    let entry = &prepared.programs[0];
    assert!(entry.map_refs.is_empty());
    let calls = helper_calls(&entry.insns);
    assert_eq!(
        calls,
        [
            Helper::GetCurrentPidTgid.id(),
            Helper::ProbeRead.id(),
            Helper::ProbeRead.id(),
            Helper::TracePrintk.id()
        ]
    );
    assert_eq!(
        log_lines(&prepared),
        [
            "do_unlinkat: 2 call(s) to bpf_probe_read_kernel now call bpf_probe_read (this kernel lacks the former)",
            // The program uses r10-8..r10-12: the 47-byte format goes below,
            // 48 bytes at -64, written as 12 words of text.
            "do_unlinkat: 47 bytes of .rodata+0 copied to the stack at r10-64 by 12 store(s) (no global data maps before 5.2)",
            // The last word `%ld\0` and padding fits one sign-extended doubleword store.
            "do_unlinkat_exit: 33 bytes of .rodata+47 copied to the stack at r10-40 by 9 store(s) (no global data maps before 5.2)",
        ]
    );
    assert_eq!(run_entry(entry, 16), [SEED_LINE]);

    let exit = &prepared.programs[1];
    let mut vm = Vm::new();
    vm.pid_tgid = PID << 32;
    let ctx = fake_pt_regs_of(X86_64, &[("ax", (-2i64) as u64)]).unwrap();
    vm.run(&exit.relocated(&[]).unwrap(), &ctx).unwrap();
    assert_eq!(vm.trace_pipe, ["KPROBE EXIT: pid = 4242, ret = -2"]);
}

#[test]
fn seed_on_4_14_is_the_same_program_as_on_4_19() {
    let obj = Object::parse(&seed("seed_kprobe")).unwrap();
    let older = prepare_for(&obj, KernelVersion::new(4, 14, 0), &NoFields).unwrap();
    assert_eq!(older, prepare_for(&obj, OLD, &NoFields).unwrap());
}

#[test]
fn seed_on_5_4_uses_a_rodata_map_and_falls_back_to_probe_read() {
    let obj = Object::parse(&seed("seed_kprobe")).unwrap();
    let prepared = prepare_for(&obj, KernelVersion::new(5, 4, 0), &NoFields).unwrap();
    assert_eq!(prepared.maps.len(), 1);
    assert_eq!(
        log_lines(&prepared),
        [
            "do_unlinkat: 2 call(s) to bpf_probe_read_kernel now call bpf_probe_read (this kernel lacks the former)",
            "do_unlinkat: 1 reference(s) to .rodata use its global data map",
            "do_unlinkat_exit: 1 reference(s) to .rodata use its global data map"
        ]
    );
    let entry = &prepared.programs[0];
    assert_eq!(entry.insns.len(), obj.programs[0].insns.len());
    assert_eq!(
        helper_calls(&entry.insns)[1..3],
        [Helper::ProbeRead.id(), Helper::ProbeRead.id()]
    );
}

#[test]
fn seed_on_6_1_uses_a_frozen_rodata_map_and_the_kernel_helpers() {
    let obj = Object::parse(&seed("seed_kprobe")).unwrap();
    let prepared = prepare_for(&obj, KernelVersion::new(6, 1, 0), &NoFields).unwrap();
    let [rodata] = &prepared.maps[..] else {
        panic!("{:?}", prepared.maps)
    };
    assert_eq!(
        (
            rodata.def.name.as_str(),
            rodata.def.map_type,
            rodata.def.key_size,
            rodata.def.value_size,
            rodata.def.max_entries
        ),
        (".rodata", map_type::ARRAY, 4, 0x50, 1)
    );
    let data = rodata.data.as_ref().unwrap();
    assert!(data.read_only);
    assert_eq!(data.initial, obj.data[0].bytes);
    for (program, offset) in prepared.programs.iter().zip([0, 47]) {
        let original = &obj
            .programs
            .iter()
            .find(|p| p.name == program.name)
            .unwrap()
            .insns;
        assert_eq!(program.insns, *original, "nothing else changes on 6.1");
        let [r] = program.map_refs[..] else {
            panic!("{:?}", program.map_refs)
        };
        assert_eq!((r.map, r.value_offset), (0, Some(offset)));
        let insns = program.relocated(&[9]).unwrap();
        assert_eq!(
            (
                insns[r.insn].src(),
                insns[r.insn].imm,
                insns[r.insn + 1].imm
            ),
            (PSEUDO_MAP_VALUE, 9, offset as i32)
        );
    }
    assert_eq!(
        log_lines(&prepared),
        [
            "do_unlinkat: 1 reference(s) to .rodata use its global data map",
            "do_unlinkat_exit: 1 reference(s) to .rodata use its global data map"
        ]
    );
}

// ---- the CO-RE seed ----

fn core_seed() -> Object {
    Object::parse(&seed("seed_core")).unwrap()
}

#[test]
fn co_re_seed_needs_filename_fields_and_pt_regs() {
    let obj = core_seed();
    assert_eq!(obj.needed_fields(), ["filename.name", "filename.refcnt"]);
    let keys: Vec<(String, CoreKind)> = obj.programs[0]
        .core_relocs
        .iter()
        .map(|r| (r.field.key(), r.kind))
        .collect();
    assert_eq!(
        keys,
        [
            ("pt_regs.si".to_string(), CoreKind::ByteOffset),
            ("filename.name".to_string(), CoreKind::ByteOffset),
            ("filename.refcnt".to_string(), CoreKind::ByteOffset),
        ]
    );
    let exit: Vec<String> = obj.programs[1]
        .core_relocs
        .iter()
        .map(|r| r.field.key())
        .collect();
    assert_eq!(exit, ["pt_regs.ax"]);
}

/// Built for ARM, BPF_KPROBE reads the arguments as elements of the
/// register array, which the architecture answers as it does `pt_regs.si`.
#[test]
fn co_re_seed_for_arm_reads_register_array_elements() {
    for (arch, regs) in [("arm64", "user_pt_regs.regs"), ("arm", "pt_regs.uregs")] {
        let obj = Object::parse(&seed_for("seed_core", arch)).unwrap();
        assert_eq!(obj.needed_fields(), ["filename.name", "filename.refcnt"]);
        let fields = |p: usize| -> Vec<String> {
            obj.programs[p]
                .core_relocs
                .iter()
                .map(|r| r.field.key())
                .collect()
        };
        assert_eq!(
            fields(0),
            [
                format!("{regs}[1]"),
                "filename.name".into(),
                "filename.refcnt".into()
            ],
            "{arch}"
        );
        assert_eq!(fields(1), [format!("{regs}[0]")], "{arch}");
    }
}

#[test]
fn co_re_seed_with_a_profile_runs_without_btf() {
    let obj = core_seed();
    let profile = profile::builtin::for_version("x86_64", KernelVersion::new(5, 4, 0))
        .unwrap()
        .profile("5.4.286");
    let prepared = prepare_for(&obj, OLD, &profile).unwrap();
    let lines = log_lines(&prepared);
    assert!(
        lines.contains(&"do_unlinkat: instruction 10: byte offset of filename.refcnt is 16 (the object had 16)".to_string()),
        "{lines:#?}"
    );
    assert_eq!(run_entry(&prepared.programs[0], 16), [SEED_LINE]);
}

#[test]
fn co_re_seed_follows_the_profile_when_the_layout_differs() {
    let obj = core_seed();
    let mut profile = profile::builtin::for_version("x86_64", KernelVersion::new(5, 4, 0))
        .unwrap()
        .profile("moved");
    profile.fields.insert(
        "filename.refcnt".into(),
        profile::Field::typed(24, 4, "int"),
    );
    let prepared = prepare_for(&obj, OLD, &profile).unwrap();
    let entry = &prepared.programs[0];
    // Instruction 10 of the object, `r1 = 16`, moved down by the prologue.
    let moved = entry
        .insns
        .iter()
        .filter(|i| i.code == class::ALU64 | 0xb0 && i.dst() == reg::R1 && i.imm == 24)
        .count();
    assert_eq!(moved, 1, "the ALU immediate now holds 24");
    assert_eq!(run_entry(entry, 24), [SEED_LINE]);
    // With the old offset the count reads as 0: the patch is what matters.
    assert_ne!(run_entry(entry, 16), [SEED_LINE]);
}

#[test]
fn co_re_seed_against_kernel_btf() {
    let data = seed("seed_core");
    let obj = Object::parse(&data).unwrap();
    // The object's own BTF stands in for a kernel's: the same layout.
    let file = ElfFile64::<LittleEndian>::parse(&*data).unwrap();
    let btf_bytes = file.section_by_name(".BTF").unwrap().data().unwrap();
    let kernel_btf = btf::Btf::parse(btf_bytes).unwrap();
    assert_eq!(
        kernel_btf.lookup("filename", "refcnt"),
        Lookup::Found(Field {
            offset: 16,
            size: 4,
            c_type: Some("int".into())
        })
    );
    assert_eq!(
        FieldSource::is_signed(&kernel_btf, "filename", "refcnt"),
        Some(true)
    );
    assert_eq!(kernel_btf.lookup("filename", "nope"), Lookup::Absent);
    let prepared = prepare_for(&obj, KernelVersion::new(6, 1, 0), &kernel_btf).unwrap();
    let entry = &prepared.programs[0];
    let original = &obj.programs[0].insns;
    assert_eq!(entry.insns, *original, "same layout: nothing moves");
}

#[test]
fn co_re_without_a_source_names_the_field_to_generate() {
    let obj = core_seed();
    let err = prepare_for(&obj, KernelVersion::new(5, 4, 0), &NoFields).unwrap_err();
    assert_eq!(
        err.to_string(),
        "program `do_unlinkat` instruction 3 needs field `filename.name` (byte offset), which \
         the offsets source does not know: `offsets gen --field filename.name` adds it to the profile"
    );
}

// ---- what is refused, from real clang output ----

#[test]
fn writable_globals_need_5_2() {
    let data = snippet(
        "bss",
        "__u64 hits;
        SEC(\"kprobe/do_unlinkat\") int p(void *ctx) { hits++; return 0; }",
        &[],
    );
    let obj = Object::parse(&data).unwrap();
    let err = prepare_for(&obj, KernelVersion::new(5, 1, 0), &NoFields).unwrap_err();
    assert_eq!(
        err.to_string(),
        "program `p` uses writable global data in `.bss`, which needs global data maps \
         (BPF_PSEUDO_MAP_VALUE, 5.2+) and this kernel has none: keep state in a map \
         (`struct bpf_map_def SEC(\"maps\")`) or make it `const`"
    );
    let prepared = prepare_for(&obj, KernelVersion::new(5, 2, 0), &NoFields).unwrap();
    let [bss] = &prepared.maps[..] else {
        panic!("{:?}", prepared.maps)
    };
    assert_eq!(
        bss.data,
        Some(DataMap {
            section: ".bss".into(),
            initial: vec![0; 8],
            read_only: false
        })
    );
}

#[test]
fn constants_beyond_the_stack_are_refused() {
    let long = "x".repeat(500);
    let data = snippet(
        "long_fmt",
        &format!(
            "SEC(\"kprobe/do_unlinkat\") int p(void *ctx) {{
                static const char fmt[] = \"{long}\";
                char buf[16] = {{}};
                bpf_probe_read(buf, sizeof(buf), ctx);
                return bpf_trace_printk(fmt, sizeof(fmt), buf[3]);
            }}"
        ),
        &[],
    );
    let obj = Object::parse(&data).unwrap();
    let err = prepare_for(&obj, KernelVersion::new(4, 19, 0), &NoFields).unwrap_err();
    assert_eq!(
        err,
        ObjError::StackFull {
            program: "p".into(),
            section: obj.data[0].name.clone(),
            used: 16,
            need: 504
        }
    );
    assert!(err.to_string().contains("and a program has 512"), "{err}");
}

#[test]
fn type_relocations_are_refused_clearly() {
    let data = snippet(
        "type_exists",
        "struct task_struct { int pid; } __attribute__((preserve_access_index));
        SEC(\"kprobe/do_unlinkat\") int p(void *ctx) {
            return __builtin_preserve_type_info(*(struct task_struct *)0, 0);
        }",
        &["-g"],
    );
    let err = parse_err(&data);
    assert!(
        matches!(err, ObjError::CoreUnsupported { kind: "type", ref what, .. } if what == "task_struct"),
        "{err}"
    );
}

// ---- no input panics, prepared too ----

fn core_seed_bytes() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| seed("seed_core"))
}

proptest! {
    #[test]
    fn mutated_co_re_objects_never_panic_when_prepared(
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut data = core_seed_bytes().to_vec();
        for (at, byte) in changes {
            let at = at.index(data.len());
            data[at] = byte;
        }
        if let Ok(obj) = Object::parse(&data) {
            let profile = profile::builtin::for_version("x86_64", KernelVersion::new(5, 4, 0))
                .unwrap()
                .profile("5.4");
            for version in [OLD, KernelVersion::new(6, 1, 0)] {
                if let Ok(prepared) = prepare_for(&obj, version, &profile) {
                    for p in &prepared.programs {
                        let _ = p.relocated(&[1, 2, 3]);
                    }
                }
            }
            let _ = obj.needed_fields();
        }
    }
}

// ---- more of what clang writes ----

#[test]
fn string_literals_in_rodata_str_sections_go_to_the_stack_too() {
    let data = snippet(
        "literal",
        "SEC(\"kprobe/do_unlinkat\") int p(void *ctx) {
            bpf_trace_printk(\"first %d\\n\", 10, 1);
            return bpf_trace_printk(\"second %d\\n\", 11, 2);
        }",
        &[],
    );
    let obj = Object::parse(&data).unwrap();
    assert!(
        obj.data.iter().any(|d| d.name.starts_with(".rodata.str")),
        "{obj}"
    );
    let prepared = prepare_for(&obj, OLD, &NoFields).unwrap();
    let mut vm = Vm::new();
    vm.run(&prepared.programs[0].relocated(&[]).unwrap(), &[0; 8])
        .unwrap();
    assert_eq!(vm.trace_pipe, ["first 1\n", "second 2\n"]);
}

#[test]
fn every_field_relocation_kind_from_clang() {
    // offset * 10^6 + size * 10^4 + exists * 1000 + signed * 100 + rshift.
    let data = snippet(
        "field_info",
        "struct filename { const char *name; const char *uptr; int refcnt; }
            __attribute__((preserve_access_index));
        SEC(\"kprobe/do_unlinkat\") int p(void *ctx) {
            struct filename *f = 0;
            return __builtin_preserve_field_info(f->refcnt, 0) * 1000000
                + __builtin_preserve_field_info(f->refcnt, 1) * 10000
                + __builtin_preserve_field_info(f->refcnt, 2) * 1000
                + __builtin_preserve_field_info(f->refcnt, 3) * 100
                + __builtin_preserve_field_info(f->refcnt, 5);
        }",
        &["-g"],
    );
    let obj = Object::parse(&data).unwrap();
    let kinds: Vec<CoreKind> = obj.programs[0].core_relocs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            CoreKind::ByteOffset,
            CoreKind::ByteSize,
            CoreKind::Exists,
            CoreKind::Signed,
            CoreKind::RShiftU64
        ]
    );
    let run = |fields: &dyn FieldSource| {
        let prepared = prepare_for(&obj, OLD, fields).unwrap();
        let insns = prepared.programs[0].relocated(&[]).unwrap();
        Vm::new().run(&insns, &[0; 8]).unwrap() as u32
    };
    let field = |offset, size| {
        let mut profile = profile::builtin::for_version("x86_64", KernelVersion::new(5, 4, 0))
            .unwrap()
            .profile("t");
        profile.fields.insert(
            "filename.refcnt".into(),
            profile::Field::typed(offset, size, "int"),
        );
        profile
    };
    // As compiled: offset 16, size 4, exists, signed int, shift 32.
    assert_eq!(run(&field(16, 4)), 16_041_132);
    // A kernel with a 64-bit count at 24: the profile's size, the object's sign.
    assert_eq!(run(&field(24, 8)), 24_081_100);
}
