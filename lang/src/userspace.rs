//! BEGIN, END, and intervals that read no kernel state, run in user space:
//! 4.14 cannot run a BPF program on demand, so their checked bodies are
//! evaluated here, against the live maps the loader reaches through
//! [`Host`]. BEGIN runs before the probes are attached, so what it writes
//! (`@cap[0] = "CAP_CHOWN"`) is in the kernel's maps before the first
//! probe fires; END runs after they are detached and reads what they left.
//!
//! What a block may do: integer and string constants, arithmetic and
//! comparisons as the BPF code computes them (64-bit, unsigned division,
//! signed where the checker typed it so), `$x` variables, `@m[k]` reads
//! (aggregations combined over the CPUs, as bpftrace 0.23 reads them) and
//! assignments, `delete`, `printf`, `print`, `clear`, `exit()` (which ends
//! the block, as in bpftrace), `if`/`else`, `unroll`, `return`, string
//! comparisons, `nsecs` and `elapsed`. [`check`] refuses the rest before
//! anything loads.

use thiserror::Error;

use crate::Compiled;
use crate::ast::{BinOp, UnOp};
use crate::diag::{Error, Span};
use crate::format::time::Clock;
use crate::output::{
    DecodeError, Event, EventFormat, MapKind, MapSpec, MapValue, Slot, Value, ValueType,
};
use crate::typed::{Builtin, TExpr, TKind, TProbe, TStmt, Ty};

/// What the loader gives a block: the maps, where its output goes, the clock.
pub trait Host {
    type Error;
    /// `map`'s value for `key`: one slice per possible CPU for a per-CPU
    /// map, else one; `None` when the key is absent.
    fn lookup(&mut self, map: &MapSpec, key: &[u8]) -> Result<Option<Vec<Vec<u8>>>, Self::Error>;
    /// Writes `value` (`map.value_size` bytes; the map is not per-CPU).
    fn update(&mut self, map: &MapSpec, key: &[u8], value: &[u8]) -> Result<(), Self::Error>;
    fn delete(&mut self, map: &MapSpec, key: &[u8]) -> Result<(), Self::Error>;
    /// A printf's text, `print`, `clear`, `time` or `exit`, acted on before
    /// the next statement runs (a `clear` then a read sees the map empty).
    fn emit(&mut self, event: Event) -> Result<(), Self::Error>;
    fn clock(&self) -> &dyn Clock;
}

#[derive(Debug, Error)]
pub enum RunError<E> {
    #[error("{0}")]
    Host(E),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Whether a block ended by `exit()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Exit,
}

/// The map `elapsed` reads its start from: written with the `nsecs` of the
/// start by [`start`], before BEGIN runs (as bpftrace's `elapsed` map). Its
/// name has no `@`, so no program can name it and it is not printed.
pub const ELAPSED_MAP: &str = "elapsed";

/// What the loader runs before attaching: `elapsed`'s start, then every
/// BEGIN block in order, until one calls `exit()`.
pub fn start<H: Host>(compiled: &Compiled, host: &mut H) -> Result<Flow, RunError<H::Error>> {
    if let Some(spec) = compiled.maps.iter().find(|m| m.name == ELAPSED_MAP) {
        let now = host.clock().nsecs();
        host.update(spec, &0u64.to_ne_bytes(), &now.to_ne_bytes())
            .map_err(RunError::Host)?;
    }
    run_all(compiled, &compiled.begin, host)
}

/// Every block of `blocks` in order, until one calls `exit()`.
pub fn run_all<H: Host>(
    compiled: &Compiled,
    blocks: &[TProbe],
    host: &mut H,
) -> Result<Flow, RunError<H::Error>> {
    for block in blocks {
        if run(compiled, block, host)? == Flow::Exit {
            return Ok(Flow::Exit);
        }
    }
    Ok(Flow::Continue)
}

/// Why a block cannot run in user space: the construct's place and name.
/// Without `clock`, `nsecs` and `elapsed` count as kernel state (an
/// interval reading them stays a BPF program).
pub fn check(block: &TProbe, maps: &[MapSpec], clock: bool) -> Result<(), (Span, String)> {
    check_body(&block.body, maps, clock)
}

fn check_body(body: &[TStmt], maps: &[MapSpec], clock: bool) -> Result<(), (Span, String)> {
    for stmt in body {
        match stmt {
            TStmt::AssignVar { value, .. } => check_expr(value, maps, clock)?,
            TStmt::MapAssign { keys, value, .. } => {
                for e in keys {
                    check_expr(e, maps, clock)?;
                }
                check_stored(value, maps, clock)?;
            }
            TStmt::Delete { keys, .. } | TStmt::Emit { args: keys, .. } => {
                for e in keys {
                    check_expr(e, maps, clock)?;
                }
            }
            TStmt::MapAgg { span, .. } => {
                return Err((*span, "an aggregation (count(), sum(), ...)".into()));
            }
            TStmt::If {
                cond,
                then,
                otherwise,
                ..
            } => {
                check_expr(cond, maps, clock)?;
                check_body(then, maps, clock)?;
                check_body(otherwise, maps, clock)?;
            }
            TStmt::Unroll { body, .. } => check_body(body, maps, clock)?,
            TStmt::Jump {
                jump: crate::ast::Jump::Return,
                ..
            } => {}
            TStmt::While { span, .. } => return Err((*span, "a `while` loop".into())),
            TStmt::Jump { span, .. } => return Err((*span, "`break`/`continue`".into())),
        }
    }
    Ok(())
}

/// A value stored in a map: a tuple written in place (`@t = (1, "a")`),
/// part by part.
fn check_stored(e: &TExpr, maps: &[MapSpec], clock: bool) -> Result<(), (Span, String)> {
    match &e.kind {
        TKind::Tuple(elements) => elements
            .iter()
            .try_for_each(|e| check_stored(e, maps, clock)),
        _ if matches!(e.ty, Ty::Tuple(_)) => Err((e.span, "a tuple other than `(a, b)`".into())),
        _ => check_expr(e, maps, clock),
    }
}

fn check_expr(e: &TExpr, maps: &[MapSpec], clock: bool) -> Result<(), (Span, String)> {
    let sub = |e: &TExpr| check_expr(e, maps, clock);
    match &e.kind {
        TKind::Const(_) | TKind::ConstStr(_) | TKind::Var(_) => Ok(()),
        TKind::Builtin(Builtin::Nsecs) if clock => Ok(()),
        TKind::MapGet { map, .. } if !clock && maps[*map].name == ELAPSED_MAP => {
            Err((e.span, "`elapsed`".into()))
        }
        TKind::MapGet { map, keys } => {
            if matches!(maps[*map].kind, MapKind::Hist | MapKind::Lhist { .. }) {
                return Err((
                    e.span,
                    format!("reading the histogram `{}`", maps[*map].name),
                ));
            }
            keys.iter().try_for_each(sub)
        }
        TKind::Unary(_, v) => sub(v),
        TKind::Binary { left, right, .. } => sub(left).and_then(|()| sub(right)),
        TKind::StrCmp { left, right, .. } => sub(left).and_then(|()| sub(right)),
        TKind::Ternary(c, a, b) => sub(c).and_then(|()| sub(a)).and_then(|()| sub(b)),
        TKind::StrEq { value, .. } => sub(value),
        TKind::Trunc { value, .. } => sub(value),
        TKind::Builtin(b) => Err((e.span, format!("`{}`", format!("{b:?}").to_lowercase()))),
        TKind::Comm { .. } => Err((e.span, "`comm`".into())),
        _ => Err((e.span, "reading kernel memory".into())),
    }
}

/// The refusal of a BEGIN or END block [`check`] turned down.
pub fn refusal(span: Span, what: &str) -> Error {
    Error::at(
        span,
        format!(
            "{what} cannot run in BEGIN or END: nobtf runs them in user space (4.14 cannot run a BPF program on demand), where they may use constants, variables, maps, printf, print, clear, delete, exit, nsecs and elapsed"
        ),
    )
}

/// A value while a block runs: integers as their 64 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    Int(u64),
    Str(Vec<u8>),
}

impl V {
    fn int(&self) -> u64 {
        match self {
            V::Int(n) => *n,
            V::Str(_) => 0,
        }
    }
}

/// Runs one block.
pub fn run<H: Host>(
    compiled: &Compiled,
    block: &TProbe,
    host: &mut H,
) -> Result<Flow, RunError<H::Error>> {
    let mut eval = Eval {
        compiled,
        host,
        vars: vec![V::Int(0); block.vars.len()],
    };
    Ok(match eval.body(&block.body)? {
        Next::Exit => Flow::Exit,
        Next::Go | Next::Return => Flow::Continue,
    })
}

/// Where a block goes after a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Go,
    /// `return`: the block ends.
    Return,
    /// `exit()`: the block and the program end.
    Exit,
}

struct Eval<'a, H: Host> {
    compiled: &'a Compiled,
    host: &'a mut H,
    vars: Vec<V>,
}

impl<H: Host> Eval<'_, H> {
    fn body(&mut self, body: &[TStmt]) -> Result<Next, RunError<H::Error>> {
        for stmt in body {
            let next = self.stmt(stmt)?;
            if next != Next::Go {
                return Ok(next);
            }
        }
        Ok(Next::Go)
    }

    fn stmt(&mut self, stmt: &TStmt) -> Result<Next, RunError<H::Error>> {
        match stmt {
            TStmt::If {
                cond,
                then,
                otherwise,
                ..
            } => {
                let branch = if self.expr(cond)?.int() != 0 {
                    then
                } else {
                    otherwise
                };
                return self.body(branch);
            }
            TStmt::Unroll { count, body, .. } => {
                for _ in 0..*count {
                    let next = self.body(body)?;
                    if next != Next::Go {
                        return Ok(next);
                    }
                }
            }
            TStmt::Jump { .. } => return Ok(Next::Return),
            TStmt::AssignVar { slot, value } => {
                let v = self.expr(value)?;
                self.vars[*slot] = v;
            }
            TStmt::MapAssign {
                map, keys, value, ..
            } => {
                let spec = &self.compiled.maps[*map];
                let key = self.key(spec, keys)?;
                let mut bytes = vec![0u8; spec.value_size as usize];
                self.put_stored(&mut bytes, 0, value)?;
                self.host
                    .update(spec, &key, &bytes)
                    .map_err(RunError::Host)?;
            }
            TStmt::Delete { map, keys, .. } => {
                let spec = &self.compiled.maps[*map];
                let key = self.key(spec, keys)?;
                self.host.delete(spec, &key).map_err(RunError::Host)?;
            }
            TStmt::Emit { event, args, .. } => {
                let event = match &self.compiled.events[*event] {
                    EventFormat::Printf {
                        format,
                        args: slots,
                    } => Event::Printf {
                        format: format.clone(),
                        args: self.values(args, slots)?,
                    },
                    EventFormat::Cat {
                        format,
                        args: slots,
                    } => Event::Cat {
                        format: format.clone(),
                        args: self.values(args, slots)?,
                    },
                    EventFormat::System {
                        format,
                        args: slots,
                    } => Event::System {
                        format: format.clone(),
                        args: self.values(args, slots)?,
                    },
                    EventFormat::Value { shape, args: slots } => Event::Value {
                        shape: shape.clone(),
                        args: self.values(args, slots)?,
                    },
                    EventFormat::Exit => {
                        self.host.emit(Event::Exit).map_err(RunError::Host)?;
                        return Ok(Next::Exit);
                    }
                    other => other.valueless().unwrap_or(Event::Exit),
                };
                self.host.emit(event).map_err(RunError::Host)?;
            }
            // `check` lets nothing else through.
            _ => {}
        }
        Ok(Next::Go)
    }

    /// A record's values: each argument as its slot holds it (a
    /// `strftime()` as its text).
    fn values(&mut self, args: &[TExpr], slots: &[Slot]) -> Result<Vec<Value>, RunError<H::Error>> {
        let mut values = Vec::with_capacity(args.len());
        for (arg, slot) in args.iter().zip(slots) {
            values.push(match (self.expr(arg)?, slot.ty) {
                (V::Int(n), ValueType::Timestamp { format }) => {
                    let format = self
                        .compiled
                        .time_formats
                        .get(format as usize)
                        .map_or("", String::as_str);
                    let clock = self.host.clock();
                    Value::Str(crate::format::time::timestamp(format, n, clock))
                }
                (V::Str(s), _) => Value::Str(s),
                (V::Int(n), ValueType::Int { signed: true }) => Value::Int(n as i64),
                (V::Int(n), _) => Value::Uint(n),
            });
        }
        Ok(values)
    }

    /// The kernel key of `@m[keys]`, laid out as the BPF code lays it.
    fn key(&mut self, spec: &MapSpec, keys: &[TExpr]) -> Result<Vec<u8>, RunError<H::Error>> {
        let mut key = vec![0u8; spec.key_size as usize];
        for (k, slot) in keys.iter().zip(&spec.key) {
            let v = self.expr(k)?;
            put_slot(&mut key, slot, &v);
        }
        Ok(key)
    }

    /// `e` written at `at`: a tuple's parts each in its own slot.
    fn put_stored(
        &mut self,
        bytes: &mut [u8],
        at: usize,
        e: &TExpr,
    ) -> Result<(), RunError<H::Error>> {
        if let (TKind::Tuple(elements), Ty::Tuple(types)) = (&e.kind, &e.ty) {
            let offsets = Ty::tuple_offsets(types);
            for ((element, offset), ty) in elements.iter().zip(offsets).zip(types) {
                let end = (at + (offset + ty.slot_size()) as usize).min(bytes.len());
                self.put_stored(&mut bytes[..end], at + offset as usize, element)?;
            }
            return Ok(());
        }
        put(bytes, at, &self.expr(e)?);
        Ok(())
    }

    fn expr(&mut self, e: &TExpr) -> Result<V, RunError<H::Error>> {
        Ok(match &e.kind {
            TKind::Const(n) => V::Int(*n),
            TKind::ConstStr(s) => V::Str(s.as_bytes().to_vec()),
            TKind::Var(slot) => self.vars[*slot].clone(),
            TKind::Builtin(Builtin::Nsecs) => V::Int(self.host.clock().nsecs()),
            TKind::MapGet { map, keys } => {
                let spec = &self.compiled.maps[*map];
                let key = self.key(spec, keys)?;
                let found = self.host.lookup(spec, &key).map_err(RunError::Host)?;
                let string = matches!(e.ty, Ty::Str { .. });
                match found {
                    None if string => V::Str(Vec::new()),
                    None => V::Int(0),
                    Some(per_cpu) => {
                        let slices: Vec<&[u8]> = per_cpu.iter().map(Vec::as_slice).collect();
                        map_value(spec.combine(&slices)?)
                    }
                }
            }
            TKind::Unary(op, v) => {
                let n = self.expr(v)?.int();
                V::Int(match op {
                    UnOp::Not => u64::from(n == 0),
                    UnOp::Neg => n.wrapping_neg(),
                    UnOp::BitNot => !n,
                })
            }
            TKind::Binary {
                op,
                signed,
                left,
                right,
            } => {
                if let BinOp::LogAnd | BinOp::LogOr = op {
                    let l = self.expr(left)?.int() != 0;
                    let value = match op {
                        BinOp::LogAnd => l && self.expr(right)?.int() != 0,
                        _ => l || self.expr(right)?.int() != 0,
                    };
                    return Ok(V::Int(u64::from(value)));
                }
                let a = self.expr(left)?.int();
                let b = self.expr(right)?.int();
                V::Int(binary(*op, a, b, *signed))
            }
            TKind::StrCmp {
                left,
                right,
                len,
                negate,
            } => {
                let text = |v: V| match v {
                    V::Str(mut s) => {
                        s.truncate(*len as usize);
                        s
                    }
                    V::Int(_) => Vec::new(),
                };
                let equal = text(self.expr(left)?) == text(self.expr(right)?);
                V::Int(u64::from(equal != *negate))
            }
            TKind::Ternary(c, a, b) => {
                if self.expr(c)?.int() != 0 {
                    self.expr(a)?
                } else {
                    self.expr(b)?
                }
            }
            TKind::StrEq {
                value,
                literal,
                negate,
            } => {
                let equal = match self.expr(value)? {
                    V::Str(s) => s == literal.as_bytes(),
                    V::Int(_) => false,
                };
                V::Int(u64::from(equal != *negate))
            }
            TKind::Trunc {
                value,
                bytes,
                signed,
            } => {
                let n = self.expr(value)?.int();
                let bits = u32::from(*bytes) * 8;
                V::Int(if bits >= 64 {
                    n
                } else if *signed {
                    (((n << (64 - bits)) as i64) >> (64 - bits)) as u64
                } else {
                    n & ((1u64 << bits) - 1)
                })
            }
            // `check` lets nothing else through.
            _ => V::Int(0),
        })
    }
}

/// A map's combined value as an expression sees it.
fn map_value(value: MapValue) -> V {
    match value {
        MapValue::Value(Value::Int(n)) => V::Int(n as u64),
        MapValue::Value(Value::Uint(n)) => V::Int(n),
        MapValue::Value(Value::Str(s) | Value::Buf(s)) => V::Str(s),
        MapValue::Count(n) => V::Int(n),
        // `check` refuses reading a map of tuples here.
        MapValue::Tuple(_) => V::Int(0),
        MapValue::Sum(n) => V::Int(n as u64),
        MapValue::Min(n) | MapValue::Max(n) => V::Int(n.unwrap_or(0)),
        MapValue::Avg { sum, count } => V::Int(if count == 0 {
            0
        } else {
            sum.wrapping_div(count as i64) as u64
        }),
    }
}

/// `a op b` as the BPF instructions compute it: division and `>>`
/// unsigned, division by zero 0 and modulo by zero `a` (the kernel's
/// rule), shifts by the low 6 bits; `signed` orders comparisons.
fn binary(op: BinOp, a: u64, b: u64, signed: bool) -> u64 {
    let (sa, sb) = (a as i64, b as i64);
    match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::Mul => a.wrapping_mul(b),
        BinOp::Div => a.checked_div(b).unwrap_or(0),
        BinOp::Mod => a.checked_rem(b).unwrap_or(a),
        BinOp::And => a & b,
        BinOp::Or => a | b,
        BinOp::Xor => a ^ b,
        BinOp::Shl => a << (b & 63),
        // Logical whatever the sign, as bpftrace (and the code generator).
        BinOp::Shr => a >> (b & 63),
        BinOp::Eq => u64::from(a == b),
        BinOp::Ne => u64::from(a != b),
        BinOp::Lt if signed => u64::from(sa < sb),
        BinOp::Le if signed => u64::from(sa <= sb),
        BinOp::Gt if signed => u64::from(sa > sb),
        BinOp::Ge if signed => u64::from(sa >= sb),
        BinOp::Lt => u64::from(a < b),
        BinOp::Le => u64::from(a <= b),
        BinOp::Gt => u64::from(a > b),
        BinOp::Ge => u64::from(a >= b),
        BinOp::LogAnd => u64::from(a != 0 && b != 0),
        BinOp::LogOr => u64::from(a != 0 || b != 0),
    }
}

/// Writes `v` at `slot` of a key.
fn put_slot(bytes: &mut [u8], slot: &Slot, v: &V) {
    let at = slot.offset as usize;
    let len = slot.ty.size() as usize;
    if let Some(field) = bytes.get_mut(at..at + len) {
        put(field, 0, v);
    }
}

/// Writes `v` at `at`: an integer's 8 bytes, a string's bytes (the rest
/// stays NUL, and the last byte is kept NUL).
fn put(bytes: &mut [u8], at: usize, v: &V) {
    match v {
        V::Int(n) => {
            if let Some(field) = bytes.get_mut(at..at + 8) {
                field.copy_from_slice(&n.to_ne_bytes());
            }
        }
        V::Str(s) => {
            let room = bytes.len().saturating_sub(at + 1);
            let n = s.len().min(room);
            bytes[at..at + n].copy_from_slice(&s[..n]);
        }
    }
}

/// The events `blocks` emit run on empty maps in memory, the clock
/// standing at 0.
pub fn events(compiled: &Compiled, blocks: &[TProbe]) -> Vec<Event> {
    let mut host = MemoryHost::new(crate::format::time::FixedClock::default());
    match run_all(compiled, blocks, &mut host) {
        Ok(_) => host.events,
        Err(RunError::Decode(e)) => vec![Event::Printf {
            format: format!("{e}"),
            args: Vec::new(),
        }],
    }
}

/// A [`Host`] whose maps live in memory: tests, and the tracefs back end
/// (its probes use no maps; BEGIN and END may). Each emitted event is
/// kept in order; `clear` also empties the map here.
#[derive(Debug, Default)]
pub struct MemoryHost<C> {
    /// By map name and key: the value.
    pub maps: std::collections::BTreeMap<(String, Vec<u8>), Vec<u8>>,
    pub events: Vec<Event>,
    pub clock: C,
}

impl<C: Clock> MemoryHost<C> {
    pub fn new(clock: C) -> MemoryHost<C> {
        MemoryHost {
            maps: Default::default(),
            events: Vec::new(),
            clock,
        }
    }

    /// A map's entries as `crate::report` takes them (one CPU).
    pub fn entries(&self, map: &str) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
        self.maps
            .iter()
            .filter(|((name, _), _)| name == map)
            .map(|((_, key), value)| (key.clone(), vec![value.clone()]))
            .collect()
    }
}

impl<C: Clock> Host for MemoryHost<C> {
    type Error = std::convert::Infallible;

    fn lookup(&mut self, map: &MapSpec, key: &[u8]) -> Result<Option<Vec<Vec<u8>>>, Self::Error> {
        Ok(self
            .maps
            .get(&(map.name.clone(), key.to_vec()))
            .map(|v| vec![v.clone()]))
    }

    fn update(&mut self, map: &MapSpec, key: &[u8], value: &[u8]) -> Result<(), Self::Error> {
        self.maps
            .insert((map.name.clone(), key.to_vec()), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, map: &MapSpec, key: &[u8]) -> Result<(), Self::Error> {
        self.maps.remove(&(map.name.clone(), key.to_vec()));
        Ok(())
    }

    fn emit(&mut self, event: Event) -> Result<(), Self::Error> {
        if let Event::Clear { map } = &event {
            self.maps.retain(|(name, _), _| name != map);
        }
        self.events.push(event);
        Ok(())
    }

    fn clock(&self) -> &dyn Clock {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_the_bpf_codes() {
        assert_eq!(binary(BinOp::Div, 7, 0, false), 0);
        assert_eq!(binary(BinOp::Mod, 7, 0, false), 7);
        assert_eq!(binary(BinOp::Div, -8i64 as u64, 2, true), (1u64 << 63) - 4);
        assert_eq!(binary(BinOp::Shr, -8i64 as u64, 1, true), (1 << 63) - 4);
        assert_eq!(binary(BinOp::Shr, -8i64 as u64, 1, false), (1 << 63) - 4);
        assert_eq!(binary(BinOp::Lt, -1i64 as u64, 0, true), 1);
        assert_eq!(binary(BinOp::Lt, -1i64 as u64, 0, false), 0);
        assert_eq!(binary(BinOp::Shl, 1, 65, false), 2);
    }

    #[test]
    fn strings_are_cut_to_leave_their_nul() {
        let mut b = [0xffu8; 8];
        b.fill(0);
        put(&mut b, 0, &V::Str(b"abcdefghij".to_vec()));
        assert_eq!(&b, b"abcdefg\0");
    }
}
