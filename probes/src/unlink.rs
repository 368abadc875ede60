//! The `do_unlinkat` probes: what the reference C program does, built from a
//! profile so the same binary reads the right offsets on every kernel.
//!
//! Every program starts with `r6 = r1` (the `pt_regs` context, kept across
//! calls) and keeps the path argument in `r7`. The event is assembled on the
//! BPF stack, zeroed first: helpers that read stack memory (and
//! `probe_read` itself before 4.6) need it initialized.
//!
//! Offsets into `struct filename` come from the profile and only ever appear
//! as immediates, so programs for two kernels differ in immediates alone.

use core::mem::offset_of;

use kernel_headers::bpf::Helper;
pub use kernel_headers::bpf::Readers;
use kernel_headers::kprobe::ProbeKind;
use kernel_headers::pt_regs::Abi;
use kernel_headers::sched::TASK_COMM_LEN;
use profile::{Field, Profile, UnlinkArg};

use crate::asm::{AluOp, Builder, JmpOp, Reg, Reg::*, Size};
use crate::event::{self, EventKind, UnlinkEvent};
use crate::program::{BuildError, Program};
use crate::ringbuf::{self, Sink};

pub use crate::program::EVENTS_MAP;
/// The function both probes attach to.
pub const FUNCTION: &str = profile::DO_UNLINKAT;

/// The lines the trace-pipe variant prints, as in the reference program.
pub const ENTRY_FORMAT: &str = "KPROBE ENTRY pid = %d, filename = %s\n";
pub const EXIT_FORMAT: &str = "KPROBE EXIT: pid = %d, ret = %ld\n";

/// Choices the loader makes for the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choices {
    pub read: Readers,
    pub output: Output,
    pub comm: CommRead,
}

/// How the probes read the current task's comm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommRead {
    /// `bpf_get_current_comm` (4.2+).
    Helper,
    /// `bpf_get_current_task_btf` (5.11+, on a kernel with BTF), then two
    /// 8-byte loads at `task_struct.comm`, `comm_offset` bytes in; the
    /// verifier checks them against the kernel's BTF. The helper copies
    /// with `strscpy_pad`: under instruction counting on debian-6.12 each
    /// probe took about 650 ns less this way (docs/benchmarks.md).
    TaskBtf { comm_offset: i16 },
}

/// The read sizes [`Readers::ProbeRead`] tries in turn: the whole
/// buffer, then halves, for a path that ends near the end of its mapping
/// (a read past it faults and reads nothing). Unrolled: kernels before 5.3
/// refuse any backward jump.
pub const FIXED_READ_SIZES: [i32; 6] = [
    event::FILENAME_LEN as i32,
    event::FILENAME_LEN as i32 / 2,
    event::FILENAME_LEN as i32 / 4,
    event::FILENAME_LEN as i32 / 8,
    event::FILENAME_LEN as i32 / 16,
    event::FILENAME_LEN as i32 / 32,
];

/// Where events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// [`UnlinkEvent`] records into the [`EVENTS_MAP`] perf event array.
    PerfEvents,
    /// [`UnlinkEvent`] records, with their CPU, into the [`EVENTS_MAP`]
    /// BPF ring buffer (5.8+).
    RingBuffer,
    /// Text lines into the trace pipe with `bpf_trace_printk`, no map.
    TracePrintk,
}

// Stack layout (offsets from r10). Perf variants: the event, then the
// `struct filename` string pointer below it.
const EVENT: i16 = -(event::SIZE as i16);
const EVENT_NAME_PTR: i16 = EVENT - 8;
// Ring buffer variants: the record's header (all but the path) is made on
// the stack and copied into the reserved record; below it the `struct
// filename` string pointer (and a lost record's key).
const RING_HEADER: i16 = -(event::EXIT_SIZE as i16);
const RING_NAME_PTR: i16 = RING_HEADER - 8;
// Trace-pipe entry variant: the path buffer, the pointer, then the format.
const PRINTK_BUF: i16 = -(event::FILENAME_LEN as i16);
const PRINTK_NAME_PTR: i16 = PRINTK_BUF - 8;

impl Output {
    /// Where the records go; `None`: the trace pipe.
    pub fn sink(self) -> Option<Sink> {
        match self {
            Output::PerfEvents => Some(Sink::PerfEvents),
            Output::RingBuffer => Some(Sink::RingBuffer),
            Output::TracePrintk => None,
        }
    }
}

/// Stack offset of an event field.
const fn ev(field: usize) -> i16 {
    EVENT + field as i16
}

/// The entry probe (kprobe on `do_unlinkat`).
pub fn entry(profile: &Profile, choices: &Choices) -> Result<Program, BuildError> {
    let facts = profile.unlink()?;
    let abi = profile.abi()?;
    let (_, arg) = abi
        .arg(facts.name_arg)
        .ok_or(BuildError::ArgRegister(facts.name_arg))?;
    let arg = ctx_offset(arg)?;
    let reg = register_size(abi);
    let read = choices.read;
    let mut b = Builder::new();
    b.mov(R6, R1);
    match choices.output.sink() {
        Some(Sink::RingBuffer) => {
            b.load(reg, R7, R6, arg);
            // Every helper whose result does not need the record runs
            // first, into the header on the stack: the record is busy from
            // its reserve to its submit, and the reader cannot go past it.
            ring_header(&mut b, EventKind::Entry, choices.comm);
            let user_path = matches!(facts.kind, UnlinkArg::UserPath);
            if let UnlinkArg::Filename { name, refcnt } = facts.kind {
                ring_filename_fields(&mut b, read, name, refcnt)?;
            }
            ringbuf::wakeup_flags(&mut b, R9, event::SIZE as i32);
            ringbuf::reserve(&mut b, R8, event::SIZE as i32, RING_NAME_PTR);
            copy_ring_header(&mut b, R8);
            // Only the path is read into the record itself.
            let filename = At::record(R8).at(offset_of!(UnlinkEvent, filename));
            if user_path {
                read_path(&mut b, read.user_str(), filename, Source::Reg(R7));
            } else {
                read_short_path_first(&mut b, read, filename, Source::Stack(RING_NAME_PTR));
            }
            ringbuf::submit(&mut b, R8, R9);
        }
        Some(sink) => {
            let zero_from = match facts.kind {
                UnlinkArg::Filename { .. } => EVENT_NAME_PTR,
                UnlinkArg::UserPath => EVENT,
            };
            start_event(&mut b, EventKind::Entry, zero_from..0, sink, choices.comm);
            b.load(reg, R7, R6, arg);
            let filename = At::stack(ev(offset_of!(UnlinkEvent, filename)));
            match facts.kind {
                UnlinkArg::Filename { name, refcnt } => {
                    let refcnt_at = At::stack(ev(offset_of!(UnlinkEvent, refcnt)));
                    read_field(&mut b, read, refcnt_at, refcnt, "refcnt")?;
                    let read_name = b.new_label("read_name");
                    b.jump(JmpOp::Ne, R0, 0, read_name);
                    let flags = ev(offset_of!(UnlinkEvent, flags));
                    b.store(Size::W, R10, flags, event::HAS_REFCNT as i32);
                    b.bind(read_name);
                    read_filename(&mut b, read, EVENT_NAME_PTR, name, filename)?;
                }
                UnlinkArg::UserPath => {
                    read_path(&mut b, read.user_str(), filename, Source::Reg(R7))
                }
            }
            sink.emit(&mut b, R6, EVENT, event::SIZE as i32);
        }
        None => {
            zero(&mut b, PRINTK_NAME_PTR);
            b.call(Helper::GetCurrentPidTgid);
            b.mov(R8, R0);
            b.alu(AluOp::Rsh, R8, 32);
            b.load(reg, R7, R6, arg);
            match facts.kind {
                UnlinkArg::Filename { name, .. } => {
                    let to = At::stack(PRINTK_BUF);
                    read_filename(&mut b, read, PRINTK_NAME_PTR, name, to)?;
                }
                UnlinkArg::UserPath => {
                    let to = At::stack(PRINTK_BUF);
                    read_path(&mut b, read.user_str(), to, Source::Reg(R7));
                }
            }
            // %d = pid (r3), %s = the path buffer (r4).
            b.mov(R4, R10);
            b.add(R4, i32::from(PRINTK_BUF));
            b.mov(R3, R8);
            trace_printk(&mut b, PRINTK_NAME_PTR, ENTRY_FORMAT);
        }
    }
    b.mov(R0, 0);
    b.exit();
    finish(b, "unlink_entry", ProbeKind::Kprobe, choices.output)
}

/// The exit probe (kretprobe on `do_unlinkat`): pid, tid, comm, time and the
/// return value.
///
/// `do_unlinkat` returns `long` up to 5.x and `int` since 6.0; for an `int`
/// the upper half of rax is not defined (-2 reads as 4294967294). Its values,
/// 0 or -errno, fit in 32 bits on every kernel, so the probe sign-extends the
/// low half and both outputs carry the right number.
pub fn exit(profile: &Profile, choices: &Choices) -> Result<Program, BuildError> {
    // Nothing of the profile is read at exit, but a profile that cannot
    // drive the entry probe should not half-load.
    profile.unlink()?;
    let abi = profile.abi()?;
    let ret = ctx_offset(abi.ret.1)?;
    let reg = register_size(abi);
    let mut b = Builder::new();
    b.mov(R6, R1);
    match choices.output.sink() {
        Some(Sink::RingBuffer) => {
            // The whole record on the stack first, then a short reserve,
            // copy and submit (see the entry probe).
            ring_header(&mut b, EventKind::Exit, choices.comm);
            b.load(reg, R1, R6, ret);
            sign_extend_low_half(&mut b, R1);
            let ret_at = RING_HEADER + field(offset_of!(UnlinkEvent, ret));
            b.store(Size::DW, R10, ret_at, R1);
            let size = event::EXIT_SIZE as i32;
            ringbuf::wakeup_flags(&mut b, R9, size);
            ringbuf::reserve(&mut b, R8, size, RING_NAME_PTR);
            copy_ring_header(&mut b, R8);
            ringbuf::submit(&mut b, R8, R9);
        }
        Some(sink) => {
            // An exit record stops before the path: only that much is
            // zeroed and sent.
            let end = EVENT + event::EXIT_SIZE as i16;
            start_event(&mut b, EventKind::Exit, EVENT..end, sink, choices.comm);
            b.load(reg, R1, R6, ret);
            sign_extend_low_half(&mut b, R1);
            b.store(Size::DW, R10, ev(offset_of!(UnlinkEvent, ret)), R1);
            sink.emit(&mut b, R6, EVENT, event::EXIT_SIZE as i32);
        }
        None => {
            b.call(Helper::GetCurrentPidTgid);
            b.mov(R3, R0);
            b.alu(AluOp::Rsh, R3, 32);
            b.load(reg, R4, R6, ret);
            sign_extend_low_half(&mut b, R4);
            trace_printk(&mut b, 0, EXIT_FORMAT);
        }
    }
    b.mov(R0, 0);
    b.exit();
    finish(b, "unlink_exit", ProbeKind::Kretprobe, choices.output)
}

/// `reg = (s64)(s32)reg`, with the shifts every kernel's verifier knows.
fn sign_extend_low_half(b: &mut Builder, reg: Reg) {
    b.alu(AluOp::Lsh, reg, 32);
    b.alu(AluOp::Arsh, reg, 32);
}

fn finish(
    b: Builder,
    name: &'static str,
    kind: ProbeKind,
    output: Output,
) -> Result<Program, BuildError> {
    let maps = output.sink().map(Sink::maps).unwrap_or_default();
    Ok(Program {
        name,
        kind,
        function: FUNCTION,
        maps,
        insns: b.finish()?,
    })
}

/// A `pt_regs` register load is as wide as the register: the verifier
/// refuses an 8-byte read of a 32-bit ARM register. A narrower load
/// zero-extends; `sign_extend_low_half` then gives the return value its sign.
fn register_size(abi: &Abi) -> Size {
    if abi.pointer_bytes == 4 {
        Size::W
    } else {
        Size::DW
    }
}

fn ctx_offset(offset: usize) -> Result<i16, BuildError> {
    i16::try_from(offset).map_err(|_| BuildError::Offset {
        what: "pt_regs",
        offset: offset as u32,
    })
}

fn field_offset(field: Field, what: &'static str) -> Result<i32, BuildError> {
    i32::try_from(field.offset).map_err(|_| BuildError::Offset {
        what,
        offset: field.offset,
    })
}

/// Zero the stack from `from` up to the frame pointer.
fn zero(b: &mut Builder, from: i16) {
    zero_range(b, from..0);
}

/// Zero the stack slots in `range` (8-aligned offsets).
fn zero_range(b: &mut Builder, range: std::ops::Range<i16>) {
    for off in range.step_by(8) {
        b.store(Size::DW, R10, off, 0);
    }
}

/// Zero the stack in `zeroed`, then fill the event header on the stack.
fn start_event(
    b: &mut Builder,
    kind: EventKind,
    zeroed: std::ops::Range<i16>,
    sink: Sink,
    comm: CommRead,
) {
    zero_range(b, zeroed);
    write_header(b, kind, At::stack(EVENT), sink, comm);
}

/// Fill the event header of the record at `record`: version, kind, time,
/// pid, tid and comm, and for the ring buffer the CPU (with `reserved`
/// zeroed by the same store).
fn write_header(b: &mut Builder, kind: EventKind, record: At, sink: Sink, comm: CommRead) {
    let base = record.base;
    let version = record.off(offset_of!(UnlinkEvent, version));
    b.store(Size::W, base, version, event::VERSION as i32);
    b.store(
        Size::W,
        base,
        record.off(offset_of!(UnlinkEvent, kind)),
        kind as i32,
    );
    b.call(Helper::KtimeGetNs);
    b.store(
        Size::DW,
        base,
        record.off(offset_of!(UnlinkEvent, ts_ns)),
        R0,
    );
    // Upper half: thread group id (pid); lower half: thread id.
    b.call(Helper::GetCurrentPidTgid);
    b.store(Size::W, base, record.off(offset_of!(UnlinkEvent, tid)), R0);
    b.alu(AluOp::Rsh, R0, 32);
    b.store(Size::W, base, record.off(offset_of!(UnlinkEvent, pid)), R0);
    copy_comm(
        b,
        comm,
        record.base,
        record.off(offset_of!(UnlinkEvent, comm)),
    );
    if sink == Sink::RingBuffer {
        const { assert!(offset_of!(UnlinkEvent, reserved) == offset_of!(UnlinkEvent, cpu) + 4) };
        b.call(Helper::GetSmpProcessorId);
        // A u32 in r0, zero-extended: the CPU and a zero `reserved`.
        b.store(Size::DW, base, record.off(offset_of!(UnlinkEvent, cpu)), R0);
    }
}

/// Writes the current task's comm (`TASK_COMM_LEN` bytes) at `base + at`,
/// as `comm` says. Clobbers r0..r5. Public so that the loader's test load
/// of [`CommRead::TaskBtf`] is these very instructions.
pub fn copy_comm(b: &mut Builder, comm: CommRead, base: Reg, at: i16) {
    match comm {
        CommRead::Helper => {
            b.mov(R1, base);
            b.add(R1, i32::from(at));
            b.mov(R2, TASK_COMM_LEN as i32);
            b.call(Helper::GetCurrentComm);
        }
        CommRead::TaskBtf { comm_offset } => {
            const { assert!(TASK_COMM_LEN == 16) };
            b.call(Helper::GetCurrentTaskBtf);
            for half in [0, 8] {
                b.load(Size::DW, R1, R0, comm_offset + half);
                b.store(Size::DW, base, at + half, R1);
            }
        }
    }
}

/// The header of a ring buffer record, on the stack at [`RING_HEADER`]:
/// refcnt, flags and ret zeroed, the rest filled by [`write_header`].
fn ring_header(b: &mut Builder, kind: EventKind, comm: CommRead) {
    let zeroed = RING_HEADER + field(offset_of!(UnlinkEvent, refcnt));
    const { assert!(offset_of!(UnlinkEvent, ret) == offset_of!(UnlinkEvent, refcnt) + 8) };
    zero_range(b, zeroed..zeroed + 16);
    write_header(b, kind, At::stack(RING_HEADER), Sink::RingBuffer, comm);
}

/// Copies the header made by [`ring_header`] into the reserved record at
/// `record`, eight bytes at a time.
fn copy_ring_header(b: &mut Builder, record: Reg) {
    for off in (0..event::EXIT_SIZE as i16).step_by(8) {
        b.load(Size::DW, R1, R10, RING_HEADER + off);
        b.store(Size::DW, record, off, R1);
    }
}

/// Where the probe writes a field: at `off` from `base`, the frame pointer
/// (the record on the stack) or a register holding a reserved ring
/// buffer record.
#[derive(Clone, Copy)]
struct At {
    base: Reg,
    off: i16,
}

impl At {
    fn stack(off: i16) -> At {
        At { base: R10, off }
    }

    /// The start of the ring buffer record whose address `base` holds.
    fn record(base: Reg) -> At {
        At { base, off: 0 }
    }

    /// The offset of `field` (bytes into this place).
    fn off(self, field: usize) -> i16 {
        self.off + field as i16
    }

    fn at(self, field: usize) -> At {
        At {
            base: self.base,
            off: self.off(field),
        }
    }

    /// `reg = base + off`.
    fn to(self, b: &mut Builder, reg: Reg) {
        b.mov(reg, self.base);
        b.add(reg, i32::from(self.off));
    }
}

/// Offset of a field in a ring buffer record.
const fn field(offset: usize) -> i16 {
    offset as i16
}

/// The most bytes of `struct filename` the ring entry probe reads at once
/// to get both the name pointer and the refcnt.
const FILENAME_SPAN_MAX: u32 = 64;
/// Where that read lands: the stack below [`RING_NAME_PTR`].
const RING_SPAN: i16 = RING_NAME_PTR - FILENAME_SPAN_MAX as i16;

/// The ring entry probe's reads of the `struct filename` at r7: its name
/// pointer into [`RING_NAME_PTR`], its refcnt into the header, flagged
/// [`event::HAS_REFCNT`] when read. Where the two lie within
/// [`FILENAME_SPAN_MAX`] bytes (every profile seen: name at 0, refcnt at
/// 16) both come from one read, a helper call less per event; a failed
/// read leaves both zero (the helper zeroes its buffer), as two failed
/// reads did.
fn ring_filename_fields(
    b: &mut Builder,
    read: Readers,
    name: Field,
    refcnt: Field,
) -> Result<(), BuildError> {
    let refcnt_at = RING_HEADER + field(offset_of!(UnlinkEvent, refcnt));
    let flags = RING_HEADER + field(offset_of!(UnlinkEvent, flags));
    let start = name.offset.min(refcnt.offset);
    let end =
        (name.offset.saturating_add(name.size)).max(refcnt.offset.saturating_add(refcnt.size));
    // The stack loads below must be aligned to their size.
    let aligned =
        (name.offset - start).is_multiple_of(8) && (refcnt.offset - start).is_multiple_of(4);
    if name.size != 8 || refcnt.size != 4 || end - start > FILENAME_SPAN_MAX || !aligned {
        read_field(b, read, At::stack(refcnt_at), refcnt, "refcnt")?;
        let read_name = b.new_label("read_name");
        b.jump(JmpOp::Ne, R0, 0, read_name);
        b.store(Size::W, R10, flags, event::HAS_REFCNT as i32);
        b.bind(read_name);
        return read_field(b, read, At::stack(RING_NAME_PTR), name, "name");
    }
    let span = Field {
        offset: start,
        size: end - start,
        c_type: None,
    };
    read_field(b, read, At::stack(RING_SPAN), span, "name")?;
    let within = |f: &Field| RING_SPAN + (f.offset - start) as i16;
    b.load(Size::W, R1, R10, within(&refcnt));
    b.store(Size::W, R10, refcnt_at, R1);
    b.load(Size::DW, R1, R10, within(&name));
    b.store(Size::DW, R10, RING_NAME_PTR, R1);
    let unread = b.new_label("refcnt_unread");
    b.jump(JmpOp::Ne, R0, 0, unread);
    b.store(Size::W, R10, flags, event::HAS_REFCNT as i32);
    b.bind(unread);
    Ok(())
}

/// Read `field` of the `struct filename` at r7 into the stack at `to`.
fn read_field(
    b: &mut Builder,
    read: Readers,
    to: At,
    field: Field,
    what: &'static str,
) -> Result<(), BuildError> {
    to.to(b, R1);
    b.mov(R2, field.size as i32);
    b.mov(R3, R7);
    b.add(R3, field_offset(field, what)?);
    b.call(read.kernel());
    Ok(())
}

/// Read the string pointer at `name` of the `struct filename` at r7 (through
/// the stack slot `ptr_slot`), then the string into `to`.
fn read_filename(
    b: &mut Builder,
    read: Readers,
    ptr_slot: i16,
    name: Field,
    to: At,
) -> Result<(), BuildError> {
    read_field(b, read, At::stack(ptr_slot), name, "name")?;
    read_path(b, read.kernel_str(), to, Source::Stack(ptr_slot));
    Ok(())
}

/// Where a path's address is: a register the helpers keep (r6..r9), or a
/// stack slot.
#[derive(Clone, Copy)]
enum Source {
    Reg(Reg),
    Stack(i16),
}

impl Source {
    fn to_r3(self, b: &mut Builder) {
        match self {
            Source::Reg(reg) => {
                b.mov(R3, reg);
            }
            Source::Stack(slot) => {
                b.load(Size::DW, R3, R10, slot);
            }
        }
    }
}

/// Read the path at `src` into the (zeroed) buffer at `to`: with the string
/// helper when there is one, else with fixed-size `probe_read`s.
fn read_path(b: &mut Builder, helper: Option<Helper>, to: At, src: Source) {
    let Some(helper) = helper else {
        return read_fixed(b, to, src);
    };
    src.to_r3(b);
    to.to(b, R1);
    b.mov(R2, event::FILENAME_LEN as i32);
    b.call(helper);
}

/// Bytes of a kernel path the ring entry probe reads at a fixed size
/// first: most paths fit.
const SHORT_PATH: i16 = 64;

/// Read the kernel path at `src` into the record at `to` (r8's), as
/// [`read_path`] does, but first [`SHORT_PATH`] bytes at a fixed size:
/// the kernel copies those 8 bytes at a time where the string helper takes
/// one byte at a time (under `-icount`, about 690 ns for a 22-byte path).
/// Where they hold no NUL (a longer path) or the read fails (the name ends
/// before an unmapped page), the string helper reads it. Bytes after the
/// NUL are whatever followed the name; the reader stops at the NUL, as it
/// does after the string helper, which leaves the rest as it was. Uses r6
/// and r7.
fn read_short_path_first(b: &mut Builder, read: Readers, to: At, src: Source) {
    if read.kernel_str().is_none() {
        return read_path(b, None, to, src);
    }
    let string = b.new_label("path_string");
    let done = b.new_label("path_done");
    src.to_r3(b);
    to.to(b, R1);
    b.mov(R2, i32::from(SHORT_PATH));
    b.call(read.kernel());
    b.jump(JmpOp::Ne, R0, 0, string);
    crate::strings::nul_among_words(b, to.base, to.off, SHORT_PATH, R7, R6);
    b.jump(JmpOp::Ne, R7, 0, done);
    b.bind(string);
    read_path(b, read.kernel_str(), to, src);
    b.bind(done);
}

/// `probe_read(fp + to, size, src)` for each of [`FIXED_READ_SIZES`] until
/// one succeeds; the last byte is then zeroed, so the buffer holds a
/// NUL-terminated string however long the path was.
fn read_fixed(b: &mut Builder, to: At, src: Source) {
    if to.base != R10 {
        // A ring buffer record is not zeroed, and a shorter read leaves
        // the rest as it was: zero the buffer, as the stack's is.
        for off in (0..event::FILENAME_LEN as i16).step_by(8) {
            b.store(Size::DW, to.base, to.off + off, 0);
        }
    }
    let done = b.new_label("fixed_read_done");
    for (i, size) in FIXED_READ_SIZES.into_iter().enumerate() {
        if i > 0 {
            b.jump(JmpOp::Eq, R0, 0, done);
        }
        src.to_r3(b);
        to.to(b, R1);
        b.mov(R2, size);
        b.call(Helper::ProbeRead);
    }
    b.bind(done);
    b.store(Size::B, to.base, to.off + event::FILENAME_LEN as i16 - 1, 0);
}

/// Write `format` (NUL-terminated) on the stack just below `below`, then
/// `trace_printk(format, size, r3, r4, r5)`; r3..r5 are set by the caller.
fn trace_printk(b: &mut Builder, below: i16, format: &str) {
    let mut bytes = format.as_bytes().to_vec();
    bytes.push(0);
    let size = bytes.len() as i32;
    // Whole 8-byte slots, padding included, so every byte is initialized.
    bytes.resize(bytes.len().next_multiple_of(8), 0);
    let at = below - bytes.len() as i16;
    for (i, chunk) in bytes.chunks(4).enumerate() {
        // BPF stores are little-endian on x86-64, like the text in memory.
        let word = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        b.store(Size::W, R10, at + 4 * i as i16, word);
    }
    b.mov(R1, R10);
    b.add(R1, i32::from(at));
    b.mov(R2, size);
    b.call(Helper::TracePrintk);
}
