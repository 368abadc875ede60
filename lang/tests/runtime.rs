//! What runs outside the probes: BEGIN, END and timers evaluated in user
//! space against the maps, BEGIN's tables seen by the probes, and time.
//! The kernel is probes' interpreter; a BEGIN table reaches its maps
//! through a small update program, as the loader's `BPF_MAP_UPDATE_ELEM`.

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::NATIVE;
use lang::kernel::Kernel;
use lang::output::{EVENTS_MAP, Event, decode_event};
use lang::tracepoint::NoTracepoints;
use lang::{Compiled, Target, compile};
use probes::interp::{Vm, fake_pt_regs};

const EVENTS_FD: i32 = 100;

fn build(src: &str) -> Compiled {
    let fields: Vec<(&str, lang::fields::FieldInfo)> = Vec::new();
    let target = Target {
        fields: &fields,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(4, 14, 0), NATIVE),
    };
    compile(src, &target).unwrap_or_else(|e| panic!("{}", e.render(src)))
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
            vm.add_hash_map(fd_of(i), m.key_size as usize, m.value_size as usize);
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
