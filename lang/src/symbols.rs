//! Values printed as symbols: `kstack`/`ustack` (a stack's id in a stack
//! map), `ksym()`/`usym()` (an address). The programs store numbers; the
//! text is made in user space, as bpftrace does, through the [`Symbolizer`]
//! the loader installs (it reads the stack maps, /proc/kallsyms and the
//! processes' ELF files). Pure: the formatting is here, the reading there.

use std::sync::{Arc, RwLock};

/// How a stack is printed (bpftrace's `kstack(MODE)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackMode {
    /// One frame a line, `name+offset`, indented by 8.
    Bpftrace,
    /// A tab, the address in hex, the symbol: what flame graph scripts read.
    Perf,
    /// Addresses in hex, nothing else.
    Raw,
}

impl StackMode {
    pub fn from_name(name: &str) -> Option<StackMode> {
        Some(match name {
            "bpftrace" => StackMode::Bpftrace,
            "perf" => StackMode::Perf,
            "raw" => StackMode::Raw,
            _ => return None,
        })
    }
}

/// A `kstack`/`ustack` as written: which stack, how printed, how deep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StackType {
    pub user: bool,
    pub mode: StackMode,
    /// Most frames kept: the depth of its stack map.
    pub limit: u32,
}

/// bpftrace's default depth, and the kernel's default
/// `kernel.perf_event_max_stack`: a stack map may not be deeper.
pub const DEFAULT_STACK_LIMIT: u32 = 127;

/// Prefix of the stack maps' names (`stack_127`): one map per depth, as
/// `bpf_get_stackid` keeps as many frames as the map's values hold.
pub const STACK_MAP_PREFIX: &str = "stack_";

/// Bits of a `ustack` value that hold the stack id; the thread group id
/// is above them (its symbols are in that process's files).
pub const USTACK_ID_BITS: u32 = 32;

/// Bytes of a `usym()` value: the address, then the thread group id (u32)
/// it was taken in, as bpftrace's `usym_t`.
pub const USYM_SIZE: u32 = 16;

/// The stack map `kstack(N)` and `ustack(N)` use.
pub fn stack_map_name(limit: u32) -> String {
    format!("{STACK_MAP_PREFIX}{limit}")
}

/// The depth of a stack map, from its name; `None` for other maps.
pub fn stack_map_limit(name: &str) -> Option<u32> {
    name.strip_prefix(STACK_MAP_PREFIX)?.parse().ok()
}

/// A value stored as a number and printed as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Symbolic {
    /// The stack id (`ustack`: with the thread group above
    /// [`USTACK_ID_BITS`]); negative (an errno) when the kernel had none.
    Stack(StackType),
    /// `ksym(addr)`: the kernel function containing it.
    Ksym,
    /// `usym(addr)`: the function containing it in the process the probe
    /// fired in (stored with the address: [`USYM_SIZE`]).
    Usym,
    /// `func` in a program on many functions (kprobe_multi): the address
    /// of the function the probe fired in, printed as its name.
    Func,
    /// A string constant held as its number in [`intern`]'s table: a map
    /// key part every use fills with a constant (`@[func]`).
    Name,
}

/// A symbol an address falls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// From the symbol's start.
    pub offset: u64,
    /// The file it is in (user symbols).
    pub module: Option<String>,
}

/// What the loader knows of the running system.
pub trait Symbolizer: Send + Sync {
    /// The addresses of stack `id` in the stack map of depth `limit`.
    fn stack(&self, limit: u32, id: u32) -> Option<Vec<u64>>;
    /// The kernel symbol `addr` is in.
    fn kernel(&self, addr: u64) -> Option<Symbol>;
    /// The symbol `addr` is in within process `pid` (0: the process being
    /// traced, `-p`'s).
    fn user(&self, pid: u32, addr: u64) -> Option<Symbol>;
    /// The kernel function starting at (or containing) `addr`: a `func`
    /// read at run time. By default the symbol containing it.
    fn function(&self, addr: u64) -> Option<Symbol> {
        self.kernel(addr)
    }
    /// The address of kernel symbol `name` (`kaddr()`, at compile time).
    fn kernel_address(&self, name: &str) -> Option<u64>;
    /// The address symbol `name` has in the ELF file `binary` (`uaddr()`).
    fn user_address(&self, binary: &str, name: &str) -> Option<u64>;
}

static INSTALLED: RwLock<Option<Arc<dyn Symbolizer>>> = RwLock::new(None);

/// Makes `symbolizer` the one [`text`] uses.
pub fn install(symbolizer: Arc<dyn Symbolizer>) {
    *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = Some(symbolizer);
}

/// Knows nothing: stacks are unknown, addresses print in hex.
struct Nothing;

impl Symbolizer for Nothing {
    fn stack(&self, _: u32, _: u32) -> Option<Vec<u64>> {
        None
    }
    fn kernel(&self, _: u64) -> Option<Symbol> {
        None
    }
    fn user(&self, _: u32, _: u64) -> Option<Symbol> {
        None
    }
    fn kernel_address(&self, _: &str) -> Option<u64> {
        None
    }
    fn user_address(&self, _: &str, _: &str) -> Option<u64> {
        None
    }
}

fn installed() -> Arc<dyn Symbolizer> {
    let installed = INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone();
    installed.unwrap_or_else(|| Arc::new(Nothing))
}

/// A symbolic value's text through the installed symbolizer.
pub fn text(kind: Symbolic, raw: u64) -> Vec<u8> {
    text_in(kind, raw, 0)
}

/// [`text`] of a value taken in process `pid` (a `usym()`'s; 0: `-p`'s).
pub fn text_in(kind: Symbolic, raw: u64, pid: u32) -> Vec<u8> {
    text_with_in(installed().as_ref(), kind, raw, pid)
}

/// The strings [`Symbolic::Name`] numbers, for the whole process: only
/// appended to, so a number once given keeps its string.
static NAMES: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// `name`'s number in the table [`Symbolic::Name`] prints from.
pub fn intern(name: &str) -> u64 {
    let mut names = NAMES.write().unwrap_or_else(|e| e.into_inner());
    let at = match names.iter().position(|n| n == name) {
        Some(at) => at,
        None => {
            names.push(name.to_string());
            names.len() - 1
        }
    };
    at as u64
}

/// The string numbered `id` by [`intern`].
fn interned(id: u64) -> Option<String> {
    let names = NAMES.read().unwrap_or_else(|e| e.into_inner());
    names.get(usize::try_from(id).ok()?).cloned()
}

/// `kaddr(name)` through the installed symbolizer.
pub fn kernel_address(name: &str) -> Option<u64> {
    installed().kernel_address(name)
}

/// `uaddr(name)` in `binary` through the installed symbolizer.
pub fn user_address(binary: &str, name: &str) -> Option<u64> {
    installed().user_address(binary, name)
}

/// An address as bpftrace prints one it cannot name (`%p`).
fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}

/// `name+offset` (with ` (module)` for a user frame in perf mode), or the
/// address in hex.
fn frame(symbol: Option<Symbol>, addr: u64, offset: bool, module: bool) -> String {
    let mut out = match &symbol {
        Some(s) if offset => format!("{}+{}", s.name, s.offset),
        Some(s) => s.name.clone(),
        None => hex(addr),
    };
    if module {
        let file = symbol.and_then(|s| s.module);
        out.push_str(&format!(" ({})", file.as_deref().unwrap_or("[unknown]")));
    }
    out
}

/// Text of a symbolic value as bpftrace 0.23 prints it.
pub fn text_with(symbolizer: &dyn Symbolizer, kind: Symbolic, raw: u64) -> Vec<u8> {
    text_with_in(symbolizer, kind, raw, 0)
}

/// [`text_with`] of a value taken in process `pid` (see [`text_in`]).
pub fn text_with_in(symbolizer: &dyn Symbolizer, kind: Symbolic, raw: u64, pid: u32) -> Vec<u8> {
    match kind {
        Symbolic::Ksym => frame(symbolizer.kernel(raw), raw, false, false).into_bytes(),
        Symbolic::Usym => frame(symbolizer.user(pid, raw), raw, false, false).into_bytes(),
        Symbolic::Func => frame(symbolizer.function(raw), raw, false, false).into_bytes(),
        Symbolic::Name => interned(raw).unwrap_or_default().into_bytes(),
        Symbolic::Stack(stack) => {
            let (id, pid) = if stack.user {
                (raw as u32, (raw >> USTACK_ID_BITS) as u32)
            } else {
                (raw as u32, 0)
            };
            // A negative id: the kernel could not take the stack (none in
            // user space for a kernel thread, a full map): printed empty.
            let frames = if (raw as i64) < 0 && !stack.user || (id as i32) < 0 {
                Vec::new()
            } else {
                symbolizer.stack(stack.limit, id).unwrap_or_default()
            };
            let mut out = String::from("\n");
            for addr in frames {
                let symbol = || {
                    if stack.user {
                        symbolizer.user(pid, addr)
                    } else {
                        symbolizer.kernel(addr)
                    }
                };
                match stack.mode {
                    StackMode::Raw => out.push_str(&format!("{addr:x}\n")),
                    StackMode::Bpftrace => {
                        out.push_str(&format!("        {}\n", frame(symbol(), addr, true, false)));
                    }
                    StackMode::Perf => out.push_str(&format!(
                        "\t{addr:x} {}\n",
                        frame(symbol(), addr, true, stack.user)
                    )),
                }
            }
            out.into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Symbolizer for Fake {
        fn stack(&self, limit: u32, id: u32) -> Option<Vec<u64>> {
            (limit == 127 && id == 3).then(|| vec![0xffff_1010, 0xffff_2004, 0x40_0000])
        }
        fn kernel(&self, addr: u64) -> Option<Symbol> {
            let (name, start) = match addr {
                0xffff_1000..0xffff_2000 => ("vfs_read", 0xffff_1000),
                0xffff_2000..0xffff_3000 => ("ksys_read", 0xffff_2000),
                _ => return None,
            };
            Some(Symbol {
                name: name.into(),
                offset: addr - start,
                module: None,
            })
        }
        fn user(&self, pid: u32, addr: u64) -> Option<Symbol> {
            (pid == 42 && addr == 0xffff_1010).then(|| Symbol {
                name: "main".into(),
                offset: 16,
                module: Some("/bin/true".into()),
            })
        }
        fn kernel_address(&self, _: &str) -> Option<u64> {
            None
        }
        fn user_address(&self, _: &str, _: &str) -> Option<u64> {
            None
        }
    }

    fn stack(user: bool, mode: StackMode) -> Symbolic {
        Symbolic::Stack(StackType {
            user,
            mode,
            limit: DEFAULT_STACK_LIMIT,
        })
    }

    fn text(kind: Symbolic, raw: u64) -> String {
        String::from_utf8(text_with(&Fake, kind, raw)).unwrap()
    }

    #[test]
    fn kernel_stacks_print_as_bpftrace_prints_them() {
        assert_eq!(
            text(stack(false, StackMode::Bpftrace), 3),
            "\n        vfs_read+16\n        ksys_read+4\n        0x400000\n"
        );
        assert_eq!(
            text(stack(false, StackMode::Perf), 3),
            "\n\tffff1010 vfs_read+16\n\tffff2004 ksys_read+4\n\t400000 0x400000\n"
        );
        assert_eq!(
            text(stack(false, StackMode::Raw), 3),
            "\nffff1010\nffff2004\n400000\n"
        );
        // -EFAULT: no stack.
        assert_eq!(text(stack(false, StackMode::Bpftrace), -14i64 as u64), "\n");
    }

    #[test]
    fn usym_names_the_address_in_the_process_it_was_taken_in() {
        let usym =
            |pid| String::from_utf8(text_with_in(&Fake, Symbolic::Usym, 0xffff_1010, pid)).unwrap();
        assert_eq!(usym(42), "main");
        assert_eq!(usym(43), "0xffff1010");
    }

    #[test]
    fn user_stacks_name_their_process_and_module() {
        let raw = (42 << USTACK_ID_BITS) | 3;
        assert_eq!(
            text(stack(true, StackMode::Perf), raw),
            "\n\tffff1010 main+16 (/bin/true)\n\tffff2004 0xffff2004 ([unknown])\n\t400000 0x400000 ([unknown])\n"
        );
        assert_eq!(
            text(
                stack(true, StackMode::Bpftrace),
                (42 << USTACK_ID_BITS) | 0xffff_fff2
            ),
            "\n"
        );
    }

    #[test]
    fn symbols_without_offset_or_in_hex() {
        assert_eq!(text(Symbolic::Ksym, 0xffff_2004), "ksys_read");
        assert_eq!(text(Symbolic::Ksym, 0x10), "0x10");
        assert_eq!(text(Symbolic::Usym, 0x10), "0x10");
    }

    #[test]
    fn stack_maps_are_named_by_depth() {
        assert_eq!(stack_map_name(127), "stack_127");
        assert_eq!(stack_map_limit("stack_5"), Some(5));
        assert_eq!(stack_map_limit("@stack_5"), None);
        assert_eq!(StackMode::from_name("perf"), Some(StackMode::Perf));
        assert_eq!(StackMode::from_name("flame"), None);
    }
}
