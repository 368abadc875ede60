//! `perf_event_open(2)`: the attribute struct, the constants and the ring
//! buffer layout nobtf uses (`include/uapi/linux/perf_event.h`).

/// `perf_event_attr.type` values.
pub const PERF_TYPE_HARDWARE: u32 = 0;
pub const PERF_TYPE_SOFTWARE: u32 = 1;
/// A tracefs event; `config` is its id (`events/<group>/<name>/id`).
pub const PERF_TYPE_TRACEPOINT: u32 = 2;
// Dynamic PMUs such as `kprobe` (4.17+) have their type number in
// `/sys/bus/event_source/devices/<pmu>/type`, not a constant.

/// `config` of a PERF_TYPE_SOFTWARE event that counts CPU time: sampled
/// by period (ns), what `interval:s:N`-style timers attach to.
pub const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
/// `config` of a PERF_TYPE_SOFTWARE event that carries `bpf_perf_event_output` data (4.4+).
pub const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;

/// `config` values of PERF_TYPE_SOFTWARE events (`enum perf_sw_ids`).
pub mod sw {
    pub const CPU_CLOCK: u64 = 0;
    pub const TASK_CLOCK: u64 = 1;
    pub const PAGE_FAULTS: u64 = 2;
    pub const CONTEXT_SWITCHES: u64 = 3;
    pub const CPU_MIGRATIONS: u64 = 4;
    pub const PAGE_FAULTS_MIN: u64 = 5;
    pub const PAGE_FAULTS_MAJ: u64 = 6;
    pub const ALIGNMENT_FAULTS: u64 = 7;
    pub const EMULATION_FAULTS: u64 = 8;
    pub const DUMMY: u64 = 9;
    pub const BPF_OUTPUT: u64 = 10;
}

/// `config` values of PERF_TYPE_HARDWARE events (`enum perf_hw_id`).
pub mod hw {
    pub const CPU_CYCLES: u64 = 0;
    pub const INSTRUCTIONS: u64 = 1;
    pub const CACHE_REFERENCES: u64 = 2;
    pub const CACHE_MISSES: u64 = 3;
    pub const BRANCH_INSTRUCTIONS: u64 = 4;
    pub const BRANCH_MISSES: u64 = 5;
    pub const BUS_CYCLES: u64 = 6;
    pub const STALLED_CYCLES_FRONTEND: u64 = 7;
    pub const STALLED_CYCLES_BACKEND: u64 = 8;
    pub const REF_CPU_CYCLES: u64 = 9;
}

/// `sample_type` bit: samples carry the raw bytes the program wrote.
pub const PERF_SAMPLE_RAW: u64 = 1 << 10;

/// `perf_event_open` flags.
pub const PERF_FLAG_FD_NO_GROUP: u64 = 1 << 0;
pub const PERF_FLAG_FD_CLOEXEC: u64 = 1 << 3;

/// Bits of `PerfEventAttr::flags` (the kernel's bitfield, in declaration order).
pub mod attr_flag {
    pub const DISABLED: u64 = 1 << 0;
    pub const INHERIT: u64 = 1 << 1;
    pub const EXCLUDE_USER: u64 = 1 << 4;
    pub const EXCLUDE_KERNEL: u64 = 1 << 5;
    /// `sample_period` is `sample_freq`: samples per second.
    pub const FREQ: u64 = 1 << 10;
    /// Wake up by `wakeup_watermark` bytes, not `wakeup_events` records.
    pub const WATERMARK: u64 = 1 << 14;
}

/// Sizes of `perf_event_attr` as it grew. nobtf passes VER1 (with `config2`),
/// which every kernel with BPF accepts.
pub const PERF_ATTR_SIZE_VER0: u32 = 64;
pub const PERF_ATTR_SIZE_VER1: u32 = 72;
pub const PERF_ATTR_SIZE_VER2: u32 = 80;
pub const PERF_ATTR_SIZE_VER3: u32 = 96;
pub const PERF_ATTR_SIZE_VER4: u32 = 104;
pub const PERF_ATTR_SIZE_VER5: u32 = 112;

/// `struct perf_event_attr` up to `config2` (PERF_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfEventAttr {
    pub type_: u32,
    /// `size_of::<PerfEventAttr>()`: tells the kernel which version this is.
    pub size: u32,
    pub config: u64,
    /// `sample_period` or `sample_freq`.
    pub sample_period: u64,
    pub sample_type: u64,
    pub read_format: u64,
    /// The bitfield: see `attr_flag`.
    pub flags: u64,
    /// `wakeup_events` or `wakeup_watermark`.
    pub wakeup_events: u32,
    pub bp_type: u32,
    /// `config1`; for the kprobe PMU `kprobe_func`, a pointer to the
    /// NUL-terminated function name.
    pub config1: u64,
    /// `config2`; for the kprobe PMU `probe_offset` within the function.
    pub config2: u64,
}

/// `ioctl` requests on a perf event fd: `_IO('$', 0)`, `_IO('$', 1)`,
/// `_IOW('$', 8, __u32)`.
pub const PERF_EVENT_IOC_ENABLE: u64 = 0x2400;
pub const PERF_EVENT_IOC_DISABLE: u64 = 0x2401;
pub const PERF_EVENT_IOC_SET_BPF: u64 = 0x4004_2408;

/// `perf_event_header.type` values nobtf reads.
/// Body: `u64 id, u64 lost`.
pub const PERF_RECORD_LOST: u32 = 2;
/// Body with PERF_SAMPLE_RAW only: `u32 size, u8 data[size]`, padded to 8.
pub const PERF_RECORD_SAMPLE: u32 = 9;

/// `struct perf_event_header`, in front of every record in the ring.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfEventHeader {
    pub type_: u32,
    pub misc: u16,
    /// Whole record, header included.
    pub size: u16,
}

pub const PERF_EVENT_HEADER_SIZE: usize = 8;

/// Offsets in the first page of a perf mmap (`struct perf_event_mmap_page`).
/// The writer's position; read it with acquire ordering before the data.
pub const MMAP_PAGE_DATA_HEAD: usize = 1024;
/// The reader's position; store it with release ordering after the data.
pub const MMAP_PAGE_DATA_TAIL: usize = 1032;
/// Where the data area starts (4.1+; 0 on older kernels means "one page").
pub const MMAP_PAGE_DATA_OFFSET: usize = 1040;
pub const MMAP_PAGE_DATA_SIZE: usize = 1048;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn attr_layout() {
        assert_eq!(offset_of!(PerfEventAttr, config), 8);
        assert_eq!(offset_of!(PerfEventAttr, sample_type), 24);
        assert_eq!(offset_of!(PerfEventAttr, flags), 40);
        assert_eq!(offset_of!(PerfEventAttr, wakeup_events), 48);
        assert_eq!(offset_of!(PerfEventAttr, config1), 56);
        assert_eq!(
            offset_of!(PerfEventAttr, config2),
            PERF_ATTR_SIZE_VER0 as usize
        );
        assert_eq!(size_of::<PerfEventAttr>(), PERF_ATTR_SIZE_VER1 as usize);
    }

    #[test]
    fn header_layout() {
        assert_eq!(size_of::<PerfEventHeader>(), PERF_EVENT_HEADER_SIZE);
        assert_eq!(offset_of!(PerfEventHeader, size), 6);
    }
}
