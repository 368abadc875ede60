//! A small userspace eBPF interpreter, to run the probes' encoded bytes in
//! tests with a fake `pt_regs`, fake kernel and user memory, and helper stubs.
//!
//! Written here rather than taken from `rbpf`: rbpf hands helpers raw host
//! pointers, so stubs such as `probe_read` would need `unsafe` outside the
//! loader. Here every address is a number into a set of owned regions (the
//! context, the 512-byte stack, and memory the test maps), each access is
//! bounds- and permission-checked, and a bad access is an error, never a
//! panic or a host read.
//!
//! Helpers follow the kernel's observable behaviour: `probe_read*` return
//! `-EFAULT` and zero the destination on a bad source; string readers
//! return the length including the NUL; `perf_event_output` captures the
//! record; `trace_printk` captures the formatted line, with `%s` limited to
//! 63 bytes like the kernel's 64-byte buffer. Hash maps added with
//! [`Vm::add_hash_map`] serve `map_lookup_elem`/`update`/`delete`, their
//! values memory the program may load from and store to.

use kernel_headers::bpf::{F_CURRENT_CPU, Helper, RawInsn, STACK_SIZE};
use kernel_headers::pt_regs::{self, Abi};
use kernel_headers::sched::TASK_COMM_LEN;
use thiserror::Error;

use crate::asm::{AluOp, DecodeError, Insn, JmpOp, MapRef, Operand, Reg, Width, decode};

/// Address of the context (`pt_regs`) in the interpreter's address space.
pub const CTX_ADDR: u64 = 0xffff_c900_0000_0000;
/// Lowest address of the stack; r10 starts at `STACK_ADDR + 512`.
pub const STACK_ADDR: u64 = 0xffff_c900_1000_0000;
/// A map's value in a register is `MAP_ADDR + fd`: not readable memory.
pub const MAP_ADDR: u64 = 0xffff_a000_0000_0000;
/// Hash map values live from here, each in its own region.
pub const MAP_VALUE_ADDR: u64 = 0xffff_b000_0000_0000;
/// Reserved ring buffer records live from here, each in its own region.
pub const RING_RECORD_ADDR: u64 = 0xffff_b800_0000_0000;
/// What a reserved ring buffer record holds before the program writes it
/// (the kernel does not zero it): a byte a test would notice.
pub const RING_STALE: u8 = 0xa5;
const ENOENT: i64 = 2;
const EINVAL: i64 = 22;
const E2BIG: i64 = 7;

const EFAULT: i64 = 14;
const ENOSPC: i64 = 28;
/// Far more than a test's loops run: this only stops a broken program.
const STEP_LIMIT: usize = 100_000;
/// Registers r1..r5 after a call: the verifier forbids reading them, so give
/// a program that does garbage rather than a plausible value.
const CLOBBERED: u64 = 0xdead_beef_dead_beef;
/// Bytes of a `%s` argument `trace_printk` prints (its buffer is 64).
const PRINTK_STR_MAX: usize = 63;

/// Whose memory a mapped region is: decides which readers may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Kernel,
    User,
    /// The current `task_struct`: `bpf_get_current_task_btf` returns the
    /// first address mapped so, and the program loads from it directly.
    Task,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ctx,
    Stack,
    Kernel,
    User,
    /// A hash map entry's value: the program may load and store.
    MapValue,
    /// A ring buffer record reserved and not yet submitted: the program
    /// and helpers write it in place.
    RingRecord,
    /// The current task (see [`Space::Task`]).
    Task,
}

const PROGRAM_READ: &[Kind] = &[
    Kind::Ctx,
    Kind::Stack,
    Kind::MapValue,
    Kind::RingRecord,
    Kind::Task,
];
const STACK_ONLY: &[Kind] = &[Kind::Stack];
const PROGRAM_WRITE: &[Kind] = &[Kind::Stack, Kind::MapValue, Kind::RingRecord];
const HELPER_WRITE: &[Kind] = &[Kind::Stack, Kind::RingRecord];
const KERNEL: &[Kind] = &[
    Kind::Ctx,
    Kind::Stack,
    Kind::Kernel,
    Kind::MapValue,
    Kind::Task,
];
const USER: &[Kind] = &[Kind::User];
const ANY: &[Kind] = &[
    Kind::Ctx,
    Kind::Stack,
    Kind::Kernel,
    Kind::User,
    Kind::MapValue,
];

/// A `BPF_MAP_TYPE_HASH` as the program sees it (per-CPU maps look the
/// same from one CPU).
#[derive(Debug, Clone)]
struct HashMap {
    fd: i32,
    key_size: usize,
    value_size: usize,
    /// Key and the base address of its value's region.
    entries: Vec<(Vec<u8>, u64)>,
    /// An array's entries are all there from the start: none is added or
    /// deleted, as the kernel refuses both.
    array: bool,
}

#[derive(Debug, Clone)]
struct Region {
    base: u64,
    bytes: Vec<u8>,
    kind: Kind,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InterpError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(
        "instruction {pc}: {access} of {len} bytes at {addr:#x} is outside memory it may touch"
    )]
    Fault {
        pc: usize,
        addr: u64,
        len: usize,
        access: &'static str,
    },
    #[error("instruction {pc}: jump to {target}, which is not an instruction")]
    BadJump { pc: usize, target: i64 },
    #[error("instruction {pc}: execution ran off the end of the program")]
    FellOffEnd { pc: usize },
    #[error("instruction {pc}: writes r10")]
    WritesFramePointer { pc: usize },
    #[error("instruction {pc}: map `{name}` was never given an fd (encode the program first)")]
    Unencoded { pc: usize, name: &'static str },
    #[error("stopped after {STEP_LIMIT} instructions")]
    StepLimit,
    #[error("instruction {pc}: {helper}: {reason}")]
    Helper {
        pc: usize,
        helper: &'static str,
        reason: String,
    },
    #[error("a ring buffer record was reserved and never submitted")]
    Unsubmitted,
    #[error("memory at {addr:#x} ({len} bytes) overlaps memory already mapped")]
    Overlap { addr: u64, len: usize },
}

/// The interpreter and the world its program sees.
#[derive(Debug, Clone, Default)]
pub struct Vm {
    regions: Vec<Region>,
    /// `get_current_pid_tgid()`: tgid << 32 | tid.
    pub pid_tgid: u64,
    /// `get_current_comm()`, NUL-padded.
    pub comm: [u8; TASK_COMM_LEN],
    /// `ktime_get_ns()`.
    pub ktime_ns: u64,
    /// The fd of the perf event array `perf_event_output` accepts.
    pub perf_map_fd: i32,
    /// Records passed to `perf_event_output`.
    pub perf_output: Vec<Vec<u8>>,
    /// The fd of the ring buffer `ringbuf_output` and `ringbuf_query` accept.
    pub ring_map_fd: i32,
    /// Records passed to `ringbuf_output`, with its flags.
    pub ring_output: Vec<(Vec<u8>, u64)>,
    /// What `ringbuf_query(BPF_RB_AVAIL_DATA)` answers: bytes written and
    /// not consumed; each record adds its size and header, 8-aligned.
    pub ring_pending: u64,
    /// Bytes the ring holds: a record past them fails with -ENOSPC.
    pub ring_capacity: u64,
    /// Lines passed to `trace_printk`, formatted.
    pub trace_pipe: Vec<String>,
    /// `get_current_uid_gid()`: gid << 32 | uid.
    pub uid_gid: u64,
    /// `get_smp_processor_id()`.
    pub cpu: u32,
    hash_maps: Vec<HashMap>,
    next_value_addr: u64,
    next_record_addr: u64,
}

/// A zeroed native `pt_regs` with the named registers set, e.g.
/// `[("si", addr)]`. `None` names a register that does not exist.
pub fn fake_pt_regs(values: &[(&str, u64)]) -> Option<Vec<u8>> {
    fake_pt_regs_of(pt_regs::NATIVE, values)
}

/// [`fake_pt_regs`] of architecture `abi`, for a program built for it
/// (a test with x86-64 register names runs the same on any host).
pub fn fake_pt_regs_of(abi: &Abi, values: &[(&str, u64)]) -> Option<Vec<u8>> {
    let width = usize::from(abi.pointer_bytes);
    let mut bytes = vec![0; abi.pt_regs_size];
    for &(name, value) in values {
        let off = abi.register(name)?;
        bytes[off..off + width].copy_from_slice(&value.to_le_bytes()[..width]);
    }
    Some(bytes)
}

impl Vm {
    pub fn new() -> Vm {
        Vm::default()
    }

    /// Make `bytes` readable at `addr` as kernel or user memory.
    pub fn map(&mut self, space: Space, addr: u64, bytes: Vec<u8>) -> Result<(), InterpError> {
        let len = bytes.len();
        let end = addr.checked_add(len as u64);
        let overlaps = self
            .regions
            .iter()
            .any(|r| end.is_none_or(|end| addr < r.base + r.bytes.len() as u64 && r.base < end));
        if overlaps || end.is_none() || [CTX_ADDR, STACK_ADDR].contains(&addr) {
            return Err(InterpError::Overlap { addr, len });
        }
        let kind = match space {
            Space::Kernel => Kind::Kernel,
            Space::User => Kind::User,
            Space::Task => Kind::Task,
        };
        self.regions.push(Region {
            base: addr,
            bytes,
            kind,
        });
        Ok(())
    }

    /// Serve `fd` as the kernel serves a map of `map_type`
    /// (`kernel_headers::bpf::map_type`): an array (plain or per-CPU: the
    /// interpreter is one CPU) of `entries` zeroed values, else a hash.
    pub fn add_map(
        &mut self,
        fd: i32,
        map_type: u32,
        key_size: usize,
        value_size: usize,
        entries: u32,
    ) {
        use kernel_headers::bpf::map_type::{ARRAY, PERCPU_ARRAY};
        if matches!(map_type, ARRAY | PERCPU_ARRAY) {
            self.add_array_map(fd, value_size, entries);
        } else {
            self.add_hash_map(fd, key_size, value_size);
        }
    }

    /// Serve `fd` as a hash map with these sizes.
    pub fn add_hash_map(&mut self, fd: i32, key_size: usize, value_size: usize) {
        self.hash_maps.push(HashMap {
            fd,
            key_size,
            value_size,
            entries: Vec::new(),
            array: false,
        });
    }

    /// Serve `fd` as an array map of `entries` zeroed values (keys are
    /// u32 indexes), as the kernel creates one.
    pub fn add_array_map(&mut self, fd: i32, value_size: usize, entries: u32) {
        let mut map = HashMap {
            fd,
            key_size: 4,
            value_size,
            entries: Vec::new(),
            array: true,
        };
        for key in 0..entries {
            let addr = MAP_VALUE_ADDR + self.next_value_addr;
            self.next_value_addr += value_size.next_multiple_of(8).max(8) as u64;
            self.regions.push(Region {
                base: addr,
                bytes: vec![0; value_size],
                kind: Kind::MapValue,
            });
            map.entries.push((key.to_ne_bytes().to_vec(), addr));
        }
        self.hash_maps.push(map);
    }

    /// The entries of hash map `fd` (key, value), in insertion order.
    pub fn map_entries(&self, fd: i32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Some(map) = self.hash_maps.iter().find(|m| m.fd == fd) else {
            return Vec::new();
        };
        map.entries
            .iter()
            .filter_map(|(key, addr)| {
                let value = self.read(*addr, map.value_size, &[Kind::MapValue])?;
                Some((key.clone(), value.to_vec()))
            })
            .collect()
    }

    /// Run an encoded program with `ctx` as its context; returns r0.
    pub fn run(&mut self, program: &[RawInsn], ctx: &[u8]) -> Result<u64, InterpError> {
        self.regions.push(Region {
            base: CTX_ADDR,
            bytes: ctx.to_vec(),
            kind: Kind::Ctx,
        });
        self.regions.push(Region {
            base: STACK_ADDR,
            bytes: vec![0; STACK_SIZE],
            kind: Kind::Stack,
        });
        let mut result = self.execute(program);
        let unsubmitted = self.regions.iter().any(|r| r.kind == Kind::RingRecord);
        if unsubmitted && result.is_ok() {
            result = Err(InterpError::Unsubmitted);
        }
        self.regions
            .retain(|r| !matches!(r.kind, Kind::Ctx | Kind::Stack | Kind::RingRecord));
        result
    }

    fn execute(&mut self, program: &[RawInsn]) -> Result<u64, InterpError> {
        let insns = decode(program)?;
        let mut at_slot = vec![None; program.len()];
        for (i, &(slot, _)) in insns.iter().enumerate() {
            at_slot[slot] = Some(i);
        }
        let jump = |pc: usize, off: i16| {
            let target = pc as i64 + 1 + i64::from(off);
            usize::try_from(target)
                .ok()
                .and_then(|t| at_slot.get(t).copied().flatten())
                .ok_or(InterpError::BadJump { pc, target })
        };
        let mut r = [0u64; 11];
        r[1] = CTX_ADDR;
        r[10] = STACK_ADDR + STACK_SIZE as u64;
        let mut i = 0;
        for _ in 0..STEP_LIMIT {
            let Some(&(pc, insn)) = insns.get(i) else {
                let pc = insns.last().map_or(0, |&(pc, _)| pc);
                return Err(InterpError::FellOffEnd { pc });
            };
            if insn.written() == Some(Reg::R10) {
                return Err(InterpError::WritesFramePointer { pc });
            }
            let value = |src: Operand| match src {
                Operand::Imm(imm) => i64::from(imm) as u64,
                Operand::Reg(reg) => r[usize::from(reg.number())],
            };
            i += 1;
            match insn {
                Insn::Alu {
                    width,
                    op,
                    dst,
                    src,
                } => {
                    let d = usize::from(dst.number());
                    r[d] = match width {
                        Width::W64 => alu64(op, r[d], value(src)),
                        Width::W32 => u64::from(alu32(op, r[d] as u32, value(src) as u32)),
                    };
                }
                Insn::LdImm64 { dst, imm } => r[usize::from(dst.number())] = imm as u64,
                Insn::LdMap { dst, map } => {
                    r[usize::from(dst.number())] = match map {
                        MapRef::Fd(fd) => MAP_ADDR + u64::from(fd as u32),
                        MapRef::Name(name) => return Err(InterpError::Unencoded { pc, name }),
                    }
                }
                Insn::Load {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    let addr = r[usize::from(src.number())].wrapping_add(off as u64);
                    let bytes = self.read(addr, size.bytes(), PROGRAM_READ).ok_or(fault(
                        pc,
                        addr,
                        size.bytes(),
                        "load",
                    ))?;
                    let mut le = [0; 8];
                    le[..bytes.len()].copy_from_slice(bytes);
                    r[usize::from(dst.number())] = u64::from_le_bytes(le);
                }
                Insn::Store {
                    size,
                    dst,
                    off,
                    src,
                } => {
                    let addr = r[usize::from(dst.number())].wrapping_add(off as u64);
                    let bytes = value(src).to_le_bytes();
                    self.store(addr, &bytes[..size.bytes()]).ok_or(fault(
                        pc,
                        addr,
                        size.bytes(),
                        "store",
                    ))?;
                }
                Insn::Ja { off } => i = jump(pc, off)?,
                Insn::Jump { op, dst, src, off } => {
                    if taken(op, r[usize::from(dst.number())], value(src)) {
                        i = jump(pc, off)?;
                    }
                }
                Insn::Call(helper) => {
                    r[0] = self.call(helper, &r, pc)?;
                    r[1..=5].fill(CLOBBERED);
                }
                Insn::Exit => return Ok(r[0]),
            }
        }
        Err(InterpError::StepLimit)
    }

    fn find(&self, addr: u64, len: usize, allowed: &[Kind]) -> Option<(usize, usize)> {
        self.regions.iter().enumerate().find_map(|(n, region)| {
            let start = addr.checked_sub(region.base)?;
            let start = usize::try_from(start).ok()?;
            let fits = start.checked_add(len)? <= region.bytes.len();
            (fits && allowed.contains(&region.kind)).then_some((n, start))
        })
    }

    fn read(&self, addr: u64, len: usize, allowed: &[Kind]) -> Option<&[u8]> {
        let (n, start) = self.find(addr, len, allowed)?;
        Some(&self.regions[n].bytes[start..start + len])
    }

    /// Programs write to the stack and map values, helpers to the stack.
    fn store(&mut self, addr: u64, data: &[u8]) -> Option<()> {
        let (n, start) = self.find(addr, data.len(), PROGRAM_WRITE)?;
        self.regions[n].bytes[start..start + data.len()].copy_from_slice(data);
        Some(())
    }

    /// Helpers write only to the stack and reserved ring records.
    fn write(&mut self, addr: u64, data: &[u8]) -> Option<()> {
        let (n, start) = self.find(addr, data.len(), HELPER_WRITE)?;
        self.regions[n].bytes[start..start + data.len()].copy_from_slice(data);
        Some(())
    }

    /// A NUL-terminated string of at most `max` bytes (NUL excluded).
    fn read_c_str(&self, addr: u64, max: usize, allowed: &[Kind]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < max {
            let byte = self.read(addr.checked_add(out.len() as u64)?, 1, allowed)?[0];
            if byte == 0 {
                break;
            }
            out.push(byte);
        }
        Some(out)
    }

    fn call(&mut self, helper: Helper, r: &[u64; 11], pc: usize) -> Result<u64, InterpError> {
        let fail = |reason: String| InterpError::Helper {
            pc,
            helper: helper.name(),
            reason,
        };
        let size = |reg: u64| {
            usize::try_from(reg)
                .ok()
                .filter(|&n| n > 0 && n <= STACK_SIZE)
                .ok_or_else(|| fail(format!("size {reg} is not 1..={STACK_SIZE}")))
        };
        let dst_fault = |len| {
            fail(format!(
                "destination {:#x} ({len} bytes) is not stack",
                r[1]
            ))
        };
        let efault = (-EFAULT) as u64;
        let map_at = |vm: &Vm| {
            vm.hash_maps
                .iter()
                .position(|m| MAP_ADDR + u64::from(m.fd as u32) == r[1])
                .ok_or_else(|| fail(format!("{:#x} is not a hash map", r[1])))
        };
        let stack_bytes = |vm: &Vm, addr: u64, len: usize, what: &str| {
            vm.read(addr, len, STACK_ONLY)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| fail(format!("{what} at {addr:#x} ({len} bytes) is not stack")))
        };
        match helper {
            Helper::MapLookupElem => {
                let m = map_at(self)?;
                let key = stack_bytes(self, r[2], self.hash_maps[m].key_size, "key")?;
                let found = self.hash_maps[m].entries.iter().find(|(k, _)| *k == key);
                Ok(found.map_or(0, |&(_, addr)| addr))
            }
            Helper::MapUpdateElem => {
                let m = map_at(self)?;
                let (key_size, value_size) =
                    (self.hash_maps[m].key_size, self.hash_maps[m].value_size);
                let key = stack_bytes(self, r[2], key_size, "key")?;
                let value = stack_bytes(self, r[3], value_size, "value")?;
                let existing = self.hash_maps[m].entries.iter().find(|(k, _)| *k == key);
                if let Some(&(_, addr)) = existing {
                    let (n, _) = self
                        .find(addr, value_size, &[Kind::MapValue])
                        .ok_or_else(|| fail("map value vanished".into()))?;
                    self.regions[n].bytes = value;
                } else if self.hash_maps[m].array {
                    return Ok((-E2BIG) as u64);
                } else {
                    let addr = MAP_VALUE_ADDR + self.next_value_addr;
                    self.next_value_addr += value_size.next_multiple_of(8).max(8) as u64;
                    self.regions.push(Region {
                        base: addr,
                        bytes: value,
                        kind: Kind::MapValue,
                    });
                    self.hash_maps[m].entries.push((key, addr));
                }
                Ok(0)
            }
            Helper::MapDeleteElem => {
                let m = map_at(self)?;
                let key = stack_bytes(self, r[2], self.hash_maps[m].key_size, "key")?;
                if self.hash_maps[m].array {
                    return Ok((-EINVAL) as u64);
                }
                let entries = &mut self.hash_maps[m].entries;
                match entries.iter().position(|(k, _)| *k == key) {
                    Some(i) => {
                        let (_, addr) = entries.remove(i);
                        self.regions
                            .retain(|r| r.base != addr || r.kind != Kind::MapValue);
                        Ok(0)
                    }
                    None => Ok((-ENOENT) as u64),
                }
            }
            // Helpers of `nobtf trace`'s sampling builtins: the interpreter
            // runs the unlink probes, which call none of them.
            Helper::GetPrandomU32
            | Helper::GetStackid
            | Helper::GetCurrentTask
            | Helper::SendSignal
            | Helper::GetNumaNodeId
            | Helper::GetCurrentCgroupId
            | Helper::GetFuncIp => Err(fail(format!("{} is not interpreted", helper.name()))),
            Helper::GetCurrentTaskBtf => self
                .regions
                .iter()
                .find(|r| r.kind == Kind::Task)
                .map(|r| r.base)
                .ok_or_else(|| fail("no task mapped (Space::Task)".into())),
            Helper::GetCurrentUidGid => Ok(self.uid_gid),
            Helper::GetSmpProcessorId => Ok(u64::from(self.cpu)),
            Helper::KtimeGetNs => Ok(self.ktime_ns),
            Helper::GetCurrentPidTgid => Ok(self.pid_tgid),
            Helper::GetCurrentComm => {
                let len = size(r[2])?;
                let mut comm = vec![0; len];
                let n = (len - 1).min(self.comm.len());
                comm[..n].copy_from_slice(&self.comm[..n]);
                self.write(r[1], &comm).ok_or_else(|| dst_fault(len))?;
                Ok(0)
            }
            Helper::ProbeRead | Helper::ProbeReadKernel | Helper::ProbeReadUser => {
                let len = size(r[2])?;
                let allowed = match helper {
                    Helper::ProbeRead => ANY,
                    Helper::ProbeReadKernel => KERNEL,
                    _ => USER,
                };
                let (data, ret) = match self.read(r[3], len, allowed) {
                    Some(data) => (data.to_vec(), 0),
                    None => (vec![0; len], efault),
                };
                self.write(r[1], &data).ok_or_else(|| dst_fault(len))?;
                Ok(ret)
            }
            Helper::ProbeReadStr | Helper::ProbeReadKernelStr | Helper::ProbeReadUserStr => {
                let len = size(r[2])?;
                let allowed = match helper {
                    Helper::ProbeReadStr => ANY,
                    Helper::ProbeReadKernelStr => KERNEL,
                    _ => USER,
                };
                let (data, ret) = match self.read_c_str(r[3], len - 1, allowed) {
                    Some(mut text) => {
                        text.push(0);
                        let n = text.len() as u64;
                        (text, n)
                    }
                    None => (vec![0; len], efault),
                };
                self.write(r[1], &data).ok_or_else(|| dst_fault(len))?;
                Ok(ret)
            }
            Helper::PerfEventOutput => {
                if r[1] != CTX_ADDR {
                    return Err(fail("first argument is not the context".into()));
                }
                if r[2] != MAP_ADDR + u64::from(self.perf_map_fd as u32) {
                    return Err(fail(format!("{:#x} is not the perf event array", r[2])));
                }
                if r[3] != F_CURRENT_CPU {
                    return Err(fail(format!("flags {:#x} are not BPF_F_CURRENT_CPU", r[3])));
                }
                let len = size(r[5])?;
                let data = self
                    .read(r[4], len, STACK_ONLY)
                    .ok_or_else(|| fail(format!("record at {:#x} is not stack", r[4])))?;
                self.perf_output.push(data.to_vec());
                Ok(0)
            }
            Helper::RingbufQuery | Helper::RingbufOutput => {
                if r[1] != MAP_ADDR + u64::from(self.ring_map_fd as u32) {
                    return Err(fail(format!("{:#x} is not the ring buffer", r[1])));
                }
                if helper == Helper::RingbufQuery {
                    return match r[2] {
                        0 => Ok(self.ring_pending),
                        other => Err(fail(format!("query {other} is not BPF_RB_AVAIL_DATA"))),
                    };
                }
                let len = size(r[3])?;
                let data = self
                    .read(r[2], len, STACK_ONLY)
                    .ok_or_else(|| fail(format!("record at {:#x} is not stack", r[2])))?
                    .to_vec();
                if r[4] > 3 {
                    return Err(fail(format!("flags {:#x} are not BPF_RB_*", r[4])));
                }
                let taken = (len as u64 + 8).next_multiple_of(8);
                if self.ring_pending + taken > self.ring_capacity {
                    return Ok((-ENOSPC) as u64);
                }
                self.ring_pending += taken;
                self.ring_output.push((data, r[4]));
                Ok(0)
            }
            Helper::RingbufReserve => {
                if r[1] != MAP_ADDR + u64::from(self.ring_map_fd as u32) {
                    return Err(fail(format!("{:#x} is not the ring buffer", r[1])));
                }
                let len = size(r[2])?;
                if r[3] != 0 {
                    return Err(fail(format!("flags {:#x} are not 0", r[3])));
                }
                let taken = (len as u64 + 8).next_multiple_of(8);
                if self.ring_pending + taken > self.ring_capacity {
                    return Ok(0);
                }
                // Reserving moves the producer: the query counts it.
                self.ring_pending += taken;
                let addr = RING_RECORD_ADDR + self.next_record_addr;
                self.next_record_addr += taken;
                self.regions.push(Region {
                    base: addr,
                    bytes: vec![RING_STALE; len],
                    kind: Kind::RingRecord,
                });
                Ok(addr)
            }
            Helper::RingbufSubmit => {
                let at = self
                    .regions
                    .iter()
                    .position(|g| g.kind == Kind::RingRecord && g.base == r[1])
                    .ok_or_else(|| fail(format!("{:#x} is not a reserved record", r[1])))?;
                if r[2] > 3 {
                    return Err(fail(format!("flags {:#x} are not BPF_RB_*", r[2])));
                }
                let record = self.regions.remove(at);
                self.ring_output.push((record.bytes, r[2]));
                Ok(0)
            }
            Helper::TracePrintk => {
                let len = size(r[2])?;
                let format = self
                    .read(r[1], len, STACK_ONLY)
                    .ok_or_else(|| fail(format!("format at {:#x} is not stack", r[1])))?;
                let Some((0, format)) = format.split_last() else {
                    return Err(fail("format is not NUL-terminated".into()));
                };
                let line = self.printk(format, &r[3..=5]).map_err(fail)?;
                let n = line.len() as u64;
                self.trace_pipe.push(line);
                Ok(n)
            }
        }
    }

    /// Format like the kernel's `bpf_trace_printk`: `%d %i %u %x %s %%`
    /// with optional `l`/`ll`, at most three arguments.
    fn printk(&self, format: &[u8], args: &[u64]) -> Result<String, String> {
        let mut out = String::new();
        let mut args = args.iter().copied();
        let mut bytes = format.iter().copied();
        while let Some(c) = bytes.next() {
            if c != b'%' {
                out.push(char::from(c));
                continue;
            }
            let mut long = 0;
            let conv = loop {
                match bytes.next() {
                    Some(b'l') => long += 1,
                    Some(conv) => break conv,
                    None => return Err("format ends inside a conversion".into()),
                }
            };
            if conv == b'%' {
                out.push('%');
                continue;
            }
            let arg = args.next().ok_or("more than three conversions")?;
            let text = match (conv, long) {
                (b'd' | b'i', 0) => (arg as i32).to_string(),
                (b'd' | b'i', _) => (arg as i64).to_string(),
                (b'u', 0) => (arg as u32).to_string(),
                (b'u', _) => arg.to_string(),
                (b'x', 0) => format!("{:x}", arg as u32),
                (b'x', _) => format!("{arg:x}"),
                (b's', 0) => {
                    let text = self.read_c_str(arg, PRINTK_STR_MAX, KERNEL);
                    String::from_utf8_lossy(&text.unwrap_or_default()).into_owned()
                }
                _ => return Err(format!("unsupported conversion `{}`", char::from(conv))),
            };
            out.push_str(&text);
        }
        Ok(out)
    }
}

fn fault(pc: usize, addr: u64, len: usize, access: &'static str) -> InterpError {
    InterpError::Fault {
        pc,
        addr,
        len,
        access,
    }
}

/// 64-bit ALU with the kernel's runtime rules: shifts masked, x/0 = 0, x%0 = x.
fn alu64(op: AluOp, a: u64, b: u64) -> u64 {
    match op {
        AluOp::Add => a.wrapping_add(b),
        AluOp::Sub => a.wrapping_sub(b),
        AluOp::Mul => a.wrapping_mul(b),
        AluOp::Div => a.checked_div(b).unwrap_or(0),
        AluOp::Or => a | b,
        AluOp::And => a & b,
        AluOp::Lsh => a << (b & 63),
        AluOp::Rsh => a >> (b & 63),
        AluOp::Mod => a.checked_rem(b).unwrap_or(a),
        AluOp::Xor => a ^ b,
        AluOp::Mov => b,
        AluOp::Arsh => ((a as i64) >> (b & 63)) as u64,
    }
}

/// 32-bit ALU; the caller zero-extends the result. Only the shifts differ
/// from the 64-bit ALU on zero-extended operands, truncated: the count is
/// masked to 5 bits, and `Arsh` copies bit 31.
fn alu32(op: AluOp, a: u32, b: u32) -> u32 {
    match op {
        AluOp::Lsh => a << (b & 31),
        AluOp::Rsh => a >> (b & 31),
        AluOp::Arsh => ((a as i32) >> (b & 31)) as u32,
        AluOp::Add
        | AluOp::Sub
        | AluOp::Mul
        | AluOp::Div
        | AluOp::Or
        | AluOp::And
        | AluOp::Mod
        | AluOp::Xor
        | AluOp::Mov => alu64(op, a.into(), b.into()) as u32,
    }
}

fn taken(op: JmpOp, a: u64, b: u64) -> bool {
    let (sa, sb) = (a as i64, b as i64);
    match op {
        JmpOp::Eq => a == b,
        JmpOp::Gt => a > b,
        JmpOp::Ge => a >= b,
        JmpOp::Set => a & b != 0,
        JmpOp::Ne => a != b,
        JmpOp::Sgt => sa > sb,
        JmpOp::Sge => sa >= sb,
        JmpOp::Lt => a < b,
        JmpOp::Le => a <= b,
        JmpOp::Slt => sa < sb,
        JmpOp::Sle => sa <= sb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::{Builder, Reg::*, Size};

    fn run(b: Builder, vm: &mut Vm) -> Result<u64, InterpError> {
        let raw = b.finish().unwrap().encode(|_| Some(3)).unwrap();
        vm.run(
            &raw,
            &fake_pt_regs_of(&pt_regs::x86_64::ABI, &[("di", 7)]).unwrap(),
        )
    }

    #[test]
    fn arithmetic_and_jumps() {
        let mut b = Builder::new();
        b.load(Size::DW, R0, R1, 112); // di = 7
        b.alu(AluOp::Mul, R0, 6);
        let ok = b.new_label("ok");
        b.jump(JmpOp::Eq, R0, 42, ok);
        b.mov(R0, 0);
        b.exit();
        b.bind(ok);
        b.alu(AluOp::Sub, R0, 50);
        b.alu(AluOp::Arsh, R0, 1);
        b.exit();
        assert_eq!(run(b, &mut Vm::new()), Ok(-4i64 as u64));
    }

    #[test]
    fn bad_accesses_are_errors() {
        // Direct loads from kernel memory are not allowed, only helper reads.
        let mut vm = Vm::new();
        vm.map(Space::Kernel, 0x1000, vec![1; 8]).unwrap();
        let mut b = Builder::new();
        b.ld_imm64(R1, 0x1000);
        b.load(Size::DW, R0, R1, 0);
        b.exit();
        assert!(matches!(
            run(b, &mut vm),
            Err(InterpError::Fault {
                pc: 2,
                addr: 0x1000,
                len: 8,
                access: "load"
            })
        ));
        // Stores to the context are not allowed.
        let mut b = Builder::new();
        b.store(Size::DW, R1, 0, 0);
        b.exit();
        assert!(matches!(
            run(b, &mut vm),
            Err(InterpError::Fault { pc: 0, .. })
        ));
        // Nor past the stack.
        let mut b = Builder::new();
        b.store(Size::B, R10, 0, 0);
        b.exit();
        assert!(matches!(
            run(b, &mut vm),
            Err(InterpError::Fault { pc: 0, .. })
        ));
        assert!(vm.map(Space::User, 0x1004, vec![0; 8]).is_err());
    }

    #[test]
    fn probe_read_respects_address_spaces() {
        let mut vm = Vm::new();
        vm.map(Space::User, 0x2000, b"user\0".to_vec()).unwrap();
        let mut b = Builder::new();
        b.mov(R1, R10);
        b.add(R1, -8);
        b.mov(R2, 8);
        b.ld_imm64(R3, 0x2000);
        b.call(Helper::ProbeReadKernelStr);
        b.exit();
        assert_eq!(run(b, &mut vm), Ok(-EFAULT as u64));
    }

    #[test]
    fn running_off_the_end_is_an_error() {
        let raw = [RawInsn::new(0xb7, 0, 0, 0, 0)];
        assert_eq!(
            Vm::new().run(&raw, &[]),
            Err(InterpError::FellOffEnd { pc: 0 })
        );
    }
}
