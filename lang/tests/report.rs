//! Compiled programs run in probes' interpreter, their records and maps
//! pushed through `lang::report` as the loader does, and the bytes compared
//! with what bpftrace 0.23.2 printed for the same values
//! (`src/format/golden/glue*.bt`, BEGIN programs doing what these events
//! do; regenerate with `src/format/golden/regen`).

use std::collections::HashMap;

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::NATIVE;
use lang::format::{HistParams, LhistParams};
use lang::kernel::Kernel;
use lang::output::EVENTS_MAP;
use lang::report::{self, Format, Step};
use lang::tracepoint::NoTracepoints;
use lang::{Compiled, Target, compile};
use probes::interp::{Vm, fake_pt_regs};

const EVENTS_FD: i32 = 100;

fn build(src: &str) -> Compiled {
    let fields: Vec<(&str, lang::fields::FieldInfo)> = Vec::new();
    let target = Target {
        fields: &fields,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
    };
    compile(src, &target).unwrap_or_else(|e| panic!("{}", e.render(src)))
}

fn regs(args: &[u64]) -> Vec<u8> {
    let named: Vec<(&str, u64)> = args
        .iter()
        .zip(NATIVE.args)
        .map(|(&v, &(name, _))| (name, v))
        .collect();
    fake_pt_regs(&named).unwrap()
}

/// The interpreter standing in for the kernel: one CPU runs the programs,
/// a second one never does (its per-CPU values stay zero, as the kernel
/// reports them), and `clear` gives a map a fresh, empty table.
struct Kernelish<'a> {
    compiled: &'a Compiled,
    vm: Vm,
    fds: HashMap<String, i32>,
    next_fd: i32,
    records_read: usize,
}

impl<'a> Kernelish<'a> {
    fn new(compiled: &'a Compiled) -> Self {
        let mut vm = Vm::new();
        vm.perf_map_fd = EVENTS_FD;
        let mut k = Kernelish {
            compiled,
            vm,
            fds: HashMap::new(),
            next_fd: 1,
            records_read: 0,
        };
        for m in &compiled.maps {
            k.fresh_map(&m.name);
        }
        k
    }

    fn fresh_map(&mut self, name: &str) {
        let spec = report::find_map(self.compiled, name).unwrap();
        let fd = self.next_fd;
        self.next_fd += 1;
        let (key, value) = (spec.key_size as usize, spec.value_size as usize);
        self.vm
            .add_map(fd, spec.map_type(), key, value, spec.max_entries);
        self.fds.insert(name.to_string(), fd);
    }

    fn run(&mut self, func: &str, args: &[u64], comm: &[u8]) {
        let probe = self
            .compiled
            .probes
            .iter()
            .find(|p| p.attach.func() == func)
            .unwrap();
        self.vm.comm = [0; 16];
        self.vm.comm[..comm.len()].copy_from_slice(comm);
        let fds = &self.fds;
        let raw = probe
            .encode(|name| {
                if name == EVENTS_MAP {
                    Some(EVENTS_FD)
                } else {
                    fds.get(name).copied()
                }
            })
            .unwrap();
        assert_eq!(self.vm.run(&raw, &regs(args)), Ok(0), "{}", probe.insns);
    }

    fn new_records(&mut self) -> Vec<Vec<u8>> {
        let new = self.vm.perf_output[self.records_read..].to_vec();
        self.records_read = self.vm.perf_output.len();
        new
    }

    /// A map's entries as the loader reads them: key, then each CPU's value.
    fn entries(&self, name: &str) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
        let spec = report::find_map(self.compiled, name).unwrap();
        self.vm
            .map_entries(self.fds[name])
            .into_iter()
            .map(|(key, value)| {
                let idle = vec![0; value.len()];
                let per_cpu = if spec.per_cpu {
                    vec![value, idle]
                } else {
                    vec![value]
                };
                (spec.program_key(&key), per_cpu)
            })
            .filter(|(_, per_cpu)| spec.present(per_cpu))
            .collect()
    }
}

/// Runs `events` (probe function, args, comm) and returns everything the
/// loader would print, exit maps included.
fn trace(src: &str, events: &[(&str, Vec<u64>, &[u8])], format: Format) -> String {
    let compiled = build(src);
    let mut kernel = Kernelish::new(&compiled);
    let mut out = report::attached_probes(1, format).into_bytes();
    'events: for (func, args, comm) in events {
        kernel.run(func, args, comm);
        for record in kernel.new_records() {
            match report::record(&compiled, format, &record).unwrap() {
                Step::Write(bytes) => out.extend(bytes),
                Step::PrintMap(name) => {
                    let spec = report::find_map(&compiled, &name).unwrap();
                    out.extend(report::print_map(spec, &kernel.entries(&name), format).unwrap());
                }
                Step::PrintMapTop { map, top, div } => {
                    let spec = report::find_map(&compiled, &map).unwrap();
                    let entries = kernel.entries(&map);
                    out.extend(report::print_map_top(spec, &entries, format, top, div).unwrap());
                }
                Step::ClearMap(name) => kernel.fresh_map(&name),
                Step::Cat(path) => out.extend(report::cat(format, &path)),
                Step::System(command) => out.extend(report::system(format, &command)),
                Step::Exit => break 'events,
            }
        }
    }
    let contents: Vec<_> = compiled
        .maps
        .iter()
        .map(|m| (m, kernel.entries(&m.name)))
        .collect();
    let maps: Vec<_> = contents.iter().map(|(m, e)| (*m, e.as_slice())).collect();
    out.extend(report::exit_maps(&maps, format).unwrap());
    String::from_utf8(out).unwrap()
}

/// The program the golden BEGIN block mirrors, and the events it runs on.
const GLUE: &str = r#"
kprobe:count { @c[comm] = count(); @total = count(); }
kprobe:show { print(@c); clear(@total); print(@total); }
kprobe:sums { @s = sum((int64)arg0); @us = sum(arg0); @a = avg((int64)arg0); @ua[comm] = avg(arg0); }
kprobe:minmax { @mn = min((int64)arg0); @mx = max((int64)arg0); @umn = min(arg0); @umx = max(arg0); }
kprobe:hists { @h = hist((int64)arg0); @l = lhist((int64)arg0, 0, 100, 10); @hk[arg1] = hist(arg0); }
kprobe:keys { @k[(int64)arg0, comm] = arg1; @str[arg0] = comm; @last = (int32)arg1; }
kprobe:p { printf("%s %d %u %x|%5s|\n", comm, (int64)arg0, arg0, arg1, comm); }
kprobe:never { @untouched = count(); @empty[arg0] = count(); @ea = avg(arg0); }
kprobe:bye { exit(); }
kprobe:after { printf("not printed\n"); }
"#;

fn glue_events() -> Vec<(&'static str, Vec<u64>, &'static [u8])> {
    let mut events: Vec<(&str, Vec<u64>, &[u8])> = Vec::new();
    for comm in [
        &b"bash"[..],
        b"bash",
        b"rm",
        "é\"x".as_bytes(),
        "é\"x".as_bytes(),
        b"bash",
    ] {
        events.push(("count", vec![], comm));
    }
    events.push(("show", vec![], b"bash"));
    for v in [5i64, -3, 100] {
        events.push(("sums", vec![v as u64], b"bash"));
        events.push(("minmax", vec![v as u64], b"bash"));
    }
    let values: [i64; 17] = [
        -1,
        0,
        1,
        2,
        3,
        7,
        20,
        1024,
        8589934592,
        i64::MAX,
        5,
        9,
        10,
        55,
        99,
        100,
        150,
    ];
    for (i, v) in values.into_iter().enumerate() {
        let key = [256u64, 1, 2][i % 3];
        events.push(("hists", vec![v as u64, key], b"bash"));
    }
    for (a, b, comm) in [
        (-1i64, 7i64, &b"bash"[..]),
        (20, 5, b"a\"b"),
        (3, -2, b"rm"),
    ] {
        events.push(("keys", vec![a as u64, b as u64], comm));
    }
    events.push(("p", vec![-5i64 as u64, 255], b"bash"));
    events.push(("bye", vec![], b"bash"));
    events.push(("after", vec![], b"bash"));
    events
}

#[test]
fn text_output_is_bpftraces() {
    assert_eq!(
        trace(GLUE, &glue_events(), Format::Text),
        include_str!("../src/format/golden/glue.out")
    );
}

#[test]
fn json_output_is_bpftraces() {
    assert_eq!(
        trace(GLUE, &glue_events(), Format::Json),
        include_str!("../src/format/golden/glue.json.out")
    );
}

#[test]
fn begin_and_end_events_print_like_records() {
    let compiled = build(
        r#"BEGIN { printf("hi %s %d\n", "there", 7); } END { print(@n); exit(); } kprobe:f { @n = count(); }"#,
    );
    let events = [
        lang::userspace::events(&compiled, &compiled.begin),
        lang::userspace::events(&compiled, &compiled.end),
    ];
    let steps: Vec<Step> = events
        .iter()
        .flatten()
        .map(|e| report::event(Format::Json, e).unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            Step::Write(b"{\"type\": \"printf\", \"data\": \"hi there 7\\n\"}\n".to_vec()),
            Step::PrintMap("@n".into()),
            Step::Exit,
        ]
    );
    // An untouched keyless count() prints as bpftrace's array does.
    let spec = report::find_map(&compiled, "@n").unwrap();
    assert_eq!(
        report::print_map(spec, &[], Format::Text).unwrap(),
        b"@n: 0\n"
    );
}

/// Values around every power of two and the extremes, and a spread.
fn interesting_values() -> Vec<i64> {
    let mut values = vec![i64::MIN, i64::MIN + 1, i64::MAX, -1, 0, 1];
    for k in 0..63 {
        let p = 1i64 << k;
        values.extend([p - 1, p, p + 1, -p]);
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values.push((x >> (x % 64)) as i64);
        values.push((x % 2000) as i64 - 500);
    }
    values
}

#[test]
fn generated_buckets_are_formats_buckets() {
    let lhists = [
        (0, 100, 10),
        (1, 10, 4),
        (1024, 8192, 512),
        (0, 4194304, 1048576),
    ];
    let mut src = String::from("kprobe:f { @h = hist((int64)arg0); @hu = hist(arg0);");
    for (i, (min, max, step)) in lhists.iter().enumerate() {
        src.push_str(&format!(
            " @l{i} = lhist((int64)arg0, {min}, {max}, {step});"
        ));
    }
    src.push_str(" }");
    let compiled = build(&src);
    for value in interesting_values() {
        let mut kernel = Kernelish::new(&compiled);
        kernel.run("f", &[value as u64], b"t");
        let bucket = |name: &str| {
            let spec = report::find_map(&compiled, name).unwrap();
            let entries = kernel.entries(name);
            assert_eq!(entries.len(), 1, "{name} after one value");
            spec.bucket(&entries[0].0).unwrap()
        };
        let hist = HistParams::default();
        assert_eq!(bucket("@h"), hist.bucket(value), "hist({value})");
        assert_eq!(bucket("@hu"), hist.bucket(value), "hist((uint64){value})");
        assert_eq!(
            bucket("@h"),
            lang::format::hist_bucket(value),
            "hist_bucket({value})"
        );
        for (i, (min, max, step)) in lhists.iter().enumerate() {
            let params = LhistParams::new(*min, *max, *step).unwrap();
            assert_eq!(
                bucket(&format!("@l{i}")),
                params.bucket(value),
                "lhist({value}, {min}, {max}, {step})"
            );
        }
    }
}

/// bpftrace 0.23 marks a printf string that fills `max_strlen` (NUL
/// included) with `..`, before its width; a shorter or a longer one (comm
/// holds 16 bytes whatever `max_strlen` says) is printed as it is.
#[test]
fn a_string_that_fills_max_strlen_is_marked_truncated() {
    let src = "config = { max_strlen = 8 }\nkprobe:p { printf(\"%s|%-10s|\\n\", comm, comm); }";
    let out = trace(
        src,
        &[
            ("p", vec![], b"abcdefg"),
            ("p", vec![], b"abcdef"),
            ("p", vec![], b"abcdefghij"),
        ],
        Format::Text,
    );
    assert_eq!(
        out.trim_end(),
        "Attaching 1 probe...\nabcdefg..|abcdefg.. |\nabcdef|abcdef    |\nabcdefghij|abcdefghij|"
    );
    // The default, 64: comm never fills it.
    let out = trace(
        "kprobe:p { printf(\"%s\\n\", comm); }",
        &[("p", vec![], b"abcdefghijklmno")],
        Format::Text,
    );
    assert_eq!(out.trim_end(), "Attaching 1 probe...\nabcdefghijklmno");
}

/// A map of tuples holds each tuple in its value and prints it as
/// bpftrace 0.23 does: `(a, b)` in key order as text, `[a,"b"]` in JSON;
/// its parts read back through `@t.N` and a variable.
#[test]
fn maps_of_tuples_print_and_read_back() {
    let src = r#"kprobe:t { @m[arg0] = ((int64)arg1, comm, (arg0, "x")); @t = (1, comm);
        $x = @m[arg0]; printf("%d %s %s\n", $x.0, $x.1, @t.1); print(@t); print(@m[arg0]); }
        kprobe:show { print(@m); }"#;
    let events: [(&str, Vec<u64>, &[u8]); 3] = [
        ("t", vec![2, -5i64 as u64], b"bash"),
        ("t", vec![1, 7], b"rm"),
        ("show", vec![], b"rm"),
    ];
    assert_eq!(
        trace(src, &events, Format::Text),
        "Attaching 1 probe...\n-5 bash bash\n@t: (1, bash)\n(-5, bash, (2, x))\n\
         7 rm rm\n@t: (1, rm)\n(7, rm, (1, x))\n\
         @m[1]: (7, rm, (1, x))\n@m[2]: (-5, bash, (2, x))\n\n\n\
         @m[1]: (7, rm, (1, x))\n@m[2]: (-5, bash, (2, x))\n@t: (1, rm)\n"
    );
    assert_eq!(
        trace(src, &events, Format::Json),
        "{\"type\": \"attached_probes\", \"data\": {\"probes\": 1}}\n\
         {\"type\": \"printf\", \"data\": \"-5 bash bash\\n\"}\n\
         {\"type\": \"map\", \"data\": {\"@t\": [1,\"bash\"]}}\n\
         {\"type\": \"value\", \"data\": [-5,\"bash\",[2,\"x\"]]}\n\
         {\"type\": \"printf\", \"data\": \"7 rm rm\\n\"}\n\
         {\"type\": \"map\", \"data\": {\"@t\": [1,\"rm\"]}}\n\
         {\"type\": \"value\", \"data\": [7,\"rm\",[1,\"x\"]]}\n\
         {\"type\": \"map\", \"data\": {\"@m\": {\"1\": [7,\"rm\",[1,\"x\"]], \"2\": [-5,\"bash\",[2,\"x\"]]}}}\n\n\n\
         {\"type\": \"map\", \"data\": {\"@m\": {\"1\": [7,\"rm\",[1,\"x\"]], \"2\": [-5,\"bash\",[2,\"x\"]]}}}\n\
         {\"type\": \"map\", \"data\": {\"@t\": [1,\"rm\"]}}\n"
    );
}

/// BEGIN writes a tuple part by part in user space, each part in its own
/// slot (a long string does not run into the next part).
#[test]
fn begin_writes_a_tuple_into_its_map() {
    let compiled = build(
        r#"BEGIN { @t = ("abcdefghijklmnopq", "z", (7, -1)); @s[1, "k"] = ((uint8)2, "v"); }"#,
    );
    let mut host = lang::userspace::MemoryHost::new(lang::format::time::FixedClock::default());
    lang::userspace::run_all(&compiled, &compiled.begin, &mut host).unwrap();
    let mut out = Vec::new();
    for name in ["@t", "@s"] {
        let spec = report::find_map(&compiled, name).unwrap();
        out.extend(report::print_map(spec, &host.entries(name), Format::Text).unwrap());
    }
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "@t: (abcdefghijklmnopq, z, (7, -1))\n@s[1, k]: (2, v)\n"
    );
}

/// One map of tuples whose strings differ in length (`comm` and `"ab"`):
/// each part as long as the longest, as bpftrace 0.23 takes it; a tuple
/// from a variable is laid out the same way.
#[test]
fn a_map_of_tuples_takes_strings_of_any_length() {
    let src = r#"kprobe:t { $v = (5, "c", (6, "d")); @m[1] = (-1, comm, (2, "x"));
        @m[2] = (3, "ab", (4, "abcdefghijklmnopqrstuvwxyz")); @m[3] = $v;
        printf("%s %s %s\n", @m[2].1, @m[2].2.1, @m[3].2.1); }"#;
    assert_eq!(
        trace(src, &[("t", vec![], b"bash")], Format::Text),
        "Attaching 1 probe...\nab abcdefghijklmnopqrstuvwxyz d\n\n\n\
         @m[1]: (-1, bash, (2, x))\n@m[2]: (3, ab, (4, abcdefghijklmnopqrstuvwxyz))\n\
         @m[3]: (5, c, (6, d))\n"
    );
}
