//! How a program hands a record to the reader, for the unlink probes and
//! `nobtf trace` alike: the per-CPU perf event array (4.4+) or, from 5.8,
//! the one BPF ring buffer shared by all CPUs.
//!
//! The ring buffer wakes the reader only when the pending data crosses
//! [`WAKEUP_BYTES`] (`BPF_RB_FORCE_WAKEUP` on the record that crosses it,
//! `BPF_RB_NO_WAKEUP` on every other): no wakeup per record, and a quiet
//! trace's records are picked up by the reader's poll timeout, as the perf
//! rings' page-sized wakeup watermark leaves them today. A record that does
//! not fit is counted in [`LOSSES_MAP`], a per-CPU u64 the loader reads:
//! losses stay exact without the perf ring's lost records.

use kernel_headers::bpf::{F_CURRENT_CPU, Helper, map_type, ringbuf};

use crate::asm::{AluOp, Builder, JmpOp, Label, Reg, Reg::*, Size};
use crate::program::{EVENTS_MAP, MapSpec, MaxEntries};

/// The per-CPU array (one u64 at key 0) counting records the ring buffer
/// had no room for.
pub const LOSSES_MAP: &str = "ring_losses";

/// Pending bytes that wake the reader: a few pages, so a storm's records
/// come in batches (the perf rings wake at a page per CPU). A ring this
/// small or smaller (`--buffer-pages 1`) never reaches it: its reader
/// wakes only at the poll timeout, which bounds every record's delay.
pub const WAKEUP_BYTES: i32 = 16 * 1024;

/// The smallest ring the loader makes (four pages).
pub const MIN_RING_BYTES: usize = 16 * 1024;

/// Where records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// `bpf_perf_event_output` into the per-CPU perf event array.
    PerfEvents,
    /// `bpf_ringbuf_output` into the BPF ring buffer (5.8+).
    RingBuffer,
}

impl Sink {
    /// The ring buffer where the kernel has it, the perf rings before.
    pub fn for_ring_buffer(has_ring_buffer: bool) -> Sink {
        if has_ring_buffer {
            Sink::RingBuffer
        } else {
            Sink::PerfEvents
        }
    }

    /// The maps the output call refers to.
    pub fn maps(self) -> Vec<MapSpec> {
        match self {
            Sink::PerfEvents => vec![MapSpec {
                name: EVENTS_MAP,
                map_type: map_type::PERF_EVENT_ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: MaxEntries::PossibleCpus,
            }],
            Sink::RingBuffer => vec![
                MapSpec {
                    name: EVENTS_MAP,
                    map_type: map_type::RINGBUF,
                    key_size: 0,
                    value_size: 0,
                    max_entries: MaxEntries::RingBytes,
                },
                MapSpec {
                    name: LOSSES_MAP,
                    map_type: map_type::PERCPU_ARRAY,
                    key_size: 4,
                    value_size: 8,
                    max_entries: MaxEntries::Fixed(1),
                },
            ],
        }
    }

    /// The helpers [`Sink::emit`] calls.
    pub fn helpers(self) -> &'static [Helper] {
        match self {
            Sink::PerfEvents => &[Helper::PerfEventOutput],
            Sink::RingBuffer => &[
                Helper::RingbufQuery,
                Helper::RingbufOutput,
                Helper::MapLookupElem,
            ],
        }
    }

    /// Sends the `size` bytes at `fp + at` (`ctx` holds the program's
    /// context). Clobbers r0..r5; after it the record's stack is free.
    pub fn emit(self, b: &mut Builder, ctx: Reg, at: i16, size: i32) {
        match self {
            Sink::PerfEvents => {
                b.mov(R1, ctx);
                b.ld_map(R2, EVENTS_MAP);
                // 0xffffffff must not be sign-extended: the kernel rejects other bits.
                b.ld_imm64(R3, F_CURRENT_CPU as i64);
                b.mov(R4, R10);
                b.add(R4, i32::from(at));
                b.mov(R5, size);
                b.call(Helper::PerfEventOutput);
            }
            Sink::RingBuffer => ring_output(b, at, size),
        }
    }
}

/// `bpf_ringbuf_output` with a wakeup only on the record that takes the
/// pending data across [`WAKEUP_BYTES`]; a failure adds one to this CPU's
/// count in [`LOSSES_MAP`].
fn ring_output(b: &mut Builder, at: i16, size: i32) {
    assert!(
        size > 0 && size < WAKEUP_BYTES,
        "a record of {size} bytes cannot cross the wakeup mark"
    );
    query_wakeup(b, R4, size);
    b.ld_map(R1, EVENTS_MAP);
    b.mov(R2, R10);
    b.add(R2, i32::from(at));
    b.mov(R3, size);
    b.call(Helper::RingbufOutput);
    let done = b.new_label("ring_sent");
    b.jump(JmpOp::Eq, R0, 0, done);
    // The key (0) reuses the record's first slot.
    count_loss(b, at, done);
    b.bind(done);
}

/// Adds one to this CPU's count in [`LOSSES_MAP`], its key (0) written at
/// `fp + key_at`, then goes on at `done` (bound by the caller). kprobe, tracepoint and perf-event programs never nest
/// on one CPU (the kernel's bpf_prog_active), so a plain add on this
/// CPU's slot is exact.
fn count_loss(b: &mut Builder, key_at: i16, done: Label) {
    b.store(Size::W, R10, key_at, 0);
    b.ld_map(R1, LOSSES_MAP);
    b.mov(R2, R10);
    b.add(R2, i32::from(key_at));
    b.call(Helper::MapLookupElem);
    b.jump(JmpOp::Eq, R0, 0, done);
    b.load(Size::DW, R1, R0, 0);
    b.add(R1, 1);
    b.store(Size::DW, R0, 0, R1);
}

/// `flags = ` the `bpf_ringbuf_submit` flags of a record of `size` bytes
/// about to be reserved: a wakeup only when this record takes the pending
/// data across [`WAKEUP_BYTES`]. Called before [`reserve`], so the
/// `ringbuf_query` is not in the time the record stays busy (the reader
/// waits at a busy record): the pending bytes before it minus the mark
/// less what the record takes (header and padding too), as one unsigned
/// compare against what it takes. `flags` must be one of the registers
/// helpers keep (r6..r9).
pub fn wakeup_flags(b: &mut Builder, flags: Reg, size: i32) {
    assert!(
        size > 0 && size < WAKEUP_BYTES,
        "a record of {size} bytes cannot cross the wakeup mark"
    );
    let taken = (size + ringbuf::HDR_SZ as i32 + 7) / 8 * 8;
    query_wakeup(b, flags, taken);
}

/// `flags = ` FORCE_WAKEUP when a record taking `taken` bytes moves the
/// pending data across [`WAKEUP_BYTES`], else NO_WAKEUP: crossing is
/// `WAKEUP_BYTES - taken <= pending < WAKEUP_BYTES`, one unsigned compare
/// of `pending - (WAKEUP_BYTES - taken)` against `taken`. Clobbers r0..r5.
fn query_wakeup(b: &mut Builder, flags: Reg, taken: i32) {
    b.ld_map(R1, EVENTS_MAP);
    b.mov(R2, ringbuf::AVAIL_DATA as i32);
    b.call(Helper::RingbufQuery);
    b.mov(flags, ringbuf::NO_WAKEUP as i32);
    b.alu(AluOp::Sub, R0, WAKEUP_BYTES - taken);
    let quiet = b.new_label("ring_quiet");
    b.jump(JmpOp::Ge, R0, taken, quiet);
    b.mov(flags, ringbuf::FORCE_WAKEUP as i32);
    b.bind(quiet);
}

/// `record = bpf_ringbuf_reserve(EVENTS_MAP, size, 0)`: a record of `size`
/// bytes to write in place, not zeroed (the program writes every byte the
/// reader uses). When the ring has no room, counts a loss (its key at
/// `fp + key_at`) and ends the program with 0. `record` must be one of
/// the registers helpers keep (r6..r9); every path after this must reach
/// [`submit`] (the verifier holds the program to it). The record is busy
/// until then and the reader cannot go past it: the caller does every
/// helper call it can before this one.
pub fn reserve(b: &mut Builder, record: Reg, size: i32, key_at: i16) {
    assert!(
        size > 0 && size < WAKEUP_BYTES,
        "a record of {size} bytes cannot cross the wakeup mark"
    );
    b.ld_map(R1, EVENTS_MAP);
    b.mov(R2, size);
    b.mov(R3, 0);
    b.call(Helper::RingbufReserve);
    let reserved = b.new_label("ring_reserved");
    b.jump(JmpOp::Ne, R0, 0, reserved);
    let counted = b.new_label("loss_counted");
    count_loss(b, key_at, counted);
    b.bind(counted);
    b.mov(R0, 0);
    b.exit();
    b.bind(reserved);
    b.mov(record, R0);
}

/// `bpf_ringbuf_submit(record, flags)` for a record made by [`reserve`],
/// with the flags [`wakeup_flags`] left in `flags`.
pub fn submit(b: &mut Builder, record: Reg, flags: Reg) {
    b.mov(R2, flags);
    b.mov(R1, record);
    b.call(Helper::RingbufSubmit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helpers_called(sink: Sink) -> Vec<Helper> {
        let mut b = Builder::new();
        b.mov(R6, R1);
        sink.emit(&mut b, R6, -16, 16);
        b.mov(R0, 0);
        b.exit();
        let insns = b.finish().unwrap();
        let mut called: Vec<Helper> = insns
            .as_slice()
            .iter()
            .filter_map(|insn| match insn {
                crate::asm::Insn::Call(h) => Some(*h),
                _ => None,
            })
            .collect();
        called.sort();
        called.dedup();
        called
    }

    #[test]
    fn each_sink_calls_its_helpers_and_names_its_maps() {
        for sink in [Sink::PerfEvents, Sink::RingBuffer] {
            let mut want = sink.helpers().to_vec();
            want.sort();
            assert_eq!(helpers_called(sink), want, "{sink:?}");
        }
        assert_eq!(Sink::PerfEvents.maps().len(), 1);
        let ring = Sink::RingBuffer.maps();
        assert_eq!(ring[0].map_type, map_type::RINGBUF);
        assert_eq!(ring[1].name, LOSSES_MAP);
        assert_eq!(Sink::for_ring_buffer(true), Sink::RingBuffer);
        assert_eq!(Sink::for_ring_buffer(false), Sink::PerfEvents);
    }
}
