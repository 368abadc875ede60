//! The exact attributes nobtf passes to `bpf(2)` and `perf_event_open(2)`,
//! built as values without a kernel so tests can check every field. `sys`
//! only adds the pointers to buffers it borrows during the call.

use kernel_headers::bpf::{OBJ_NAME_LEN as BPF_OBJ_NAME_LEN, prog_type};
use kernel_headers::bpf_attr::{MapCreateAttr, ProgLoadAttr};
use kernel_headers::perf::{self, PerfEventAttr};

/// A NUL-terminated object name, cut to what the kernel accepts; only
/// `[A-Za-z0-9_.]` are allowed, others become `_`.
pub fn obj_name(name: &str) -> [u8; BPF_OBJ_NAME_LEN] {
    let mut out = [0u8; BPF_OBJ_NAME_LEN];
    for (slot, byte) in out.iter_mut().zip(name.bytes().take(BPF_OBJ_NAME_LEN - 1)) {
        *slot = if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.' {
            byte
        } else {
            b'_'
        };
    }
    out
}

/// BPF_MAP_CREATE. `name` only where the kernel takes names (4.15+): an
/// older kernel rejects any non-zero byte past what it knows.
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: Option<&str>,
) -> MapCreateAttr {
    MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags,
        map_name: name.map(obj_name).unwrap_or_default(),
        ..MapCreateAttr::default()
    }
}

/// BPF_PROG_LOAD of a kprobe program, without the pointers.
pub fn prog_load_kprobe(kern_version: u32, name: Option<&str>, log_level: u32) -> ProgLoadAttr {
    prog_load(prog_type::KPROBE, kern_version, name, log_level)
}

/// BPF_PROG_LOAD of a program of `prog_type`, without the pointers.
/// `kern_version` is what kernels before 5.0 compare with
/// LINUX_VERSION_CODE for kprobes (others ignore it).
pub fn prog_load(
    prog_type: u32,
    kern_version: u32,
    name: Option<&str>,
    log_level: u32,
) -> ProgLoadAttr {
    ProgLoadAttr {
        prog_type,
        kern_version,
        log_level,
        prog_name: name.map(obj_name).unwrap_or_default(),
        ..ProgLoadAttr::default()
    }
}

fn base(type_: u32, config: u64) -> PerfEventAttr {
    PerfEventAttr {
        type_,
        size: perf::PERF_ATTR_SIZE_VER1,
        config,
        ..PerfEventAttr::default()
    }
}

/// The per-CPU software event `bpf_perf_event_output` writes into: raw
/// samples, and a wakeup once `wakeup_bytes` are waiting rather than one per
/// record. Each wakeup is an irq_work (a self-IPI) in the traced task's
/// path: measured in a VM, waking per record cost the unlink loop about
/// twice the added time. A quiet event is still read within
/// `session::LATENCY_MS`, when the reader's poll times out.
pub fn perf_output(wakeup_bytes: u32) -> PerfEventAttr {
    PerfEventAttr {
        sample_type: perf::PERF_SAMPLE_RAW,
        sample_period: 1,
        flags: perf::attr_flag::WATERMARK,
        wakeup_events: wakeup_bytes,
        ..base(perf::PERF_TYPE_SOFTWARE, perf::PERF_COUNT_SW_BPF_OUTPUT)
    }
}

/// A kprobe through the kprobe PMU (4.17+): `pmu_type` from
/// `/sys/bus/event_source/devices/kprobe/type`; a return probe sets the bit
/// named in `.../format/retprobe`. The function name goes in `config1` (a
/// pointer, added by `sys`); offset 0 in `config2`.
pub fn kprobe_pmu(pmu_type: u32, retprobe_bit: Option<u32>) -> PerfEventAttr {
    let config = retprobe_bit.map_or(0, |bit| 1u64 << bit);
    PerfEventAttr {
        sample_period: 1,
        wakeup_events: 1,
        ..base(pmu_type, config)
    }
}

/// The uprobe PMU's event at `offset` into the file whose path `sys`
/// passes as `config1`; `retprobe_bit` set for a uretprobe.
pub fn uprobe_pmu(pmu_type: u32, retprobe_bit: Option<u32>, offset: u64) -> PerfEventAttr {
    PerfEventAttr {
        config2: offset,
        ..kprobe_pmu(pmu_type, retprobe_bit)
    }
}

/// A CPU-clock software event on one CPU that overflows every `period_ns`:
/// a perf-event program attached to it runs on that CPU at that interval.
pub fn cpu_clock(period_ns: u64) -> PerfEventAttr {
    PerfEventAttr {
        sample_period: period_ns,
        ..base(perf::PERF_TYPE_SOFTWARE, perf::PERF_COUNT_SW_CPU_CLOCK)
    }
}

/// A tracefs event (a `kprobe_events` probe or a tracepoint) by its id.
pub fn tracepoint(id: u64) -> PerfEventAttr {
    PerfEventAttr {
        sample_period: 1,
        wakeup_events: 1,
        ..base(perf::PERF_TYPE_TRACEPOINT, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_and_cleaned() {
        assert_eq!(&obj_name("unlink_entry"), b"unlink_entry\0\0\0\0");
        assert_eq!(&obj_name("a-very-long-program-name"), b"a_very_long_pro\0");
    }

    #[test]
    fn map_without_name_has_zero_tail() {
        let attr = map_create(4, 4, 4, 2, 0, None);
        assert_eq!(
            attr,
            MapCreateAttr {
                map_type: 4,
                key_size: 4,
                value_size: 4,
                max_entries: 2,
                map_flags: 0,
                inner_map_fd: 0,
                numa_node: 0,
                map_name: [0; 16],
            }
        );
        assert_eq!(
            &map_create(4, 4, 4, 2, 0, Some("events")).map_name[..7],
            b"events\0"
        );
        assert_eq!(map_create(1, 4, 8, 64, 1, None).map_flags, 1);
    }

    #[test]
    fn prog_load_fields() {
        let attr = prog_load_kprobe(0x0004_130d, Some("unlink_entry"), 1);
        assert_eq!(attr.prog_type, 2);
        assert_eq!(attr.kern_version, 0x0004_130d);
        assert_eq!(attr.log_level, 1);
        assert_eq!(attr.prog_flags, 0);
        assert_eq!((attr.insns, attr.license, attr.log_buf), (0, 0, 0));
        assert_eq!(&attr.prog_name[..13], b"unlink_entry\0");
        assert_eq!(prog_load_kprobe(0, None, 0).prog_name, [0; 16]);
        assert_eq!(prog_load(prog_type::TRACEPOINT, 0, None, 0).prog_type, 5);
        assert_eq!(prog_load(prog_type::PERF_EVENT, 0, None, 0).prog_type, 7);
    }

    #[test]
    fn perf_attrs() {
        let out = perf_output(4096);
        assert_eq!((out.type_, out.config, out.size), (1, 10, 72));
        assert_eq!(out.sample_type, 1 << 10);
        assert_eq!(
            out.flags,
            1 << 14,
            "opened enabled, counting user and kernel, woken by bytes"
        );
        assert_eq!(out.wakeup_events, 4096);

        let entry = kprobe_pmu(6, None);
        assert_eq!(
            (entry.type_, entry.config, entry.config1, entry.config2),
            (6, 0, 0, 0)
        );
        let ret = kprobe_pmu(6, Some(0));
        assert_eq!(ret.config, 1);

        let tp = tracepoint(1234);
        assert_eq!((tp.type_, tp.config, tp.size), (2, 1234, 72));

        let clock = cpu_clock(1_000_000_000);
        assert_eq!((clock.type_, clock.config), (1, 0), "software cpu-clock");
        assert_eq!(clock.sample_period, 1_000_000_000);
        assert_eq!(clock.flags, 0, "opened enabled");
    }
}
