//! What the tests that run compiled programs in probes' interpreter share:
//! a VM serving every map of a program, and the records it sent.
// Each test crate includes this module and uses only part of it.
#![allow(dead_code)]

use lang::Compiled;
use lang::output::{Event, decode_event};
use probes::interp::Vm;

pub const EVENTS_FD: i32 = 100;
pub const LOSSES_FD: i32 = 101;

/// A VM with every map of the program served (the events sink as a perf
/// array and a ring buffer, the ring's loss counter, the program's maps),
/// and its fds by name. The task is `rm`, pid 42, tid 43, uid 1000, gid
/// 1001, on CPU 1 at 5,000 ns.
pub fn vm_for(compiled: &Compiled) -> (Vm, impl Fn(&str) -> Option<i32> + Clone + use<>) {
    let mut vm = Vm::new();
    vm.perf_map_fd = EVENTS_FD;
    vm.ring_map_fd = EVENTS_FD;
    vm.ring_capacity = 1 << 20;
    vm.add_array_map(LOSSES_FD, 8, 1);
    vm.pid_tgid = (42 << 32) | 43;
    vm.uid_gid = (1000 << 32) | 1001;
    vm.comm = *b"rm\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    vm.ktime_ns = 5_000;
    vm.cpu = 1;
    let names: Vec<String> = compiled.maps.iter().map(|m| m.name.clone()).collect();
    for (i, m) in compiled.maps.iter().enumerate() {
        let (key, value) = (m.key_size as usize, m.value_size as usize);
        vm.add_map(i as i32 + 1, m.map_type(), key, value, m.max_entries);
    }
    let fd = move |name: &str| {
        if name == lang::output::EVENTS_MAP {
            return Some(EVENTS_FD);
        }
        if name == probes::ringbuf::LOSSES_MAP {
            return Some(LOSSES_FD);
        }
        names.iter().position(|n| n == name).map(|i| i as i32 + 1)
    };
    (vm, fd)
}

/// The entries of map `name` as the loader reads them: the program's
/// keys, an array's slots of zeros left out.
pub fn map_entries(compiled: &Compiled, vm: &Vm, name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let at = compiled.maps.iter().position(|m| m.name == name).unwrap();
    let spec = &compiled.maps[at];
    vm.map_entries(at as i32 + 1)
        .into_iter()
        .filter(|(_, value)| spec.present(&[value]))
        .map(|(key, value)| (spec.program_key(&key), value))
        .collect()
}

/// The records of either sink (5.8+ kernels get the ring buffer).
pub fn printed(compiled: &Compiled, vm: &Vm) -> Vec<Event> {
    let ring = vm.ring_output.iter().map(|(r, _)| r);
    vm.perf_output
        .iter()
        .chain(ring)
        .map(|r| decode_event(&compiled.events, r).unwrap())
        .collect()
}
