//! Builtins that call a helper some kernels lack (`curtask`, `rand`,
//! `numaid`, `cgroup`), stacks (`kstack`, `ustack`) and symbols (`ksym`,
//! `usym`), and the address-space casts `kptr`/`uptr`.

use super::*;
use crate::symbols::{DEFAULT_STACK_LIMIT, StackMode, StackType, Symbolic, stack_map_name};

/// Deepest stack bpftrace takes (`kstack(N)`).
const MAX_STACK_LIMIT: u32 = 1024;

impl Checker<'_> {
    /// `name` as one of these builtins; `None` when it is another.
    pub(super) fn sampling_ident(
        &mut self,
        name: &str,
        span: Span,
    ) -> Option<Result<TExpr, Error>> {
        let (helper, ty) = match name {
            "kstack" | "ustack" => return Some(self.stack(name, &[], span)),
            "curtask" => (
                Helper::GetCurrentTask,
                Ty::Ptr {
                    to: Pointee::Struct("task_struct".into()),
                    user: false,
                },
            ),
            "rand" => (Helper::GetPrandomU32, sized_int(false, 4)),
            "numaid" => (Helper::GetNumaNodeId, sized_int(false, 4)),
            "cgroup" => (Helper::GetCurrentCgroupId, int(false)),
            _ => return None,
        };
        Some(self.needs_helper(name, helper, span).map(|()| TExpr {
            kind: TKind::HelperValue(helper),
            ty,
            span,
        }))
    }

    /// `name(args)` as one of these functions; `None` when it is another.
    pub(super) fn sampling_call(
        &mut self,
        scope: &mut Scope,
        name: &str,
        args: &[Expr],
        span: Span,
    ) -> Option<Result<TExpr, Error>> {
        let symbol = match name {
            "kstack" | "ustack" => return Some(self.stack(name, args, span)),
            "ksym" => Symbolic::Ksym,
            "usym" => Symbolic::Usym,
            "kptr" | "uptr" => return Some(self.address_space(scope, name == "uptr", args, span)),
            "kaddr" | "uaddr" => return Some(self.symbol_address(scope, name, args, span)),
            _ => return None,
        };
        Some((|| {
            expect_args(name, args, 1, span)?;
            let addr = self.expr(scope, &args[0])?;
            let addr = self.scalar(addr, &format!("{name}()'s address"))?;
            // A user address is named in the process it was taken in.
            let kind = match symbol {
                Symbolic::Usym => TKind::Usym(Box::new(addr)),
                _ => addr.kind,
            };
            Ok(TExpr {
                kind,
                ty: Ty::Symbol(symbol),
                span,
            })
        })())
    }

    /// `signal(SIG)` as a statement: the helper's result lands in a hidden
    /// variable. `None` for other statements.
    pub(super) fn sampling_stmt(
        &mut self,
        scope: &mut Scope,
        name: &str,
        args: &[Expr],
        span: Span,
    ) -> Option<Result<TStmt, Error>> {
        if name != "signal" {
            return None;
        }
        Some((|| {
            self.needs_helper("signal", Helper::SendSignal, span)?;
            expect_args(name, args, 1, span)?;
            let arg = &args[0];
            let invalid = |what: String| Error::at(arg.span, what);
            let number = match &arg.kind {
                ExprKind::Str(text) => {
                    let n = kernel_headers::signal::number(text)
                        .ok_or_else(|| invalid(format!("{text} is not a valid signal")))?;
                    TExpr {
                        kind: TKind::Const(u64::from(n)),
                        ty: int(false),
                        span: arg.span,
                    }
                }
                _ => {
                    if let Some(n) = constant(arg) {
                        let max = kernel_headers::signal::MAX_SIGNAL;
                        if n < 1 || n > i64::from(max) {
                            return Err(invalid(format!(
                                "{n} is not a valid signal, allowed range: [1,{max}]"
                            )));
                        }
                    }
                    let value = self.expr(scope, arg)?;
                    if !matches!(value.ty, Ty::Int { .. }) {
                        return Err(invalid(
                            "signal only accepts string literals or integers".into(),
                        ));
                    }
                    value
                }
            };
            let slot = scope.vars.len();
            scope.vars.push((String::new(), int(true)));
            Ok(TStmt::AssignVar {
                slot,
                value: TExpr {
                    kind: TKind::HelperWith {
                        helper: Helper::SendSignal,
                        arg: Box::new(number),
                    },
                    ty: int(true),
                    span,
                },
            })
        })())
    }

    /// `kaddr("sym")`: the kernel symbol's address, from /proc/kallsyms when
    /// compiling; `uaddr("sym")`: the symbol's address in a uprobe's file.
    fn symbol_address(
        &mut self,
        scope: &Scope,
        name: &str,
        args: &[Expr],
        span: Span,
    ) -> Result<TExpr, Error> {
        expect_args(name, args, 1, span)?;
        let ExprKind::Str(symbol) = &args[0].kind else {
            return Err(Error::at(
                args[0].span,
                format!("{name}() takes a symbol's name as a string literal"),
            ));
        };
        let address = if name == "kaddr" {
            crate::symbols::kernel_address(symbol).ok_or_else(|| {
                Error::at(
                    span,
                    format!(
                        "kaddr(\"{symbol}\"): no such symbol in /proc/kallsyms (without CONFIG_KALLSYMS_ALL it lists functions only)"
                    ),
                )
            })?
        } else {
            let binary = match scope.point {
                AttachPoint::Uprobe { binary, .. } | AttachPoint::Uretprobe { binary, .. } => {
                    binary
                }
                _ => {
                    return Err(Error::at(
                        span,
                        "uaddr() is for uprobes: it names a symbol of the probed file",
                    ));
                }
            };
            crate::symbols::user_address(binary, symbol).ok_or_else(|| {
                Error::at(
                    span,
                    format!("uaddr(\"{symbol}\"): could not resolve symbol {binary}:{symbol}"),
                )
            })?
        };
        Ok(TExpr {
            kind: TKind::Const(address),
            ty: int(false),
            span,
        })
    }

    /// A refusal when this kernel predates `helper`, naming `what` needs it.
    fn needs_helper(&self, what: &str, helper: Helper, span: Span) -> Result<(), Error> {
        let since = helper.since();
        if self.kernel.release < since {
            return Err(Error::at(
                span,
                format!(
                    "`{what}` needs the helper {} of Linux {}.{}; this kernel is {}",
                    helper.name(),
                    since.major,
                    since.minor,
                    self.kernel.release
                ),
            ));
        }
        Ok(())
    }

    /// `kstack`, `kstack(N)`, `kstack(MODE)`, `kstack(MODE, N)` (and `ustack`).
    fn stack(&mut self, name: &str, args: &[Expr], span: Span) -> Result<TExpr, Error> {
        self.needs_helper(name, Helper::GetStackid, span)?;
        let usage = || {
            Error::at(
                span,
                format!(
                    "{name} takes a mode (bpftrace, perf, raw) and a depth: {name}([MODE][, N])"
                ),
            )
        };
        let mode = |e: &Expr| match &e.kind {
            ExprKind::Ident(m) => StackMode::from_name(m).ok_or_else(|| {
                Error::at(
                    e.span,
                    format!("unknown stack mode `{m}`: bpftrace, perf or raw"),
                )
            }),
            _ => Err(usage()),
        };
        let limit = |e: &Expr| {
            let n = constant(e).ok_or_else(usage)?;
            u32::try_from(n)
                .ok()
                .filter(|&n| n <= MAX_STACK_LIMIT)
                .ok_or_else(|| {
                    Error::at(
                        e.span,
                        format!("{name}([int limit]): limit shouldn't exceed {MAX_STACK_LIMIT}, {n} given"),
                    )
                })
        };
        let (mode, limit) = match args {
            [] => (StackMode::Bpftrace, DEFAULT_STACK_LIMIT),
            [one] if matches!(one.kind, ExprKind::Ident(_)) => (mode(one)?, DEFAULT_STACK_LIMIT),
            [one] => (StackMode::Bpftrace, limit(one)?),
            [m, n] => (mode(m)?, limit(n)?),
            _ => return Err(usage()),
        };
        // The kernel keeps no more than `kernel.perf_event_max_stack`
        // frames (127 unless raised), and refuses a deeper stack map.
        if limit > DEFAULT_STACK_LIMIT {
            return Err(Error::at(
                span,
                format!(
                    "{name}({limit}): nobtf's stack maps hold at most {DEFAULT_STACK_LIMIT} frames (the kernel's default kernel.perf_event_max_stack)"
                ),
            ));
        }
        // A depth of 0 keeps every frame, as bpftrace's.
        let limit = if limit == 0 {
            DEFAULT_STACK_LIMIT
        } else {
            limit
        };
        let user = name == "ustack";
        Ok(TExpr {
            kind: TKind::StackId {
                map: self.stack_map(limit),
                user,
            },
            ty: Ty::Symbol(Symbolic::Stack(StackType { user, mode, limit })),
            span,
        })
    }

    /// The index of the stack map of depth `limit`, added on first use.
    fn stack_map(&mut self, limit: u32) -> usize {
        let name = stack_map_name(limit);
        if let Some(i) = self.maps.iter().position(|m| m.name == name) {
            return i;
        }
        self.maps.push(MapSpec {
            name,
            // Not a map of the program's: never printed nor combined.
            kind: MapKind::Count,
            key: Vec::new(),
            key_size: 4,
            value_size: 8 * limit,
            per_cpu: false,
            array: false,
            max_entries: MAP_ENTRIES,
            tuple: None,
        });
        self.maps.len() - 1
    }

    /// `kptr(p)`/`uptr(p)`: `p` read as an address of kernel or user space.
    fn address_space(
        &mut self,
        scope: &mut Scope,
        user: bool,
        args: &[Expr],
        span: Span,
    ) -> Result<TExpr, Error> {
        let name = if user { "uptr" } else { "kptr" };
        expect_args(name, args, 1, span)?;
        let mut value = self.expr(scope, &args[0])?;
        match &mut value.ty {
            Ty::Ptr { user: space, .. } | Ty::Place { user: space, .. } => *space = user,
            Ty::Int { .. } => {}
            other => {
                return Err(Error::at(
                    value.span,
                    format!("{name}() takes a pointer, found {}", other.describe()),
                ));
            }
        }
        value.span = span;
        Ok(value)
    }
}
