//! Code generation: a checked probe to BPF instructions through `probes`'
//! builder.
//!
//! It follows the checked tree's decisions (signs, widths, the reader for
//! each read) and adds none for the kernel: loops appear only for `while`,
//! which the checker allows only where the kernel takes them. Every
//! expression leaves its value in r0; a binary operation spills its left
//! side to a stack slot while the right side is computed (helpers clobber
//! r1-r5); r6 holds the context for the whole program. Strings, addresses
//! and tuples live in zeroed stack buffers (zeroed so that equal values are
//! equal map keys). Stack is allocated per statement and refused past the
//! kernel's 512 bytes, naming the construct.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use kernel_headers::bpf::{F_USER_STACK, Helper, MAXINSNS, STACK_SIZE};
use probes::asm::{AluOp, Builder, Insn, Insns, JmpOp, Label, Reg, Size, Width};
use probes::ringbuf::Sink;
use probes::strings::nul_among_words;

use crate::ast::{BinOp, Jump, UnOp};
use crate::check::value_type;
use crate::diag::{Error, Span};
use crate::format::hist::HIST_SEARCH_STEPS;
use crate::kernel::Kernel;
use crate::output::{INET_SIZE, MapKind, MapSpec, ValueType};
use crate::symbols::Symbolic;
use crate::typed::*;

use Reg::*;

/// `BPF_ANY` for `map_update_elem`.
const BPF_ANY: i32 = 0;

/// Map names the builder keeps as `&'static str`, interned once per
/// process: the set stays as small as the maps of the programs compiled.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

struct Gen<'a> {
    b: Builder,
    maps: &'a [MapSpec],
    sink: Sink,
    /// Bytes of stack in use below r10, and the most ever used.
    used: usize,
    /// Stack offset of each scratch variable.
    vars: Vec<(i16, Ty)>,
    /// Where `return` goes: the program's end.
    exit: Label,
    /// The innermost `while` first: where `continue` and `break` go.
    loops: Vec<(Label, Label)>,
    /// Strings are being written into a record for the reader, which
    /// stops at the NUL: what follows it need not be zero.
    in_record: bool,
    /// A record's kernel strings are read first at a fixed size.
    str_first_bytes: bool,
    /// Struct members a record's arguments read, each group read once.
    shared: Vec<SharedRead>,
    /// The predicate's map value (`/@start[tid]/`), until a statement
    /// may write that map.
    known: Option<KnownValue>,
}

/// What `map[keys]` held when the predicate read it, kept at `slot`.
struct KnownValue {
    map: usize,
    keys: Vec<TExpr>,
    slot: i16,
}

/// Members of one struct that a record's arguments read, copied with one
/// helper call into `slot`: the bytes from `start` to `end` of `addr`.
struct SharedRead {
    addr: TExpr,
    helper: Helper,
    start: u32,
    end: u32,
    slot: i16,
}

/// Generate one probe's instructions.
/// `pid`: when set, the program does nothing unless the current process
/// (thread group) is that one (`nobtf trace -p PID`), checked first.
/// Records go to the kernel's sink.
pub fn generate(
    probe: &TProbe,
    maps: &[MapSpec],
    pid: Option<u32>,
    kernel: &Kernel,
) -> Result<Insns, Error> {
    let mut b = Builder::new();
    let exit = b.new_label("exit");
    let mut g = Gen {
        b,
        maps,
        sink: kernel.sink,
        // About 60 instructions more per string: only where the limit is
        // a million, not 4,096.
        str_first_bytes: kernel.max_insns > MAXINSNS,
        used: 0,
        vars: Vec::new(),
        exit,
        loops: Vec::new(),
        in_record: false,
        shared: Vec::new(),
        known: None,
    };
    let span = Span::default();
    for ty in &probe.vars {
        let size = ty.buffer_len().unwrap_or(8) as usize;
        let off = g.alloc(size, span, "scratch variables")?;
        g.zero(off, size);
        g.vars.push((off, ty.clone()));
    }
    g.b.mov(R6, R1);
    if let Some(pid) = pid {
        g.b.call(Helper::GetCurrentPidTgid);
        g.b.alu(AluOp::Rsh, R0, 32);
        g.b.jump(JmpOp::Ne, R0, i64::from(pid) as i32, exit);
    }
    if let Some(p) = &probe.predicate {
        g.expr(p)?;
        g.b.jump(JmpOp::Eq, R0, 0, exit);
        // `/@start[tid]/` then `nsecs - @start[tid]`: the body reads the
        // value the predicate found instead of looking it up again.
        if let TKind::MapGet { map, keys } = &p.kind
            && p.ty.buffer_len().is_none()
            && keys.iter().all(fixed_in_a_run)
        {
            let slot = g.alloc(8, p.span, "the predicate's map value")?;
            g.b.store(Size::DW, R10, slot, R0);
            g.known = Some(KnownValue {
                map: *map,
                keys: keys.clone(),
                slot,
            });
        }
    }
    g.block(&probe.body)?;
    g.b.bind(exit);
    g.b.mov(R0, 0);
    g.b.exit();
    g.b.finish()
        .map_err(|e| Error::whole(format!("internal error assembling the program: {e}")))
}

/// Bytes of a kernel string a record's `str()` reads first at a fixed
/// size: the string helpers copy a kernel string a byte at a time, each
/// byte a fault-checked load; the fixed-size reader copies eight at once.
const FIRST_BYTES: u32 = 64;

/// The fixed-size reader for a kernel string's first bytes, where its
/// string helper is byte-wise (user strings are read a word at a time
/// already; before 4.11 every string is a fixed-size read).
fn fixed_reader(string: Helper, user: bool) -> Option<Helper> {
    match (string, user) {
        (Helper::ProbeReadKernelStr, false) => Some(Helper::ProbeReadKernel),
        (Helper::ProbeReadStr, false) => Some(Helper::ProbeRead),
        _ => None,
    }
}

/// The most bytes of one struct a record's arguments read at once.
const SHARED_READ_BYTES: u32 = 64;

/// The member reads in `e` that a record's argument always makes (not
/// those behind a condition, a key or a helper's other arguments), each
/// after the reads its address makes.
fn member_reads<'e>(e: &'e TExpr, out: &mut Vec<&'e TExpr>) {
    match &e.kind {
        TKind::Read { addr, .. } => {
            member_reads(addr, out);
            out.push(e);
        }
        TKind::StrRead { addr, .. } | TKind::Offset { base: addr, .. } => member_reads(addr, out),
        TKind::Trunc { value, .. } | TKind::Unary(_, value) => member_reads(value, out),
        TKind::Binary { left, right, .. } => {
            member_reads(left, out);
            member_reads(right, out);
        }
        _ => {}
    }
}

/// Whether `a` and `b` are the same pure expression (their spans aside):
/// within one record's arguments they have the same value.
fn same_value(a: &TExpr, b: &TExpr) -> bool {
    match (&a.kind, &b.kind) {
        (TKind::Const(x), TKind::Const(y)) => x == y,
        (TKind::Var(x), TKind::Var(y)) => x == y,
        (TKind::Builtin(x), TKind::Builtin(y)) => x == y && *x != Builtin::Nsecs,
        (TKind::CtxLoad { .. }, TKind::CtxLoad { .. }) => a.kind == b.kind,
        (
            TKind::HelperValue(Helper::GetCurrentTask),
            TKind::HelperValue(Helper::GetCurrentTask),
        ) => true,
        (TKind::Offset { base: x, off: i }, TKind::Offset { base: y, off: j }) => {
            i == j && same_value(x, y)
        }
        (
            TKind::Trunc {
                value: x,
                bytes: i,
                signed: s,
            },
            TKind::Trunc {
                value: y,
                bytes: j,
                signed: t,
            },
        ) => i == j && s == t && same_value(x, y),
        (TKind::Unary(o, x), TKind::Unary(p, y)) => o == p && same_value(x, y),
        (
            TKind::Binary {
                op: o,
                signed: s,
                left: l1,
                right: r1,
            },
            TKind::Binary {
                op: p,
                signed: t,
                left: l2,
                right: r2,
            },
        ) => o == p && s == t && same_value(l1, l2) && same_value(r1, r2),
        (
            TKind::Read {
                addr: x,
                off: i,
                bytes: n,
                signed: s,
                user: u,
                helper: h,
            },
            TKind::Read {
                addr: y,
                off: j,
                bytes: m,
                signed: t,
                user: v,
                helper: g,
            },
        ) => i == j && n == m && s == t && u == v && h == g && same_value(x, y),
        _ => false,
    }
}

/// Whether `e` has one value for the whole of a probe's run, whatever
/// its statements do: constants, the context, the current task's ids.
fn fixed_in_a_run(e: &TExpr) -> bool {
    match &e.kind {
        TKind::Const(_) | TKind::CtxLoad { .. } => true,
        TKind::Builtin(b) => !matches!(b, Builtin::Nsecs),
        TKind::Trunc { value, .. } | TKind::Unary(_, value) => fixed_in_a_run(value),
        TKind::Binary { left, right, .. } => fixed_in_a_run(left) && fixed_in_a_run(right),
        _ => false,
    }
}

/// Whether `stmts` may write `map` (assign, aggregate or delete), in any
/// branch or loop.
fn writes_map(stmts: &[TStmt], map: usize) -> bool {
    TStmt::any_in(stmts, &|stmt| match stmt {
        TStmt::MapAssign { map: m, .. }
        | TStmt::MapAgg { map: m, .. }
        | TStmt::Delete { map: m, .. } => *m == map,
        _ => false,
    })
}

fn fits_i32(n: u64) -> Option<i32> {
    i32::try_from(n as i64).ok()
}

impl Gen<'_> {
    /// `kstack`/`ustack`: `bpf_get_stackid(ctx, map, flags)` (an id, or a
    /// negative errno); a user stack's id (its low 32 bits) gets the thread
    /// group id above it, whose files name its frames.
    fn stack_id(&mut self, map: usize, user: bool) {
        self.b.mov(R1, R6);
        self.b.ld_map(R2, intern(&self.maps[map].name));
        let flags = if user { F_USER_STACK } else { 0 };
        self.b.mov(R3, flags as i32);
        self.b.call(Helper::GetStackid);
        if user {
            // r7 is callee-saved and otherwise unused.
            self.b.push(Insn::Alu {
                width: Width::W32,
                op: AluOp::Mov,
                dst: R7,
                src: R0.into(),
            });
            self.b.call(Helper::GetCurrentPidTgid);
            self.b.alu(AluOp::Rsh, R0, 32);
            self.b
                .alu(AluOp::Lsh, R0, crate::symbols::USTACK_ID_BITS as i32);
            self.b.alu(AluOp::Or, R0, R7);
        }
    }

    /// Reserve `size` bytes (rounded to 8) of stack; the offset from r10.
    fn alloc(&mut self, size: usize, span: Span, what: &str) -> Result<i16, Error> {
        self.used += size.next_multiple_of(8);
        if self.used > STACK_SIZE {
            return Err(Error::at(
                span,
                format!(
                    "{what} here needs {} bytes of BPF stack; kernels allow {STACK_SIZE} (use shorter strings: str(x, LEN))",
                    self.used
                ),
            ));
        }
        Ok(-(self.used as i16))
    }

    fn zero(&mut self, off: i16, size: usize) {
        for i in (0..size.next_multiple_of(8)).step_by(8) {
            self.b.store(Size::DW, R10, off + i as i16, 0);
        }
    }

    fn imm(&mut self, dst: Reg, n: u64) {
        match fits_i32(n) {
            Some(imm) => self.b.mov(dst, imm),
            None => self.b.ld_imm64(dst, n as i64),
        }
    }

    fn stack_ptr(&mut self, dst: Reg, off: i16) {
        self.b.mov(dst, R10);
        self.b.add(dst, i32::from(off));
    }

    /// Extend the low `bytes` of r0 to 64 bits.
    fn extend(&mut self, reg: Reg, bytes: u8, signed: bool) {
        if bytes >= 8 {
            return;
        }
        let shift = 64 - 8 * i32::from(bytes);
        self.b.alu(AluOp::Lsh, reg, shift);
        self.b
            .alu(if signed { AluOp::Arsh } else { AluOp::Rsh }, reg, shift);
    }

    /// Statements in order; each one's stack temporaries are free again
    /// after it.
    fn block(&mut self, body: &[TStmt]) -> Result<(), Error> {
        let base = self.used;
        for stmt in body {
            self.stmt(stmt)?;
            self.used = base;
            self.forget_if_written(std::slice::from_ref(stmt));
        }
        Ok(())
    }

    fn stmt(&mut self, stmt: &TStmt) -> Result<(), Error> {
        match stmt {
            TStmt::If {
                cond,
                then,
                otherwise,
                ..
            } => {
                let (other, end) = (self.b.new_label("else"), self.b.new_label("end_if"));
                self.expr(cond)?;
                self.b.jump(JmpOp::Eq, R0, 0, other);
                self.block(then)?;
                if !otherwise.is_empty() {
                    self.b.ja(end);
                }
                self.b.bind(other);
                self.block(otherwise)?;
                self.b.bind(end);
                Ok(())
            }
            TStmt::While {
                cond,
                body,
                trips: Some(trips),
                ..
            } => {
                // Unrolled: each copy checks the condition; `continue` is
                // not in the body (the checker saw to it).
                let end = self.b.new_label("end_while");
                self.loops.push((end, end));
                for _ in 0..*trips {
                    self.expr(cond)?;
                    self.b.jump(JmpOp::Eq, R0, 0, end);
                    if let Err(e) = self.block(body) {
                        self.loops.pop();
                        return Err(e);
                    }
                }
                self.loops.pop();
                self.b.bind(end);
                Ok(())
            }
            TStmt::While {
                cond,
                body,
                trips: None,
                ..
            } => {
                // The body's code runs again after its own writes.
                self.forget_if_written(body);
                let (top, end) = (self.b.new_label("while"), self.b.new_label("end_while"));
                self.b.bind(top);
                self.expr(cond)?;
                self.b.jump(JmpOp::Eq, R0, 0, end);
                self.loops.push((top, end));
                let body = self.block(body);
                self.loops.pop();
                body?;
                self.b.ja(top);
                self.b.bind(end);
                Ok(())
            }
            TStmt::Unroll { count, body, .. } => {
                for _ in 0..*count {
                    self.block(body)?;
                }
                Ok(())
            }
            TStmt::Jump { jump, span } => {
                let target = match (jump, self.loops.last()) {
                    (Jump::Return, _) => self.exit,
                    (Jump::Continue, Some(&(top, _))) => top,
                    (Jump::Break, Some(&(_, end))) => end,
                    (_, None) => {
                        return Err(Error::at(*span, "internal: a loop jump outside a loop"));
                    }
                };
                self.b.ja(target);
                Ok(())
            }
            TStmt::AssignVar { slot, value } => {
                let (off, ty) = self.vars[*slot].clone();
                match ty.buffer_len() {
                    Some(len) => {
                        self.zero(off, len as usize);
                        self.buffer_into(value, off, len)?;
                    }
                    None => {
                        self.expr(value)?;
                        self.b.store(Size::DW, R10, off, R0);
                    }
                }
                Ok(())
            }
            TStmt::MapAssign {
                map,
                keys,
                value,
                span,
            } => {
                let value_size = self.maps[*map].value_size;
                let key = self.key(*map, keys, *span)?;
                let val = self.alloc(value_size as usize, *span, "the map value")?;
                self.zero(val, value_size as usize);
                // A tuple's buffer is the map value's layout.
                self.value_into(value, val, value_size, false)?;
                self.update(*map, key, val);
                Ok(())
            }
            TStmt::MapAgg {
                map,
                keys,
                agg,
                span,
            } => self.aggregate(*map, keys, agg, *span),
            TStmt::Delete { map, keys, span } => {
                let key = self.key(*map, keys, *span)?;
                self.b.ld_map(R1, intern(&self.maps[*map].name));
                self.stack_ptr(R2, key);
                self.b.call(Helper::MapDeleteElem);
                Ok(())
            }
            TStmt::Emit { event, args, span } => {
                // A tuple (`print($t)`) is its elements' slots, as its buffer holds them.
                let sizes: Vec<u32> = args
                    .iter()
                    .map(|a| match a.ty {
                        Ty::Tuple(_) => a.ty.slot_size(),
                        _ => value_type(&a.ty).size(),
                    })
                    .collect();
                let size = 8 + sizes.iter().sum::<u32>() as usize;
                let rec = self.alloc(size, *span, "this record")?;
                self.zero(rec, size);
                self.b.store(Size::DW, R10, rec, *event as i32);
                self.share_reads(args)?;
                let written = self.record_args(args, sizes, rec + 8);
                self.shared.clear();
                written?;
                self.sink.emit(&mut self.b, R6, rec, size as i32);
                Ok(())
            }
        }
    }

    /// Reads once the members of one struct that `args` read two or more
    /// times within [`SHARED_READ_BYTES`], each group from the same address
    /// (the same pure expression) with the same helper: one helper call
    /// where each member took one (a member read costs a helper call; a
    /// load from the stack, one instruction). Groups are read in the order
    /// of their first read, inner reads first, so a deeper one's address
    /// can use them.
    fn share_reads(&mut self, args: &[TExpr]) -> Result<(), Error> {
        let mut reads = Vec::new();
        for arg in args {
            member_reads(arg, &mut reads);
        }
        let mut groups: Vec<(&TExpr, Helper, u32, u32, usize)> = Vec::new();
        for read in &reads {
            let TKind::Read {
                addr,
                off,
                bytes,
                helper,
                ..
            } = &read.kind
            else {
                continue;
            };
            let end = off + u32::from(*bytes);
            match groups
                .iter_mut()
                .find(|g| g.1 == *helper && same_value(g.0, addr))
            {
                Some(group) => {
                    group.2 = group.2.min(*off);
                    group.3 = group.3.max(end);
                    group.4 += 1;
                }
                None => groups.push((addr, *helper, *off, end, 1)),
            }
        }
        for (addr, helper, start, end, count) in groups {
            // Loads from the stack must be aligned: the copy starts at a
            // multiple of 8, where members are naturally aligned.
            let start = start / 8 * 8;
            let len = end - start;
            if count < 2 || len > SHARED_READ_BYTES || self.used + len as usize > STACK_SIZE / 2 {
                continue;
            }
            self.expr(addr)?;
            let slot = self.alloc(len as usize, addr.span, "a struct's members")?;
            self.b.mov(R3, R0);
            if start != 0 {
                self.b.add(R3, start as i32);
            }
            self.stack_ptr(R1, slot);
            self.b.mov(R2, len as i32);
            self.b.call(helper);
            self.shared.push(SharedRead {
                addr: addr.clone(),
                helper,
                start,
                end,
                slot,
            });
        }
        Ok(())
    }

    /// Drops the predicate's map value once `stmts` may write its map.
    fn forget_if_written(&mut self, stmts: &[TStmt]) {
        if let Some(known) = &self.known
            && writes_map(stmts, known.map)
        {
            self.known = None;
        }
    }

    /// Writes a record's arguments, each in its slot from `at` on.
    fn record_args(&mut self, args: &[TExpr], sizes: Vec<u32>, mut at: i16) -> Result<(), Error> {
        for (arg, len) in args.iter().zip(sizes) {
            self.value_into(arg, at, len, true)?;
            at += len as i16;
        }
        Ok(())
    }

    /// Writes `value` into its slot at `fp + at`: a buffer (a string, a
    /// tuple of `tuple_len` bytes, an address, `buf()`, `usym`) filled in
    /// place, anything else as one 64-bit word. `in_record`: the slot is a
    /// record's, whose reader stops at a string's NUL.
    fn value_into(
        &mut self,
        value: &TExpr,
        at: i16,
        tuple_len: u32,
        in_record: bool,
    ) -> Result<(), Error> {
        match value_type(&value.ty) {
            _ if matches!(value.ty, Ty::Tuple(_)) => {
                self.in_record = in_record;
                self.buffer_into(value, at, tuple_len)
            }
            ValueType::Str { len } => {
                self.in_record = in_record;
                self.buffer_into(value, at, len)
            }
            ValueType::Inet => self.buffer_into(value, at, INET_SIZE),
            ty @ (ValueType::Buf { .. } | ValueType::Symbol(Symbolic::Usym)) => {
                self.buffer_into(value, at, ty.size())
            }
            ValueType::Int { .. } | ValueType::Timestamp { .. } | ValueType::Symbol(_) => {
                self.expr(value)?;
                self.b.store(Size::DW, R10, at, R0);
                Ok(())
            }
        }
    }

    /// Build a map key on the stack; its offset. Room for a trailing
    /// histogram bucket is included when the map has one.
    fn key(&mut self, map: usize, keys: &[TExpr], span: Span) -> Result<i16, Error> {
        let spec = &self.maps[map];
        let key_size = spec.key_size as usize;
        let slots = spec.key.clone();
        let off = self.alloc(key_size, span, "the map key")?;
        self.zero(off, key_size);
        let mut slots = slots.into_iter();
        for k in keys {
            // A tuple fills as many parts as it has elements, laid out alike.
            let parts = match &k.ty {
                Ty::Tuple(elements) => elements.len(),
                _ => 1,
            };
            let Some(first) = slots.next() else {
                return Err(Error::at(k.span, "internal: more keys than the map has"));
            };
            let at = off + first.offset as i16;
            for _ in 1..parts {
                slots.next();
            }
            match (first.ty, k.ty.buffer_len()) {
                (_, Some(len)) => self.buffer_into(k, at, len)?,
                (ValueType::Str { len }, None) => self.buffer_into(k, at, len)?,
                (ValueType::Inet, None) => self.buffer_into(k, at, INET_SIZE)?,
                (ty @ ValueType::Buf { .. }, None) => self.buffer_into(k, at, ty.size())?,
                (
                    ValueType::Int { .. } | ValueType::Timestamp { .. } | ValueType::Symbol(_),
                    None,
                ) => {
                    self.expr(k)?;
                    self.b.store(Size::DW, R10, at, R0);
                }
            }
        }
        Ok(off)
    }

    fn update(&mut self, map: usize, key: i16, val: i16) {
        self.b.ld_map(R1, intern(&self.maps[map].name));
        self.stack_ptr(R2, key);
        self.stack_ptr(R3, val);
        self.b.mov(R4, BPF_ANY);
        self.b.call(Helper::MapUpdateElem);
    }

    fn aggregate(
        &mut self,
        map: usize,
        keys: &[TExpr],
        agg: &Agg,
        span: Span,
    ) -> Result<(), Error> {
        let kind = self.maps[map].kind;
        let value_size = self.maps[map].value_size as usize;
        // The value is computed once, before the key, and kept on the stack
        // across the helper calls.
        let v = self.alloc(8, span, "the aggregated value")?;
        let arg = match agg {
            Agg::Count => None,
            Agg::Sum(e) | Agg::Min(e) | Agg::Max(e) | Agg::Avg(e) | Agg::Hist(e) => Some(e),
            Agg::Lhist { value, .. } => Some(value),
        };
        if let Some(e) = arg {
            self.expr(e)?;
            self.b.store(Size::DW, R10, v, R0);
        }
        let key = self.key(map, keys, span)?;
        match kind {
            MapKind::Hist => {
                self.b.load(Size::DW, R0, R10, v);
                self.log2_bucket();
                let at = key + self.maps[map].key_size as i16 - 8;
                self.b.store(Size::DW, R10, at, R0);
            }
            MapKind::Lhist { min, max, step } => {
                self.b.load(Size::DW, R0, R10, v);
                self.linear_bucket(min, max, step);
                let at = key + self.maps[map].key_size as i16 - 8;
                self.b.store(Size::DW, R10, at, R0);
            }
            _ => {}
        }
        let (init, done) = (self.b.new_label("init"), self.b.new_label("done"));
        self.b.ld_map(R1, intern(&self.maps[map].name));
        self.stack_ptr(R2, key);
        self.b.call(Helper::MapLookupElem);
        self.b.jump(JmpOp::Eq, R0, 0, init);
        // The entry exists: update it in place (per CPU, so no atomics).
        match kind {
            MapKind::Count | MapKind::Hist | MapKind::Lhist { .. } => {
                self.b.load(Size::DW, R1, R0, 0);
                self.b.add(R1, 1);
                self.b.store(Size::DW, R0, 0, R1);
            }
            MapKind::Sum { .. } | MapKind::Avg { .. } => {
                self.b.load(Size::DW, R1, R0, 0);
                self.b.load(Size::DW, R2, R10, v);
                self.b.add(R1, R2);
                self.b.store(Size::DW, R0, 0, R1);
                if matches!(kind, MapKind::Avg { .. }) {
                    self.b.load(Size::DW, R1, R0, 8);
                    self.b.add(R1, 1);
                    self.b.store(Size::DW, R0, 8, R1);
                }
            }
            MapKind::Min { signed } | MapKind::Max { signed } => {
                let set = self.b.new_label("set");
                // bpftrace 0.23 takes the value unless is_set is exactly 1.
                self.b.load(Size::DW, R1, R0, 8);
                self.b.jump(JmpOp::Ne, R1, 1, set);
                self.b.load(Size::DW, R1, R0, 0);
                self.b.load(Size::DW, R2, R10, v);
                // Keep the old value unless the new one beats it, compared
                // with the argument's sign.
                let beaten = if signed { JmpOp::Sgt } else { JmpOp::Gt };
                if matches!(kind, MapKind::Min { .. }) {
                    self.b.jump(beaten, R2, R1, done);
                } else {
                    self.b.jump(beaten, R1, R2, done);
                }
                self.b.bind(set);
                self.b.load(Size::DW, R2, R10, v);
                self.b.store(Size::DW, R0, 0, R2);
                self.b.store(Size::DW, R0, 8, 1);
            }
            MapKind::Assign(_) | MapKind::Tuple => {}
        }
        self.b.ja(done);
        self.b.bind(init);
        let val = self.alloc(value_size, span, "the map value")?;
        self.zero(val, value_size);
        match kind {
            MapKind::Count | MapKind::Hist | MapKind::Lhist { .. } => {
                self.b.store(Size::DW, R10, val, 1);
            }
            MapKind::Sum { .. } => {
                self.b.load(Size::DW, R1, R10, v);
                self.b.store(Size::DW, R10, val, R1);
            }
            MapKind::Min { .. } | MapKind::Max { .. } | MapKind::Avg { .. } => {
                self.b.load(Size::DW, R1, R10, v);
                self.b.store(Size::DW, R10, val, R1);
                self.b.store(Size::DW, R10, val + 8, 1);
            }
            MapKind::Assign(_) | MapKind::Tuple => {}
        }
        self.update(map, key, val);
        self.b.bind(done);
        Ok(())
    }

    /// r0 = [`crate::format::HistParams::bucket`] (bits 0) of the signed
    /// value in r0: 0 for negatives, 1 for 0, else 2 + floor(log2 r0),
    /// the top bit found by [`HIST_SEARCH_STEPS`]. Unrolled: no loops.
    fn log2_bucket(&mut self) {
        let (negative, zero, end) = (
            self.b.new_label("negative"),
            self.b.new_label("zero"),
            self.b.new_label("end"),
        );
        self.b.mov(R1, 0);
        self.b.jump(JmpOp::Sgt, R1, R0, negative);
        self.b.jump(JmpOp::Eq, R0, 0, zero);
        for (threshold, shift) in HIST_SEARCH_STEPS {
            let skip = self.b.new_label("skip");
            self.b.ld_imm64(R2, threshold as i64);
            self.b.jump(JmpOp::Gt, R2, R0, skip);
            self.b.alu(AluOp::Rsh, R0, shift as i32);
            self.b.add(R1, shift as i32);
            self.b.bind(skip);
        }
        self.b.mov(R0, R1);
        self.b.add(R0, 2);
        self.b.ja(end);
        self.b.bind(negative);
        self.b.mov(R0, 0);
        self.b.ja(end);
        self.b.bind(zero);
        self.b.mov(R0, 1);
        self.b.bind(end);
    }

    /// r0 = [`crate::format::LhistParams::bucket`] of the signed value in
    /// r0 (a value at `max` lands where one above it does).
    fn linear_bucket(&mut self, min: i64, max: i64, step: i64) {
        let (below, above, end) = (
            self.b.new_label("below"),
            self.b.new_label("above"),
            self.b.new_label("end"),
        );
        self.b.ld_imm64(R1, min);
        self.b.jump(JmpOp::Sgt, R1, R0, below);
        self.b.ld_imm64(R1, max);
        self.b.jump(JmpOp::Sge, R0, R1, above);
        self.b.ld_imm64(R1, min);
        self.b.alu(AluOp::Sub, R0, R1);
        self.b.ld_imm64(R1, step);
        self.b.alu(AluOp::Div, R0, R1);
        self.b.add(R0, 1);
        self.b.ja(end);
        self.b.bind(below);
        self.b.mov(R0, 0);
        self.b.ja(end);
        self.b.bind(above);
        self.imm(R0, (1 + (max - min) / step) as u64);
        self.b.bind(end);
    }

    /// The current task's comm into the 16 bytes at `off`: two loads
    /// through `bpf_get_current_task_btf` at `task_struct.comm` (`comm`),
    /// the bytes after the first NUL zeroed as `bpf_get_current_comm`
    /// leaves them: kernels that rename with `strlcpy` keep the old
    /// name's tail there, and a map key or a compare sees every byte.
    /// Branch-free: a word's zero bytes are flagged by `(w - 0x01..) & !w
    /// & 0x80..`, the lowest flag marks the NUL, and `(lowest << 1) - 1`
    /// keeps the bytes up to it (all of them without one); the second
    /// word is cleared when the first held the NUL.
    fn comm_from_task(&mut self, comm: i16, off: i16) {
        const ONES: i64 = 0x0101_0101_0101_0101;
        const HIGHS: i64 = 0x8080_8080_8080_8080_u64 as i64;
        let b = &mut self.b;
        b.call(Helper::GetCurrentTaskBtf);
        b.load(Size::DW, R1, R0, comm);
        b.load(Size::DW, R2, R0, comm + 8);
        b.ld_imm64(R4, ONES);
        b.ld_imm64(R5, HIGHS);
        // r3 = the zero-byte flags of `word`; r0 = its keep mask; word &= r0.
        let keep_to_nul = |b: &mut Builder, word: Reg| {
            b.mov(R3, word);
            b.alu(AluOp::Sub, R3, R4);
            b.mov(R0, word);
            b.alu(AluOp::Xor, R0, -1);
            b.alu(AluOp::And, R3, R0);
            b.alu(AluOp::And, R3, R5);
            b.mov(R0, 0);
            b.alu(AluOp::Sub, R0, R3);
            b.alu(AluOp::And, R0, R3);
            b.alu(AluOp::Lsh, R0, 1);
            b.alu(AluOp::Sub, R0, 1);
            b.alu(AluOp::And, word, R0);
        };
        keep_to_nul(b, R1);
        // r0 = all ones when the first word had no NUL, else 0.
        b.mov(R0, 0);
        b.alu(AluOp::Sub, R0, R3);
        b.alu(AluOp::Or, R0, R3);
        b.alu(AluOp::Rsh, R0, 63);
        b.alu(AluOp::Sub, R0, 1);
        b.alu(AluOp::And, R2, R0);
        keep_to_nul(b, R2);
        b.store(Size::DW, R10, off, R1);
        b.store(Size::DW, R10, off + 8, R2);
    }

    /// Write a string or an address into the zeroed stack buffer at `off`
    /// of `len` bytes.
    fn buffer_into(&mut self, e: &TExpr, off: i16, len: u32) -> Result<(), Error> {
        // Whether this buffer is a record's slot: taken here, so nothing
        // evaluated on the way (an address, a condition, a key) sees it.
        let in_record = std::mem::take(&mut self.in_record);
        match &e.kind {
            TKind::ConstStr(s) => {
                let bytes = s.as_bytes();
                let n = bytes.len().min((len as usize).saturating_sub(1));
                for (i, chunk) in bytes[..n].chunks(4).enumerate() {
                    let mut word = [0u8; 4];
                    word[..chunk.len()].copy_from_slice(chunk);
                    self.b
                        .store(Size::W, R10, off + 4 * i as i16, i32::from_le_bytes(word));
                }
            }
            TKind::Comm {
                task_btf: Some(comm),
            } if len >= crate::check::COMM_LEN => self.comm_from_task(*comm, off),
            TKind::Comm { .. } => {
                self.stack_ptr(R1, off);
                self.b.mov(R2, len.min(crate::check::COMM_LEN) as i32);
                self.b.call(Helper::GetCurrentComm);
            }
            TKind::StrRead {
                addr,
                len: want,
                helper,
                user,
            } => {
                let size = (*want).min(len);
                self.expr(addr)?;
                let fixed = fixed_reader(*helper, *user);
                match fixed.filter(|_| in_record && self.str_first_bytes) {
                    Some(fixed) if size >= FIRST_BYTES => {
                        self.str_first_bytes(e.span, off, size, fixed, *helper)?
                    }
                    _ => {
                        self.b.mov(R3, R0);
                        self.stack_ptr(R1, off);
                        self.b.mov(R2, size as i32);
                        self.b.call(*helper);
                    }
                }
            }
            TKind::Buf {
                addr,
                len: count,
                max,
                helper,
            } => {
                // The count, at most `max`, then that many bytes: a size the
                // verifier sees bounded to [1, max] (none read for 0).
                // JGT only: JLE and friends arrived in 4.14.
                let (long, clamped) = (self.b.new_label("long"), self.b.new_label("clamped"));
                let (read, empty) = (self.b.new_label("read"), self.b.new_label("empty"));
                self.expr(count)?;
                self.b.jump(JmpOp::Gt, R0, *max as i32, long);
                self.b.ja(clamped);
                self.b.bind(long);
                self.b.mov(R0, *max as i32);
                self.b.bind(clamped);
                self.b.store(Size::DW, R10, off, R0);
                self.expr(addr)?;
                self.b.mov(R3, R0);
                self.b.load(Size::DW, R2, R10, off);
                self.b.jump(JmpOp::Gt, R2, 0, read);
                self.b.ja(empty);
                self.b.bind(read);
                self.b.jump(
                    JmpOp::Gt,
                    R2,
                    (*max).min(len.saturating_sub(8)) as i32,
                    empty,
                );
                self.stack_ptr(R1, off + 8);
                self.b.call(*helper);
                self.b.bind(empty);
            }
            TKind::Ternary(c, a, b) => {
                let (other, end) = (self.b.new_label("other"), self.b.new_label("end"));
                self.expr(c)?;
                self.b.jump(JmpOp::Eq, R0, 0, other);
                self.in_record = in_record;
                self.buffer_into(a, off, len)?;
                self.b.ja(end);
                self.b.bind(other);
                self.in_record = in_record;
                self.buffer_into(b, off, len)?;
                self.b.bind(end);
            }
            TKind::Tuple(elements) => {
                // The tuple's own type places its parts: a map of tuples
                // may hold longer strings than this one's.
                let types = match &e.ty {
                    Ty::Tuple(types) if types.len() == elements.len() => types.clone(),
                    _ => elements.iter().map(|e| e.ty.clone()).collect(),
                };
                for (element, at) in elements.iter().zip(Ty::tuple_offsets(&types)) {
                    let at = off + at as i16;
                    match element.ty.buffer_len() {
                        Some(n) => {
                            self.in_record = in_record;
                            self.buffer_into(element, at, n)?
                        }
                        None => {
                            self.expr(element)?;
                            self.b.store(Size::DW, R10, at, R0);
                        }
                    }
                }
            }
            TKind::TupleField { base, index } => {
                let (from, _) = self.buffer(base)?;
                let at = self.tuple_offset(base, *index)?;
                self.copy(R10, from + at, off, len);
            }
            TKind::Ntop { family, addr, from } => {
                self.expr(family)?;
                self.b.store(Size::DW, R10, off, R0);
                self.expr(addr)?;
                match *from {
                    InetSource::Int => self.b.store(Size::W, R10, off + 8, R0),
                    InetSource::Memory { bytes, helper, .. } => {
                        self.b.mov(R3, R0);
                        self.stack_ptr(R1, off + 8);
                        self.b.mov(R2, i32::from(bytes));
                        self.b.call(helper);
                    }
                }
            }
            TKind::Usym(addr) => {
                self.expr(addr)?;
                self.b.store(Size::DW, R10, off, R0);
                self.b.call(Helper::GetCurrentPidTgid);
                self.b.alu(AluOp::Rsh, R0, 32);
                self.b.store(Size::W, R10, off + 8, R0);
            }
            TKind::Var(slot) => {
                let (from, ty) = self.vars[*slot].clone();
                let Some(have) = ty.buffer_len() else {
                    return Err(Error::at(e.span, "internal: string variable expected"));
                };
                self.copy(R10, from, off, have.min(len));
            }
            TKind::MapGet { .. } => {
                let absent = self.b.new_label("absent");
                self.lookup(e)?;
                self.b.jump(JmpOp::Eq, R0, 0, absent);
                let Some(have) = e.ty.buffer_len() else {
                    return Err(Error::at(e.span, "internal: string map expected"));
                };
                self.copy(R0, 0, off, have.min(len));
                self.b.bind(absent);
            }
            _ => {
                return Err(Error::at(
                    e.span,
                    format!("internal: {} is not a string", e.ty.describe()),
                ));
            }
        }
        Ok(())
    }

    /// The string at r0 into `fp + off`, `size` bytes at most: its first
    /// [`FIRST_BYTES`] copied with `fixed` (eight bytes a step, where the
    /// string helper takes one), kept when a NUL is among them; else, or
    /// when that read failed, read again with `string`. The bytes after the
    /// NUL are then what followed the string, not zeros: only for records,
    /// whose reader stops at the NUL.
    fn str_first_bytes(
        &mut self,
        span: Span,
        off: i16,
        size: u32,
        fixed: Helper,
        string: Helper,
    ) -> Result<(), Error> {
        let addr = self.alloc(8, span, "this string's address")?;
        self.b.store(Size::DW, R10, addr, R0);
        let (again, done) = (self.b.new_label("str_again"), self.b.new_label("str_done"));
        self.b.mov(R3, R0);
        self.stack_ptr(R1, off);
        self.b.mov(R2, FIRST_BYTES as i32);
        self.b.call(fixed);
        self.b.jump(JmpOp::Ne, R0, 0, again);
        nul_among_words(&mut self.b, R10, off, FIRST_BYTES as i16, R0, R4);
        self.b.jump(JmpOp::Ne, R0, 0, done);
        self.b.bind(again);
        self.b.load(Size::DW, R3, R10, addr);
        self.stack_ptr(R1, off);
        self.b.mov(R2, size as i32);
        self.b.call(string);
        self.b.bind(done);
        Ok(())
    }

    /// Where element `index` of the tuple `base` starts in its buffer.
    fn tuple_offset(&self, base: &TExpr, index: usize) -> Result<i16, Error> {
        let Ty::Tuple(elements) = &base.ty else {
            return Err(Error::at(base.span, "internal: tuple expected"));
        };
        Ty::tuple_offsets(elements)
            .get(index)
            .map(|&at| at as i16)
            .ok_or_else(|| Error::at(base.span, "internal: tuple element out of range"))
    }

    /// Copy `len` bytes (rounded down to whole words) from `src + from` to the stack.
    fn copy(&mut self, src: Reg, from: i16, to: i16, len: u32) {
        for i in (0..len as i16 / 8 * 8).step_by(8) {
            self.b.load(Size::DW, R1, src, from + i);
            self.b.store(Size::DW, R10, to + i, R1);
        }
    }

    /// r0 = pointer to the value of `@m[keys]`, or 0.
    /// Where the predicate's value of the map read `e` is kept, if it is
    /// the same read and still current.
    fn known_value(&self, e: &TExpr) -> Option<i16> {
        let (TKind::MapGet { map, keys }, Some(known)) = (&e.kind, &self.known) else {
            return None;
        };
        (known.map == *map
            && known.keys.len() == keys.len()
            && known.keys.iter().zip(keys).all(|(a, b)| same_value(a, b)))
        .then_some(known.slot)
    }

    fn lookup(&mut self, e: &TExpr) -> Result<(), Error> {
        let TKind::MapGet { map, keys } = &e.kind else {
            return Err(Error::at(e.span, "internal: map read expected"));
        };
        let key = self.key(*map, keys, e.span)?;
        self.b.ld_map(R1, intern(&self.maps[*map].name));
        self.stack_ptr(R2, key);
        self.b.call(Helper::MapLookupElem);
        Ok(())
    }

    /// A string value as a stack buffer: its offset.
    fn buffer(&mut self, e: &TExpr) -> Result<(i16, u32), Error> {
        let Some(len) = e.ty.buffer_len() else {
            return Err(Error::at(e.span, "internal: string expected"));
        };
        if let TKind::Var(slot) = e.kind {
            return Ok((self.vars[slot].0, len));
        }
        let off = self.alloc(len as usize, e.span, "this string")?;
        self.zero(off, len as usize);
        self.buffer_into(e, off, len)?;
        Ok((off, len))
    }

    /// Evaluate into r0.
    fn expr(&mut self, e: &TExpr) -> Result<(), Error> {
        match &e.kind {
            TKind::Const(n) => self.imm(R0, *n),
            TKind::Ternary(..) if e.ty.buffer_len().is_some() => {
                let (off, _) = self.buffer(e)?;
                self.stack_ptr(R0, off);
            }
            TKind::TupleField { base, index } => {
                let (from, _) = self.buffer(base)?;
                let at = from + self.tuple_offset(base, *index)?;
                match e.ty.buffer_len() {
                    Some(_) => self.stack_ptr(R0, at),
                    None => self.b.load(Size::DW, R0, R10, at),
                }
            }
            TKind::ConstStr(_)
            | TKind::Comm { .. }
            | TKind::StrRead { .. }
            | TKind::Buf { .. }
            | TKind::Ntop { .. }
            | TKind::Usym(_)
            | TKind::Tuple(_) => {
                let (off, _) = self.buffer(e)?;
                self.stack_ptr(R0, off);
            }
            TKind::CtxLoad { off, bytes, signed } => {
                let size = match bytes {
                    1 => Size::B,
                    2 => Size::H,
                    4 => Size::W,
                    _ => Size::DW,
                };
                self.b.load(size, R0, R6, *off as i16);
                self.extend(R0, *bytes, *signed);
            }
            TKind::CtxAddr { off } => {
                self.b.mov(R0, R6);
                self.b.add(R0, *off as i32);
            }
            TKind::DataLoc { off } => {
                self.b.load(Size::W, R0, R6, *off as i16);
                self.b.alu(AluOp::And, R0, 0xffff);
                self.b.add(R0, R6);
            }
            TKind::Builtin(builtin) => match builtin {
                Builtin::Pid => {
                    self.b.call(Helper::GetCurrentPidTgid);
                    self.b.alu(AluOp::Rsh, R0, 32);
                }
                Builtin::Tid | Builtin::Uid => {
                    let helper = if *builtin == Builtin::Tid {
                        Helper::GetCurrentPidTgid
                    } else {
                        Helper::GetCurrentUidGid
                    };
                    self.b.call(helper);
                    // A 32-bit move zero-extends: the low half.
                    self.b.push(Insn::Alu {
                        width: Width::W32,
                        op: AluOp::Mov,
                        dst: R0,
                        src: R0.into(),
                    });
                }
                Builtin::Gid => {
                    self.b.call(Helper::GetCurrentUidGid);
                    self.b.alu(AluOp::Rsh, R0, 32);
                }
                Builtin::Nsecs => self.b.call(Helper::KtimeGetNs),
                Builtin::Cpu => self.b.call(Helper::GetSmpProcessorId),
                Builtin::FuncIp => {
                    self.b.mov(R1, R6);
                    self.b.call(Helper::GetFuncIp);
                }
            },
            TKind::HelperValue(helper) => self.b.call(*helper),
            TKind::HelperWith { helper, arg } => {
                self.expr(arg)?;
                self.b.mov(R1, R0);
                self.b.call(*helper);
            }
            TKind::StackId { map, user } => self.stack_id(*map, *user),
            TKind::Var(slot) => {
                let (off, ty) = self.vars[*slot].clone();
                match ty.buffer_len() {
                    Some(_) => self.stack_ptr(R0, off),
                    None => self.b.load(Size::DW, R0, R10, off),
                }
            }
            TKind::MapGet { .. } => {
                if e.ty.buffer_len().is_some() {
                    let (off, _) = self.buffer(e)?;
                    self.stack_ptr(R0, off);
                } else if let Some(slot) = self.known_value(e) {
                    self.b.load(Size::DW, R0, R10, slot);
                } else {
                    let absent = self.b.new_label("absent");
                    self.lookup(e)?;
                    self.b.jump(JmpOp::Eq, R0, 0, absent);
                    self.b.load(Size::DW, R0, R0, 0);
                    self.b.bind(absent);
                }
            }
            TKind::Unary(op, v) => {
                self.expr(v)?;
                match op {
                    UnOp::Not => self.bool_of(JmpOp::Eq, R0, 0, false),
                    UnOp::Neg => {
                        self.b.mov(R1, 0);
                        self.b.alu(AluOp::Sub, R1, R0);
                        self.b.mov(R0, R1);
                    }
                    UnOp::BitNot => self.b.alu(AluOp::Xor, R0, -1),
                }
            }
            TKind::Binary {
                op,
                signed,
                left,
                right,
            } => self.binary(*op, *signed, left, right, e.span)?,
            TKind::Ternary(c, a, b) => {
                let (other, end) = (self.b.new_label("other"), self.b.new_label("end"));
                self.expr(c)?;
                self.b.jump(JmpOp::Eq, R0, 0, other);
                self.expr(a)?;
                self.b.ja(end);
                self.b.bind(other);
                self.expr(b)?;
                self.b.bind(end);
            }
            TKind::StrCmp {
                left,
                right,
                len,
                negate,
            } => {
                let (loff, llen) = self.buffer(left)?;
                let (roff, rlen) = self.buffer(right)?;
                let (differ, equal, end) = (
                    self.b.new_label("differ"),
                    self.b.new_label("equal"),
                    self.b.new_label("end_cmp"),
                );
                for i in 0..(*len).min(llen).min(rlen) as i16 {
                    self.b.load(Size::B, R1, R10, loff + i);
                    self.b.load(Size::B, R2, R10, roff + i);
                    self.b.jump(JmpOp::Ne, R1, R2, differ);
                    self.b.jump(JmpOp::Eq, R1, 0, equal);
                }
                self.b.bind(equal);
                self.b.mov(R0, i32::from(!negate));
                self.b.ja(end);
                self.b.bind(differ);
                self.b.mov(R0, i32::from(*negate));
                self.b.bind(end);
            }
            TKind::StrContains { haystack, needle } => self.contains(haystack, needle)?,
            TKind::StrEq {
                value,
                literal,
                negate,
            } => {
                let (off, len) = self.buffer(value)?;
                let (differ, end) = (self.b.new_label("differ"), self.b.new_label("end"));
                let mut bytes = literal.as_bytes().to_vec();
                bytes.push(0);
                if bytes.len() > len as usize {
                    // The buffer cannot hold the literal: never equal.
                    self.b.ja(differ);
                } else {
                    for (i, &byte) in bytes.iter().enumerate() {
                        self.b.load(Size::B, R1, R10, off + i as i16);
                        self.b.jump(JmpOp::Ne, R1, i32::from(byte), differ);
                    }
                }
                self.b.mov(R0, i32::from(!negate));
                self.b.ja(end);
                self.b.bind(differ);
                self.b.mov(R0, i32::from(*negate));
                self.b.bind(end);
            }
            TKind::Read {
                addr,
                off,
                bytes,
                signed,
                helper,
                ..
            } => {
                let end = off + u32::from(*bytes);
                let shared = self.shared.iter().find(|r| {
                    r.helper == *helper
                        && r.start <= *off
                        && end <= r.end
                        && matches!(bytes, 1 | 2 | 4 | 8)
                        && off % u32::from(*bytes) == 0
                        && same_value(&r.addr, addr)
                });
                if let Some(r) = shared {
                    let size = match bytes {
                        1 => Size::B,
                        2 => Size::H,
                        4 => Size::W,
                        _ => Size::DW,
                    };
                    let at = r.slot + (off - r.start) as i16;
                    self.b.load(size, R0, R10, at);
                    self.extend(R0, *bytes, *signed);
                    return Ok(());
                }
                self.expr(addr)?;
                let tmp = self.alloc(8, e.span, "this read")?;
                self.b.store(Size::DW, R10, tmp, 0);
                self.b.mov(R3, R0);
                if *off != 0 {
                    self.b.add(R3, *off as i32);
                }
                self.stack_ptr(R1, tmp);
                self.b.mov(R2, i32::from(*bytes));
                self.b.call(*helper);
                self.b.load(Size::DW, R0, R10, tmp);
                self.extend(R0, *bytes, *signed);
            }
            TKind::Offset { base, off } => {
                self.expr(base)?;
                if *off != 0 {
                    self.b.add(R0, *off as i32);
                }
            }
            TKind::Trunc {
                value,
                bytes,
                signed,
            } => {
                self.expr(value)?;
                self.extend(R0, *bytes, *signed);
            }
            TKind::Bswap { value, bytes } => {
                // Byte by byte with shifts: the same on every kernel and
                // either byte order (BPF_END converts to an order, which
                // swaps only on the other one).
                self.expr(value)?;
                self.b.mov(R1, 0);
                for _ in 0..*bytes {
                    self.b.alu(AluOp::Lsh, R1, 8);
                    self.b.mov(R2, R0);
                    self.b.alu(AluOp::And, R2, 0xff);
                    self.b.alu(AluOp::Or, R1, R2);
                    self.b.alu(AluOp::Rsh, R0, 8);
                }
                self.b.mov(R0, R1);
            }
        }
        Ok(())
    }

    /// r0 = 1 when `needle` occurs in `haystack`, else 0: every start
    /// position tried in turn, unrolled.
    fn contains(&mut self, haystack: &TExpr, needle: &TExpr) -> Result<(), Error> {
        // A literal needle is compared with immediates: its exact length.
        let literal = match &needle.kind {
            TKind::ConstStr(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        };
        let (hoff, hlen) = self.buffer(haystack)?;
        let needle_at = match literal {
            Some(_) => None,
            None => Some(self.buffer(needle)?),
        };
        let (found, missing, end) = (
            self.b.new_label("found"),
            self.b.new_label("missing"),
            self.b.new_label("end_contains"),
        );
        let hlen = hlen as i16;
        let nlen = match (&literal, needle_at) {
            (Some(bytes), _) => bytes.len() as i16,
            (None, Some((_, len))) => len as i16,
            (None, None) => 0,
        };
        if literal.as_deref() == Some(&[]) {
            self.b.mov(R0, 1);
            return Ok(());
        }
        for i in 0..hlen {
            let next = self.b.new_label("next_start");
            if literal.is_some() && i + nlen > hlen {
                break;
            }
            let mut past_end = false;
            for j in 0..nlen {
                if let Some((noff, _)) = needle_at {
                    // The needle ends at its NUL: found.
                    self.b.load(Size::B, R2, R10, noff + j);
                    self.b.jump(JmpOp::Eq, R2, 0, found);
                }
                if i + j >= hlen {
                    past_end = true;
                    break;
                }
                self.b.load(Size::B, R1, R10, hoff + i + j);
                // The haystack's NUL never matches a needle byte.
                match &literal {
                    Some(bytes) => self
                        .b
                        .jump(JmpOp::Ne, R1, i32::from(bytes[j as usize]), next),
                    None => {
                        self.b.jump(JmpOp::Eq, R1, 0, missing);
                        self.b.jump(JmpOp::Ne, R1, R2, next)
                    }
                }
            }
            self.b.ja(if past_end { next } else { found });
            self.b.bind(next);
        }
        self.b.bind(missing);
        self.b.mov(R0, 0);
        self.b.ja(end);
        self.b.bind(found);
        self.b.mov(R0, 1);
        self.b.bind(end);
        Ok(())
    }

    /// r0 = (dst op src) as 0 or 1, or its negation when `negate`.
    fn bool_of(&mut self, op: JmpOp, dst: Reg, src: impl Into<probes::asm::Operand>, negate: bool) {
        let yes = self.b.new_label("yes");
        let src = src.into();
        let tmp = if dst == R0 { R1 } else { dst };
        if dst == R0 {
            self.b.mov(R1, R0);
        }
        self.b.mov(R0, i32::from(!negate));
        self.b.jump(op, tmp, src, yes);
        self.b.mov(R0, i32::from(negate));
        self.b.bind(yes);
    }

    fn binary(
        &mut self,
        op: BinOp,
        signed: bool,
        l: &TExpr,
        r: &TExpr,
        span: Span,
    ) -> Result<(), Error> {
        if let BinOp::LogAnd | BinOp::LogOr = op {
            let (short, end) = (self.b.new_label("short"), self.b.new_label("end"));
            let short_when = if op == BinOp::LogAnd {
                JmpOp::Eq
            } else {
                JmpOp::Ne
            };
            self.expr(l)?;
            self.b.jump(short_when, R0, 0, short);
            self.expr(r)?;
            self.b.jump(short_when, R0, 0, short);
            self.b.mov(R0, i32::from(op == BinOp::LogAnd));
            self.b.ja(end);
            self.b.bind(short);
            self.b.mov(R0, i32::from(op == BinOp::LogOr));
            self.b.bind(end);
            return Ok(());
        }
        // Left in r1, right in r2 (or an immediate).
        self.expr(l)?;
        let right: probes::asm::Operand = match r.kind {
            TKind::Const(n) if fits_i32(n).is_some() => {
                let imm = fits_i32(n).unwrap_or_default();
                if imm == 0 && matches!(op, BinOp::Div | BinOp::Mod) {
                    return Err(Error::at(r.span, "division by zero"));
                }
                if matches!(op, BinOp::Shl | BinOp::Shr) && !(0..64).contains(&imm) {
                    return Err(Error::at(r.span, "shift by more than 63"));
                }
                self.b.mov(R1, R0);
                imm.into()
            }
            _ => {
                let tmp = self.alloc(8, span, "this operation")?;
                self.b.store(Size::DW, R10, tmp, R0);
                self.expr(r)?;
                self.b.mov(R2, R0);
                self.b.load(Size::DW, R1, R10, tmp);
                R2.into()
            }
        };
        let alu = match op {
            BinOp::Add => AluOp::Add,
            BinOp::Sub => AluOp::Sub,
            BinOp::Mul => AluOp::Mul,
            BinOp::Div => AluOp::Div,
            BinOp::Mod => AluOp::Mod,
            BinOp::And => AluOp::And,
            BinOp::Or => AluOp::Or,
            BinOp::Xor => AluOp::Xor,
            BinOp::Shl => AluOp::Lsh,
            // bpftrace shifts right logically and divides unsigned whatever
            // the sign (BPF before v4 has no signed division).
            BinOp::Shr => AluOp::Rsh,
            _ => {
                // `<` and `<=` are the negations of `>=` and `>`: the
                // JLT family is 4.14+, and the immediate must be on the right.
                let (jop, negate) = match (op, signed) {
                    (BinOp::Eq, _) => (JmpOp::Eq, false),
                    (BinOp::Ne, _) => (JmpOp::Ne, false),
                    (BinOp::Lt, false) => (JmpOp::Ge, true),
                    (BinOp::Le, false) => (JmpOp::Gt, true),
                    (BinOp::Gt, false) => (JmpOp::Gt, false),
                    (BinOp::Ge, false) => (JmpOp::Ge, false),
                    (BinOp::Lt, true) => (JmpOp::Sge, true),
                    (BinOp::Le, true) => (JmpOp::Sgt, true),
                    (BinOp::Gt, true) => (JmpOp::Sgt, false),
                    _ => (JmpOp::Sge, false),
                };
                self.bool_of(jop, R1, right, negate);
                return Ok(());
            }
        };
        self.b.alu(alu, R1, right);
        self.b.mov(R0, R1);
        Ok(())
    }
}
