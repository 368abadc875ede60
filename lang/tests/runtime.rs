//! What runs outside the probes: BEGIN, END and timers evaluated in user
//! space against the maps, BEGIN's tables seen by the probes, and time.
//! The kernel is probes' interpreter; a BEGIN table reaches its maps
//! through a small update program, as the loader's `BPF_MAP_UPDATE_ELEM`.

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::NATIVE;
use lang::format::time::{Clock, FixedClock};
use lang::kernel::Kernel;
use lang::output::{EVENTS_MAP, Event, MapSpec, decode_event};
use lang::report::{self, Format, Step};
use lang::tracepoint::NoTracepoints;
use lang::userspace::{self, Flow, Host};
use lang::{Compiled, Target, compile};
use probes::interp::{Vm, fake_pt_regs};

const EVENTS_FD: i32 = 100;

/// No struct fields: these programs read none.
static NO_FIELDS: Vec<(&str, lang::fields::FieldInfo)> = Vec::new();

/// 4.14, no struct fields.
fn target() -> Target<'static> {
    Target {
        fields: &NO_FIELDS,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(4, 14, 0), NATIVE),
    }
}

fn build(src: &str) -> Compiled {
    compile(src, &target()).unwrap_or_else(|e| panic!("{}", e.render(src)))
}

/// The first line of the error compiling `src`.
fn refusal(src: &str) -> String {
    compile(src, &target()).unwrap_err().render(src)
}

/// The interpreter with every map of the program.
struct Kernelish<'a> {
    compiled: &'a Compiled,
    vm: Vm,
}

impl<'a> Kernelish<'a> {
    fn new(compiled: &'a Compiled) -> Self {
        let mut vm = Vm::new();
        vm.perf_map_fd = EVENTS_FD;
        for (i, m) in compiled.maps.iter().enumerate() {
            let (key, value) = (m.key_size as usize, m.value_size as usize);
            vm.add_map(fd_of(i), m.map_type(), key, value, m.max_entries);
        }
        Kernelish { compiled, vm }
    }

    fn fd(&self, name: &str) -> Option<i32> {
        if name == EVENTS_MAP {
            return Some(EVENTS_FD);
        }
        self.compiled
            .maps
            .iter()
            .position(|m| m.name == name)
            .map(fd_of)
    }

    /// Runs the probe on `func` with these arguments.
    fn fire(&mut self, func: &str, args: &[u64]) {
        let probe = self
            .compiled
            .probes
            .iter()
            .find(|p| p.attach.func() == func)
            .unwrap();
        let raw = probe.encode(|name| self.fd(name)).unwrap();
        let named: Vec<(&str, u64)> = args
            .iter()
            .zip(NATIVE.args)
            .map(|(&v, &(name, _))| (name, v))
            .collect();
        let regs = fake_pt_regs(&named).unwrap();
        assert_eq!(self.vm.run(&raw, &regs), Ok(0), "{}", probe.insns);
    }

    fn events(&self) -> Vec<Event> {
        self.vm
            .perf_output
            .iter()
            .map(|r| decode_event(&self.compiled.events, r).unwrap())
            .collect()
    }
}

fn fd_of(index: usize) -> i32 {
    index as i32 + 1
}

#[test]
fn strings_of_any_length_share_a_map() {
    let compiled = build(
        r#"kprobe:short { @name[1] = "ab"; }
kprobe:long { @name[2] = "CAP_DAC_READ_SEARCH"; }
kprobe:show { printf("%s|\n", @name[arg0]); }"#,
    );
    let mut k = Kernelish::new(&compiled);
    k.fire("short", &[]);
    k.fire("long", &[]);
    for key in [1, 2, 3] {
        k.fire("show", &[key]);
    }
    let lines: Vec<Event> = k.events();
    let text = |s: &str| Event::Printf {
        format: "%s|\n".into(),
        args: vec![lang::output::Value::Str(s.into())],
    };
    assert_eq!(lines, [text("ab"), text("CAP_DAC_READ_SEARCH"), text("")]);
}

/// The kernel's side of the map syscalls: a small program per call, as
/// the interpreter has no other way in.
impl Kernelish<'_> {
    fn map_call(&mut self, map: &str, key: &[u8], value: Option<&[u8]>) {
        use probes::asm::{Builder, Reg::*, Size};
        let mut b = Builder::new();
        let put = |b: &mut Builder, bytes: &[u8], at: i16| {
            for (i, word) in bytes.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..word.len()].copy_from_slice(word);
                b.ld_imm64(R1, i64::from_ne_bytes(w));
                b.store(Size::DW, R10, at + 8 * i as i16, R1);
            }
        };
        let key_at = -256;
        put(&mut b, key, key_at);
        if let Some(value) = value {
            put(&mut b, value, -128);
        }
        let name: &'static str = Box::leak(map.to_string().into_boxed_str());
        b.ld_map(R1, name);
        b.mov(R2, R10);
        b.add(R2, i32::from(key_at));
        match value {
            Some(_) => {
                b.mov(R3, R10);
                b.add(R3, -128);
                b.mov(R4, 0);
                b.call(kernel_headers::bpf::Helper::MapUpdateElem);
            }
            None => b.call(kernel_headers::bpf::Helper::MapDeleteElem),
        }
        b.mov(R0, 0);
        b.exit();
        let raw = b.finish().unwrap().encode(|n| self.fd(n)).unwrap();
        let regs = fake_pt_regs(&[]).unwrap();
        assert_eq!(self.vm.run(&raw, &regs), Ok(0));
    }
}

/// What the loader does with the maps, on the interpreter: a per-CPU
/// value comes with a second CPU's zeros, as the kernel reports a CPU
/// that never ran the program.
struct Loader<'k, 'c> {
    kernel: &'k mut Kernelish<'c>,
    out: Vec<u8>,
    clock: FixedClock,
}

impl Host for Loader<'_, '_> {
    type Error = String;

    fn lookup(&mut self, map: &MapSpec, key: &[u8]) -> Result<Option<Vec<Vec<u8>>>, String> {
        let fd = self.kernel.fd(&map.name).unwrap();
        let key = map.kernel_key(key);
        Ok(self
            .kernel
            .vm
            .map_entries(fd)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| {
                if map.per_cpu {
                    let idle = vec![0; v.len()];
                    vec![v, idle]
                } else {
                    vec![v]
                }
            })
            .filter(|per_cpu| map.present(per_cpu)))
    }

    fn update(&mut self, map: &MapSpec, key: &[u8], value: &[u8]) -> Result<(), String> {
        assert_eq!(value.len(), map.value_size as usize);
        self.kernel
            .map_call(&map.name, &map.kernel_key(key), Some(value));
        Ok(())
    }

    fn delete(&mut self, map: &MapSpec, key: &[u8]) -> Result<(), String> {
        self.kernel.map_call(&map.name, &map.kernel_key(key), None);
        Ok(())
    }

    fn emit(&mut self, event: Event) -> Result<(), String> {
        let records = report::Records::new(self.kernel.compiled, Format::Text, &self.clock);
        match records.event(&event).unwrap() {
            Step::Write(bytes) => self.out.extend(bytes),
            Step::ClearMap(name) => {
                let fd = self.kernel.fd(&name).unwrap();
                let spec = report::find_map(self.kernel.compiled, &name).unwrap();
                // As the loader clears: an array's slots are zeroed.
                let zeros = vec![0; spec.value_size as usize];
                let zeros = spec.array.then_some(zeros.as_slice());
                for (key, _) in self.kernel.vm.map_entries(fd) {
                    self.kernel.map_call(&name, &key, zeros);
                }
            }
            Step::PrintMap(name) => {
                let spec = report::find_map(self.kernel.compiled, &name).unwrap();
                let entries = self.entries(spec);
                self.out
                    .extend(report::print_map(spec, &entries, Format::Text).unwrap());
            }
            Step::PrintMapTop { map, top, div } => {
                let spec = report::find_map(self.kernel.compiled, &map).unwrap();
                let entries = self.entries(spec);
                self.out
                    .extend(report::print_map_top(spec, &entries, Format::Text, top, div).unwrap());
            }
            Step::Cat(path) => {
                self.out.extend(b"<cat ");
                self.out.extend(path);
                self.out.extend(b">\n");
            }
            Step::System(command) => {
                self.out.extend(b"<system ");
                self.out.extend(command);
                self.out.extend(b">\n");
            }
            Step::Exit => self.out.extend(b"<exit>\n"),
        }
        Ok(())
    }

    fn clock(&self) -> &dyn Clock {
        &self.clock
    }
}

impl Loader<'_, '_> {
    fn entries(&self, spec: &MapSpec) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
        let fd = self.kernel.fd(&spec.name).unwrap();
        self.kernel
            .vm
            .map_entries(fd)
            .into_iter()
            .map(|(k, v)| {
                let per_cpu = if spec.per_cpu {
                    vec![v.clone(), vec![0; v.len()]]
                } else {
                    vec![v]
                };
                (spec.program_key(&k), per_cpu)
            })
            .filter(|(_, per_cpu)| spec.present(per_cpu))
            .collect()
    }

    /// The records the probes sent since the last call, printed.
    fn records(&mut self, seen: &mut usize) {
        let compiled = self.kernel.compiled;
        for record in &self.kernel.vm.perf_output[*seen..] {
            match report::record(compiled, Format::Text, record).unwrap() {
                Step::Write(bytes) => self.out.extend(bytes),
                other => panic!("{other:?}"),
            }
        }
        *seen = self.kernel.vm.perf_output.len();
    }

    /// What the end prints: END, then every map.
    fn end(&mut self) {
        let compiled = self.kernel.compiled;
        userspace::run_all(compiled, &compiled.end, self).unwrap();
        let contents: Vec<_> = compiled.maps.iter().map(|m| (m, self.entries(m))).collect();
        let maps: Vec<_> = contents.iter().map(|(m, e)| (*m, e.as_slice())).collect();
        self.out
            .extend(report::exit_maps(&maps, Format::Text).unwrap());
    }
}

/// capable.bt's shape: BEGIN prints a header and fills a table the probe
/// reads; END clears it, so the end prints it empty (a blank line, as
/// bpftrace prints an empty map).
#[test]
fn begin_tables_are_in_the_maps_before_the_probes_run() {
    let compiled = build(
        r#"BEGIN {
    printf("%-9s %-4s %s\n", "TIME", "CAP", "NAME");
    @cap[0] = "CAP_CHOWN";
    @cap[1] = "CAP_DAC_OVERRIDE";
    @cap[2 + 3] = "CAP_KILL";
}
kprobe:cap_capable { $cap = arg2; printf("%-4d %s\n", $cap, @cap[$cap]); @seen[$cap] = count(); }
END { clear(@cap); }"#,
    );
    let mut kernel = Kernelish::new(&compiled);
    let mut loader = Loader {
        kernel: &mut kernel,
        out: Vec::new(),
        clock: FixedClock::default(),
    };
    assert_eq!(
        userspace::start(&compiled, &mut loader).unwrap(),
        Flow::Continue
    );
    for cap in [1, 5, 7] {
        loader.kernel.fire("cap_capable", &[0, 0, cap]);
    }
    let mut seen = 0;
    loader.records(&mut seen);
    loader.end();
    assert_eq!(
        String::from_utf8(loader.out).unwrap(),
        "TIME      CAP  NAME\n\
         1    CAP_DAC_OVERRIDE\n\
         5    CAP_KILL\n\
         7    \n\
         \n\n\n@seen[1]: 1\n@seen[5]: 1\n@seen[7]: 1\n"
    );
}

/// END reads the maps the probes left: counts combined over the CPUs,
/// averages, strings, absent keys as 0; `delete`, `exit()` ending the
/// block; a table BEGIN filled and END did not clear is printed at the end
/// as bpftrace prints a string map, the cleared ones as blank lines (two
/// for an average).
#[test]
fn end_reads_the_maps() {
    let compiled = build(
        r#"BEGIN { @name[1] = "one"; @name[2] = "two"; $x = 6 * 7; @answer = $x; }
kprobe:f { @calls[arg0] = count(); @lat = avg(arg1); @last = comm; }
END {
    printf("calls %d %d %d, avg %d, answer %d, last %s, name %s\n",
        @calls[1], @calls[2], @calls[3], @lat, @answer, @last, @name[2]);
    delete(@calls[1]);
    printf("after delete %d; %s\n", @calls[1], @answer > 40 ? "big" : "small");
    clear(@lat); clear(@last); clear(@answer);
    exit();
    printf("never\n");
}"#,
    );
    let mut kernel = Kernelish::new(&compiled);
    kernel.vm.comm[..2].copy_from_slice(b"rm");
    let mut loader = Loader {
        kernel: &mut kernel,
        out: Vec::new(),
        clock: FixedClock::default(),
    };
    userspace::start(&compiled, &mut loader).unwrap();
    for (arg0, arg1) in [(1, 10), (1, 20), (2, 60)] {
        loader.kernel.fire("f", &[arg0, arg1]);
    }
    loader.end();
    assert_eq!(
        String::from_utf8(loader.out).unwrap(),
        "calls 2 1 0, avg 30, answer 42, last rm, name two\n\
         after delete 0; big\n\
         <exit>\n\
         \n\n\n@calls[2]: 1\n\n\n\n@name[1]: one\n@name[2]: two\n"
    );
}

#[test]
fn what_user_space_cannot_run_is_refused_in_begin_and_end() {
    for (src, want) in [
        (
            "kprobe:f { @h = hist(arg0); } END { printf(\"%d\\n\", @h); }",
            "reading the histogram `@h` cannot run in BEGIN or END",
        ),
        (
            "BEGIN { @c = count(); }",
            "an aggregation (count(), sum(), ...) cannot run in BEGIN or END",
        ),
        (
            "END { printf(\"%d\\n\", pid); }",
            "`pid` cannot be read in BEGIN or END",
        ),
        // A constant nothing defines is unknown, in BEGIN as in a probe.
        (
            "BEGIN { printf(\"%d\\n\", NO_SUCH_CONSTANT); }",
            "unknown identifier `NO_SUCH_CONSTANT`",
        ),
    ] {
        let err = refusal(src);
        assert!(err.contains(want), "{src}: {err}");
    }
}

/// opensnoop/execsnoop's time columns: `time()` prints the clock's local
/// time when the record is read, `strftime()` the probe's `nsecs` made
/// wall-clock time, `elapsed` the ns since BEGIN (its start written by the
/// loader before BEGIN). BEGIN prints them in user space the same way.
#[test]
fn time_strftime_and_elapsed() {
    let compiled = build(
        r#"BEGIN { time("%H:%M:%S "); printf("%s %d\n", strftime("%M:%S.%f", nsecs), elapsed); }
kprobe:f { time(); time("%Y-%m-%d "); printf("%-15s|%d|%s\n", strftime("%H:%M:%S.%f", nsecs), elapsed / 1000, strftime("%s", nsecs)); }"#,
    );
    // 2024-02-29 13:05:09 UTC; `nsecs` 0 was 13:05:00.5.
    let clock = FixedClock {
        now: 1_709_211_909,
        nsecs: 7_000_000_000,
        nsecs_epoch: 1_709_211_900_500_000_000,
    };
    let mut kernel = Kernelish::new(&compiled);
    kernel.vm.ktime_ns = 7_250_000_123;
    let mut loader = Loader {
        kernel: &mut kernel,
        out: Vec::new(),
        clock,
    };
    userspace::start(&compiled, &mut loader).unwrap();
    loader.kernel.fire("f", &[]);
    for format in [Format::Text, Format::Json] {
        let mut records = report::Records::new(&compiled, format, &clock);
        let mut out = Vec::new();
        for record in &loader.kernel.vm.perf_output {
            assert_eq!(records.record(record, &mut out).unwrap(), None);
        }
        let want = match format {
            Format::Text => "13:05:09\n2024-02-29 13:05:07.750000|250000|1709211907\n",
            Format::Json => concat!(
                "{\"type\": \"time\", \"data\": \"13:05:09\\n\"}\n",
                "{\"type\": \"time\", \"data\": \"2024-02-29 \"}\n",
                "{\"type\": \"printf\", \"data\": \"13:05:07.750000|250000|1709211907\\n\"}\n"
            ),
        };
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
    assert_eq!(
        String::from_utf8(loader.out).unwrap(),
        "13:05:09 05:07.500000 0\n"
    );
}

/// Every width, flag and length bpftrace 0.23 takes, the same from BEGIN
/// (user space) and from a probe's record, as C's printf prints them (the
/// argument cast to the length's type). `%i` is not a conversion to
/// bpftrace: it prints as written.
#[test]
fn printf_conversions_as_bpftrace_takes_them() {
    let body = r#"printf("%-5s|%5d|%05d|%x|%X|%lld|%hhu|%c|%%|%p|%u|%o|%.2s|%-4c|%lx|%hd|%i\n", "ab", 42, -42, 255, 255, -1, 257, 65, 0, -1, 8, "xyz", 66, -1, 65537);"#;
    let compiled = build(&format!("BEGIN {{ {body} }} kprobe:f {{ {body} }}"));
    let want =
        "ab   |   42|-0042|ff|FF|-1|1|A|%|(nil)|4294967295|10|xy|B   |ffffffffffffffff|1|%i\n";
    let mut kernel = Kernelish::new(&compiled);
    let mut loader = Loader {
        kernel: &mut kernel,
        out: Vec::new(),
        clock: FixedClock::default(),
    };
    userspace::start(&compiled, &mut loader).unwrap();
    loader.kernel.fire("f", &[]);
    let mut seen = 0;
    loader.records(&mut seen);
    assert_eq!(String::from_utf8(loader.out).unwrap(), want.repeat(2));

    for (src, err) in [
        (
            r#"BEGIN { printf("%i\n", 1); }"#,
            "`%i` is not a printf conversion in bpftrace 0.23",
        ),
        (
            r#"BEGIN { printf("%r\n", 1); }"#,
            "%r prints a buf() value: printf(\"%r\\n\", buf(ADDR, LEN))",
        ),
        (
            r#"kprobe:f { printf("%d\n", buf(arg0, 4)); }"#,
            "%d cannot print buf()'s bytes; use %r",
        ),
    ] {
        let got = refusal(src);
        assert!(got.contains(err), "{src}: {got}");
    }
}

/// syscount.bt's END: `print(@m, top)` prints the last `top` entries in
/// bpftrace's order, `print(@m, top, div)` divides the values too.
#[test]
fn print_takes_top_and_div() {
    let compiled =
        build("kprobe:f { @c[arg0] = count(); } END { print(@c, 2); print(@c, 0, 2); clear(@c); }");
    let mut kernel = Kernelish::new(&compiled);
    for (key, times) in [(1, 3), (2, 5), (3, 1)] {
        for _ in 0..times {
            kernel.fire("f", &[key]);
        }
    }
    let mut loader = Loader {
        kernel: &mut kernel,
        out: Vec::new(),
        clock: FixedClock::default(),
    };
    loader.end();
    assert_eq!(
        String::from_utf8(loader.out).unwrap(),
        "@c[1]: 3\n@c[2]: 5\n@c[3]: 0\n@c[1]: 1\n@c[2]: 2\n\n\n\n"
    );
}

/// A map keyed by `comm` is read with a literal (`@s["rm"]`) of another
/// length; a literal key longer than the first one written widens the key.
#[test]
fn string_keys_of_any_length_name_the_same_entries() {
    let compiled = build(
        r#"kprobe:f { @s[comm] = 5; @t["a-longer-literal-key"] = 1; @t[comm] = 2; }
END { printf("%d %d %d %d\n", @s["rm"], @s["x"], @t["rm"], @t["a-longer-literal-key"]); }"#,
    );
    let mut kernel = Kernelish::new(&compiled);
    kernel.vm.comm[..2].copy_from_slice(b"rm");
    kernel.fire("f", &[]);
    let mut loader = Loader {
        kernel: &mut kernel,
        out: Vec::new(),
        clock: FixedClock::default(),
    };
    let compiled = loader.kernel.compiled;
    userspace::run_all(compiled, &compiled.end, &mut loader).unwrap();
    assert_eq!(String::from_utf8(loader.out).unwrap(), "5 0 2 1\n");
}

/// runqlat/tcplife-style END logic: `if`/`else`, `unroll`, `return` run in
/// user space; string comparisons too.
#[test]
fn end_runs_if_unroll_and_return() {
    let compiled = build(
        r#"BEGIN { @mode = "verbose"; @n = 3; }
END {
    if (@mode == "verbose") { printf("verbose\n"); } else { printf("quiet\n"); }
    $i = 0;
    unroll(3) { $i = $i + @n; }
    printf("%d\n", $i);
    if ($i > 5) { return; }
    printf("never\n");
}
END { printf("second END\n"); }"#,
    );
    let mut kernel = Kernelish::new(&compiled);
    let mut loader = Loader {
        kernel: &mut kernel,
        out: Vec::new(),
        clock: FixedClock::default(),
    };
    userspace::start(&compiled, &mut loader).unwrap();
    let compiled = loader.kernel.compiled;
    userspace::run_all(compiled, &compiled.end, &mut loader).unwrap();
    assert_eq!(
        String::from_utf8(loader.out).unwrap(),
        "verbose\n9\nsecond END\n"
    );
}

/// `print()` of values and tuples in BEGIN, run in user space.
#[test]
fn begin_prints_values_and_tuples() {
    let compiled = build(
        r#"BEGIN { @n = 5; print(1); print((1, "b", -3)); print(@n); print("s"); cat("/proc/%d/stat", 12) }"#,
    );
    let mut kernel = Kernelish::new(&compiled);
    let mut loader = Loader {
        kernel: &mut kernel,
        out: Vec::new(),
        clock: FixedClock::default(),
    };
    userspace::start(&compiled, &mut loader).unwrap();
    assert_eq!(
        String::from_utf8(loader.out).unwrap(),
        "1\n(1, b, -3)\n@n: 5\ns\n<cat /proc/12/stat>\n"
    );
}

/// A record's kernel string: its first 64 bytes read at a fixed size and
/// kept when they hold the NUL, else read again with the string helper.
/// Every length, the NUL last in its mapping (the fixed read fails) or
/// followed by other bytes (read along, and not shown). Where programs are
/// held to 4,096 instructions (before 5.2) the string helper reads alone.
#[test]
fn record_strings_of_every_length_and_mapping_end_print_whole() {
    const AT: u64 = 0xffff_8880_0400_0000;
    let src = r#"kprobe:show { printf("%s|%s|\n", str(arg0), str(arg1, 100)); }"#;
    let old = build(src).probes[0].insns.to_string();
    assert!(!old.contains("bpf_probe_read#4"), "4.14:\n{old}");
    let target = Target {
        kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
        ..target()
    };
    let compiled = compile(src, &target).unwrap_or_else(|e| panic!("{}", e.render(src)));
    let program = &compiled.probes[0].insns.to_string();
    assert!(
        program.contains("bpf_probe_read#4") && program.contains("bpf_probe_read_str#45"),
        "the fixed-size read and the string helper behind it:\n{program}"
    );
    for len in 0..130 {
        let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        for tail in [0, 100] {
            let mut bytes = text.clone();
            bytes.push(0);
            bytes.resize(bytes.len() + tail, b'#');
            let mut k = Kernelish::new(&compiled);
            k.vm.map(probes::interp::Space::Kernel, AT, bytes).unwrap();
            k.fire("show", &[AT, AT]);
            let shown = |max: usize| text[..len.min(max - 1)].to_vec();
            let want = Event::Printf {
                format: "%s|%s|\n".into(),
                args: vec![
                    lang::output::Value::Str(shown(64)),
                    lang::output::Value::Str(shown(100)),
                ],
            };
            assert_eq!(k.events(), [want], "length {len}, {tail} bytes after");
        }
    }
}

/// A string read inside a record's argument for a map key is read whole
/// and zeroed after its NUL, as keys need: the record's fixed-size read
/// is the record's slot's alone.
#[test]
fn record_arguments_keep_their_keys_zeroed_after_the_nul() {
    const AT: u64 = 0xffff_8880_0400_0000;
    let target = Target {
        kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
        ..target()
    };
    let src = r#"kprobe:set { @m[str(arg0)] = "seven"; }
kprobe:show { printf("%s %s\n", @m[str(arg0)], arg1 ? str(arg0) : "none"); }"#;
    let compiled = compile(src, &target).unwrap_or_else(|e| panic!("{}", e.render(src)));
    let mut k = Kernelish::new(&compiled);
    let mut bytes = b"key\0".to_vec();
    bytes.resize(200, b'#');
    k.vm.map(probes::interp::Space::Kernel, AT, bytes).unwrap();
    k.fire("set", &[AT]);
    k.fire("show", &[AT, 1]);
    let want = Event::Printf {
        format: "%s %s\n".into(),
        args: vec![
            lang::output::Value::Str(b"seven".to_vec()),
            lang::output::Value::Str(b"key".to_vec()),
        ],
    };
    assert_eq!(k.events(), [want]);
}

/// `/@start[tid]/` then `@start[tid]` in the body: the body takes the
/// value the predicate read, until a statement writes the map; after a
/// `delete` the map is read again.
#[test]
fn the_predicates_map_value_serves_the_body_until_the_map_is_written() {
    let compiled = build(
        r#"kprobe:set { @start[tid] = arg0; }
kprobe:get /@start[tid]/ { printf("%d\n", @start[tid] + 1); delete(@start[tid]); printf("%d\n", @start[tid]); }"#,
    );
    let get = compiled
        .probes
        .iter()
        .find(|p| p.attach.func() == "get")
        .unwrap();
    let program = get.insns.to_string();
    assert_eq!(
        program.matches("call bpf_map_lookup_elem").count(),
        2,
        "the predicate's lookup and the one after the delete:\n{program}"
    );
    let mut k = Kernelish::new(&compiled);
    k.fire("get", &[]);
    k.fire("set", &[41]);
    k.fire("get", &[]);
    k.fire("get", &[]);
    let int = |n: i64| Event::Printf {
        format: "%d\n".into(),
        args: vec![lang::output::Value::Int(n)],
    };
    assert_eq!(k.events(), [int(42), int(0)]);
}

/// In a loop with a back edge (5.3+), the body's code runs again after its
/// own writes: a map the loop writes is read afresh in it.
#[test]
fn a_loop_that_writes_the_predicates_map_reads_it_afresh() {
    let target = Target {
        kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
        ..target()
    };
    let src = r#"kprobe:set { @m[1] = arg0; }
kprobe:get /@m[1]/ { $i = 0; while ($i < arg0) { printf("%d\n", @m[1]); delete(@m[1]); $i++; } }"#;
    let compiled = compile(src, &target).unwrap_or_else(|e| panic!("{}", e.render(src)));
    let mut k = Kernelish::new(&compiled);
    k.fire("set", &[7]);
    k.fire("get", &[2]);
    let int = |n: i64| Event::Printf {
        format: "%d\n".into(),
        args: vec![lang::output::Value::Int(n)],
    };
    assert_eq!(k.events(), [int(7), int(0)]);
}

/// Keyless aggregations but sums and maps the program deletes from are
/// per-CPU arrays indexed by the bucket; the same code run on per-CPU
/// hashes (as before arrays) prints the same, slots never written and
/// cleared ones included.
#[test]
fn keyless_aggregations_in_arrays_print_as_in_hashes() {
    use kernel_headers::bpf::map_type::{PERCPU_ARRAY, PERCPU_HASH};
    let array = build(
        r#"kprobe:f { @n = count(); @us = hist(arg0); @l = lhist(arg0, 0, 100, 10);
    @lo = min(arg0); @hi = max(arg0); @a = avg(arg0); @s = sum(arg0); @k[1] = count(); }
kprobe:g { @gone = count(); delete(@gone); @inner = count(); if (arg0 == 7) { delete(@inner); } }
kprobe:never { @none = count(); @nh = hist(arg0); @nmin = min(arg0); @navg = stats(arg0); }
END { printf("%d %d %d\n", @n, @lo, @none); clear(@l); print(@us); }"#,
    );
    let kinds: Vec<(&str, u32, u32)> = array
        .maps
        .iter()
        .map(|m| (m.name.as_str(), m.map_type(), m.max_entries))
        .collect();
    for (name, ty, entries) in [("@n", PERCPU_ARRAY, 1), ("@us", PERCPU_ARRAY, 65)]
        .into_iter()
        .chain([("@l", PERCPU_ARRAY, 12), ("@lo", PERCPU_ARRAY, 1)])
        .chain([("@s", PERCPU_HASH, 4096), ("@k", PERCPU_HASH, 4096)])
        .chain([("@gone", PERCPU_HASH, 4096), ("@navg", PERCPU_ARRAY, 1)])
        .chain([("@inner", PERCPU_HASH, 4096)])
    {
        assert!(kinds.contains(&(name, ty, entries)), "{name}: {kinds:?}");
    }
    let mut hash = array.clone();
    for m in &mut hash.maps {
        m.array = false;
        m.max_entries = lang::output::MAP_ENTRIES;
    }
    let run = |compiled: &Compiled| {
        let mut kernel = Kernelish::new(compiled);
        for v in [0, 5, 70, 3, 1000] {
            kernel.fire("f", &[v]);
            kernel.fire("g", &[]);
        }
        let mut loader = Loader {
            kernel: &mut kernel,
            out: Vec::new(),
            clock: FixedClock::default(),
        };
        loader.end();
        String::from_utf8(loader.out).unwrap()
    };
    let printed = run(&array);
    assert_eq!(printed, run(&hash));
    assert!(
        printed.starts_with("5 0 0\n@us:\n[0]") && printed.contains("@s: 1078\n"),
        "{printed}"
    );
}
