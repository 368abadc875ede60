//! Control flow and scratch variables' scopes: blocks, `if`, `while`,
//! `unroll`, `return`/`break`/`continue`, `let`.
//!
//! As in bpftrace 0.23, a variable first assigned (or declared with `let`)
//! inside a block belongs to that block: reading it after the block is an
//! error. Each variable gets its own stack slot for the whole probe.

use super::*;

/// bpftrace's bounds on `unroll(N)`.
const UNROLL_MAX: i64 = 100;

/// Names visible in one block: each with its slot, or `None` for a `let`
/// not yet assigned (its type comes from the first assignment).
pub(super) type BlockNames = Vec<(String, Option<usize>)>;

impl Scope<'_> {
    /// Where `name` was declared or first assigned: the block's depth and
    /// its slot, if typed yet.
    fn find(&self, name: &str) -> Option<(usize, Option<usize>)> {
        self.blocks
            .iter()
            .enumerate()
            .rev()
            .find_map(|(depth, names)| {
                names
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|&(_, slot)| (depth, slot))
            })
    }

    /// The slot a read of `$name` uses.
    pub(super) fn var(&self, name: &str) -> Option<usize> {
        self.find(name).and_then(|(_, slot)| slot)
    }
}

impl Checker<'_> {
    /// The statements of a block, in a scope of their own.
    pub(super) fn block(&mut self, scope: &mut Scope, body: &[Stmt]) -> Result<Vec<TStmt>, Error> {
        scope.blocks.push(Vec::new());
        let mut out: Vec<TStmt> = Vec::new();
        let mut result = Ok(());
        for stmt in body {
            let checked = self.stmt(scope, stmt).and_then(|s| match s {
                Some(TStmt::While {
                    cond,
                    body,
                    trips: None,
                    span,
                }) if !self.kernel.bounded_loops => {
                    let trips = trip_count(&cond, &body, &out).ok_or_else(|| {
                        Error::at(
                            span,
                            "`while` needs a kernel whose verifier takes loops (5.3+); this one is older: use `unroll(N) { }`, or count a variable from a constant to a constant bound (at most 100 times)",
                        )
                    })?;
                    Ok(Some(TStmt::While {
                        cond,
                        body,
                        trips: Some(trips),
                        span,
                    }))
                }
                other => Ok(other),
            });
            match checked {
                Ok(Some(s)) => out.push(s),
                Ok(None) => {}
                Err(_) if self.lenient => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        scope.blocks.pop();
        result.map(|()| out)
    }

    /// `$name = value`: a new slot in the current block unless `$name` is
    /// visible; a string variable grows to its longest value.
    pub(super) fn assign_var(
        &mut self,
        scope: &mut Scope,
        name: &str,
        value: &Expr,
    ) -> Result<Option<TStmt>, Error> {
        let value = self.expr(scope, value)?;
        let value = self.storable(value)?;
        if let Ty::Place { .. } = value.ty {
            return Err(Error::at(
                value.span,
                format!("a variable cannot hold {}", value.ty.describe()),
            ));
        }
        let slot = match scope.find(name) {
            Some((_, Some(slot))) => {
                let ty = &mut scope.vars[slot].1;
                match (&mut *ty, &value.ty) {
                    (Ty::Str { len: have }, Ty::Str { len: new }) => *have = (*have).max(*new),
                    (held, new) if same_storage(held, new) => {}
                    (held, new) => {
                        return Err(Error::at(
                            value.span,
                            format!(
                                "`${name}` holds {}; it cannot be assigned {}",
                                held.describe(),
                                new.describe()
                            ),
                        ));
                    }
                }
                slot
            }
            found => {
                scope.vars.push((name.to_string(), value.ty.clone()));
                let slot = scope.vars.len() - 1;
                let depth = found.map_or(scope.blocks.len() - 1, |(depth, _)| depth);
                let names = &mut scope.blocks[depth];
                match names.iter_mut().find(|(n, _)| n == name) {
                    Some(entry) => entry.1 = Some(slot),
                    None => names.push((name.to_string(), Some(slot))),
                }
                slot
            }
        };
        Ok(Some(TStmt::AssignVar { slot, value }))
    }

    pub(super) fn flow(&mut self, scope: &mut Scope, stmt: &Stmt) -> Result<Option<TStmt>, Error> {
        let span = stmt.span;
        match &stmt.kind {
            StmtKind::Let { name, value } => {
                if scope.find(name).is_some() {
                    return Err(Error::at(
                        span,
                        format!(
                            "`${name}` is already declared or assigned here; bpftrace allows no shadowing"
                        ),
                    ));
                }
                let depth = scope.blocks.len() - 1;
                scope.blocks[depth].push((name.clone(), None));
                match value {
                    Some(value) => self.assign_var(scope, name, value),
                    None => Ok(None),
                }
            }
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                let cond = self
                    .expr(scope, cond)
                    .and_then(|c| self.scalar(c, "a condition"));
                // The discovery pass looks for maps in the branches even
                // when the condition reads one it does not know yet.
                let cond = match cond {
                    Err(e) if self.lenient => {
                        self.block(scope, then)?;
                        self.block(scope, otherwise)?;
                        return Err(e);
                    }
                    cond => cond?,
                };
                let then = self.block(scope, then)?;
                let otherwise = self.block(scope, otherwise)?;
                Ok(Some(TStmt::If {
                    cond,
                    then,
                    otherwise,
                    span,
                }))
            }
            StmtKind::While { cond, body } => {
                let cond = self
                    .expr(scope, cond)
                    .and_then(|c| self.scalar(c, "a condition"));
                scope.loops += 1;
                if let (Err(_), true) = (&cond, self.lenient) {
                    let _ = self.block(scope, body);
                }
                let cond = match cond {
                    Ok(cond) => cond,
                    Err(e) => {
                        scope.loops -= 1;
                        return Err(e);
                    }
                };
                let body = self.block(scope, body);
                scope.loops -= 1;
                // Before 5.3 the block decides, from what precedes the
                // loop, whether it can be unrolled.
                Ok(Some(TStmt::While {
                    cond,
                    body: body?,
                    trips: None,
                    span,
                }))
            }
            StmtKind::Unroll { count, body } => {
                let n = constant(count).ok_or_else(|| {
                    Error::at(count.span, "unroll's count must be an integer constant")
                })?;
                if !(1..=UNROLL_MAX).contains(&n) {
                    return Err(Error::at(
                        count.span,
                        format!("unroll's count must be 1..={UNROLL_MAX}"),
                    ));
                }
                let body = self.block(scope, body)?;
                Ok(Some(TStmt::Unroll {
                    count: n as u32,
                    body,
                    span,
                }))
            }
            StmtKind::Jump(jump) => {
                if *jump != Jump::Return && scope.loops == 0 {
                    return Err(Error::at(
                        span,
                        format!(
                            "`{}` is only allowed in a `while` loop",
                            if *jump == Jump::Break {
                                "break"
                            } else {
                                "continue"
                            }
                        ),
                    ));
                }
                Ok(Some(TStmt::Jump { jump: *jump, span }))
            }
            StmtKind::Expr(_) | StmtKind::AssignVar { .. } | StmtKind::AssignMap { .. } => {
                self.stmt(scope, stmt)
            }
        }
    }
}

/// The iterations a `while` runs, when the checker can prove them: the
/// last statement before it in its block to assign a variable sets it to
/// a constant, the condition
/// compares that variable with a constant, and the body's top level steps
/// it by a constant, the one assignment to it, with no `continue` (which
/// could skip the step). At most [`UNROLL_MAX`].
fn trip_count(cond: &TExpr, body: &[TStmt], before: &[TStmt]) -> Option<u32> {
    let TKind::Binary {
        op,
        signed,
        left,
        right,
    } = &cond.kind
    else {
        return None;
    };
    let (TKind::Var(slot), TKind::Const(limit)) = (&left.kind, &right.kind) else {
        return None;
    };
    let setting = before
        .iter()
        .rev()
        .find(|s| assignments(std::slice::from_ref(*s), *slot) > 0);
    let Some(TStmt::AssignVar {
        value: TExpr {
            kind: TKind::Const(start),
            ..
        },
        ..
    }) = setting
    else {
        return None;
    };
    if assignments(body, *slot) != 1 || continues(body) {
        return None;
    }
    let step = body.iter().find_map(|s| match s {
        TStmt::AssignVar {
            slot: s,
            value:
                TExpr {
                    kind:
                        TKind::Binary {
                            op: step_op @ (BinOp::Add | BinOp::Sub),
                            left,
                            right,
                            ..
                        },
                    ..
                },
        } if s == slot && matches!(left.kind, TKind::Var(v) if v == *slot) => match right.kind {
            TKind::Const(n) if *step_op == BinOp::Add => Some(n),
            TKind::Const(n) => Some(n.wrapping_neg()),
            _ => None,
        },
        _ => None,
    })?;
    let holds = |i: u64| {
        let (a, b) = (i, *limit);
        match (op, signed) {
            (BinOp::Lt, false) => a < b,
            (BinOp::Le, false) => a <= b,
            (BinOp::Gt, false) => a > b,
            (BinOp::Ge, false) => a >= b,
            (BinOp::Lt, true) => (a as i64) < b as i64,
            (BinOp::Le, true) => (a as i64) <= b as i64,
            (BinOp::Gt, true) => (a as i64) > b as i64,
            (BinOp::Ge, true) => (a as i64) >= b as i64,
            (BinOp::Ne, _) => a != b,
            _ => false,
        }
    };
    let mut i = *start;
    for trips in 0..=UNROLL_MAX as u32 {
        if !holds(i) {
            return Some(trips);
        }
        i = i.wrapping_add(step);
    }
    None
}

/// Assignments to `slot` in `body`, nested blocks included.
fn assignments(body: &[TStmt], slot: usize) -> usize {
    body.iter()
        .map(|s| match s {
            TStmt::AssignVar { slot: s, .. } => usize::from(*s == slot),
            TStmt::If {
                then, otherwise, ..
            } => assignments(then, slot) + assignments(otherwise, slot),
            TStmt::While { body, .. } | TStmt::Unroll { body, .. } => assignments(body, slot),
            TStmt::MapAssign { .. }
            | TStmt::MapAgg { .. }
            | TStmt::Delete { .. }
            | TStmt::Emit { .. }
            | TStmt::Jump { .. } => 0,
        })
        .sum()
}

/// Whether `body` has a `continue` of this loop.
fn continues(body: &[TStmt]) -> bool {
    body.iter().any(|s| match s {
        TStmt::Jump {
            jump: Jump::Continue,
            ..
        } => true,
        TStmt::If {
            then, otherwise, ..
        } => continues(then) || continues(otherwise),
        TStmt::Unroll { body, .. } => continues(body),
        // A nested loop's `continue` is its own.
        TStmt::While { .. }
        | TStmt::AssignVar { .. }
        | TStmt::MapAssign { .. }
        | TStmt::MapAgg { .. }
        | TStmt::Delete { .. }
        | TStmt::Emit { .. }
        | TStmt::Jump { .. } => false,
    })
}
