//! What `lang::symbols` prints stacks and symbols with on this system: the
//! session's stack maps, `/proc/kallsyms` for the kernel, and for a process
//! `/proc/PID/maps` and the ELF files it maps (`elf-symbols`). Each file is
//! read once, when first needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use elf_symbols::Binary;
use lang::symbols::{Symbol, Symbolizer};

use crate::sys::MapFd;

/// A kernel symbol's start and name, sorted by start.
type KernelSymbols = Vec<(u64, String)>;

/// A mapping of a file into a process: `[start, end)` at file `offset`.
#[derive(Debug, Clone)]
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    path: String,
}

pub struct SystemSymbols {
    /// Each stack map's depth and an fd of it, once the maps exist.
    stacks: Mutex<Vec<(u32, MapFd)>>,
    /// The process `usym()` resolves in (`-p`), as bpftrace's `-p`.
    default_pid: Option<u32>,
    kernel: OnceLock<KernelSymbols>,
    /// The functions kprobe_multi programs attach to, and (once a `func`
    /// is printed) their addresses from one scan of kallsyms.
    functions: Mutex<Vec<String>>,
    function_starts: OnceLock<KernelSymbols>,
    maps: Mutex<HashMap<u32, Arc<Vec<Mapping>>>>,
    files: Mutex<HashMap<String, Option<Arc<Binary>>>>,
}

impl SystemSymbols {
    pub fn new(default_pid: Option<u32>) -> SystemSymbols {
        SystemSymbols {
            stacks: Mutex::default(),
            default_pid,
            kernel: OnceLock::new(),
            functions: Mutex::default(),
            function_starts: OnceLock::new(),
            maps: Mutex::default(),
            files: Mutex::default(),
        }
    }

    /// The stack maps to read stacks from.
    pub fn set_stacks(&self, stacks: Vec<(u32, MapFd)>) {
        *self.stacks.lock().unwrap_or_else(|e| e.into_inner()) = stacks;
    }

    /// The functions a `func` read at run time may be in.
    pub fn set_functions(&self, functions: Vec<String>) {
        *self.functions.lock().unwrap_or_else(|e| e.into_inner()) = functions;
    }

    fn function_starts(&self) -> &KernelSymbols {
        self.function_starts.get_or_init(|| {
            let functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
            let wanted: std::collections::HashSet<&str> =
                functions.iter().map(String::as_str).collect();
            // Line by line: the whole file is megabytes held for nothing.
            match std::fs::File::open("/proc/kallsyms") {
                Ok(file) => starts_of(std::io::BufReader::new(file), &wanted),
                Err(_) => KernelSymbols::new(),
            }
        })
    }

    fn kernel_symbols(&self) -> &KernelSymbols {
        self.kernel.get_or_init(|| {
            parse_kallsyms(&std::fs::read_to_string("/proc/kallsyms").unwrap_or_default())
        })
    }

    fn mappings(&self, pid: u32) -> Arc<Vec<Mapping>> {
        let mut maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        maps.entry(pid)
            .or_insert_with(|| {
                let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
                Arc::new(parse_maps(&text))
            })
            .clone()
    }

    fn file(&self, path: &str) -> Option<Arc<Binary>> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .entry(path.to_string())
            .or_insert_with(|| {
                let data = std::fs::read(path).ok()?;
                Binary::parse(&data).ok().map(Arc::new)
            })
            .clone()
    }
}

impl Symbolizer for SystemSymbols {
    fn stack(&self, limit: u32, id: u32) -> Option<Vec<u64>> {
        let stacks = self.stacks.lock().unwrap_or_else(|e| e.into_inner());
        let (_, map) = stacks.iter().find(|(depth, _)| *depth == limit)?;
        let mut value = vec![0u8; map.lookup_len()];
        if !map.lookup(&id.to_ne_bytes(), &mut value).ok()? {
            return None;
        }
        Some(
            value
                .chunks_exact(8)
                .map(|word| u64::from_ne_bytes(word.try_into().expect("8 bytes")))
                .take_while(|&addr| addr != 0)
                .collect(),
        )
    }

    fn kernel(&self, addr: u64) -> Option<Symbol> {
        kernel_symbol(self.kernel_symbols(), addr)
    }

    /// From the attached functions' starts: kallsyms is scanned once for
    /// them only, not parsed whole (1.5 s and 18 MB under emulation for
    /// every symbol); an address none of them holds is looked up whole.
    fn function(&self, addr: u64) -> Option<Symbol> {
        function_at(self.function_starts(), addr).or_else(|| self.kernel(addr))
    }

    fn kernel_address(&self, name: &str) -> Option<u64> {
        let symbols = self.kernel_symbols();
        symbols
            .iter()
            .find(|(_, n)| n == name)
            .map(|(addr, _)| *addr)
    }

    fn user_address(&self, binary: &str, name: &str) -> Option<u64> {
        self.file(binary)?.symbol(name).map(|s| s.address)
    }

    fn user(&self, pid: u32, addr: u64) -> Option<Symbol> {
        let pid = match pid {
            0 => self.default_pid?,
            pid => pid,
        };
        let mappings = self.mappings(pid);
        let mapping = mappings.iter().find(|m| addr >= m.start && addr < m.end)?;
        let binary = self.file(&mapping.path)?;
        let file_offset = addr - mapping.start + mapping.offset;
        // The address as the file states it: a fixed executable's is the
        // run-time one; a position-independent file's is its file offset
        // moved by its code segment's (address - offset), usually none.
        let address = if binary.is_fixed_executable() {
            addr
        } else {
            let shift = binary
                .file_offset(file_offset)
                .map_or(0, |o| o.wrapping_sub(file_offset));
            file_offset.wrapping_sub(shift)
        };
        let symbol = binary.symbol_at(address)?;
        Some(Symbol {
            name: symbol.name.clone(),
            offset: address - symbol.address,
            module: Some(mapping.path.clone()),
        })
    }
}

/// `/proc/kallsyms`' symbols with an address (all zeros when
/// `kptr_restrict` hides them), sorted.
fn parse_kallsyms(text: &str) -> KernelSymbols {
    let mut symbols: KernelSymbols = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let addr = u64::from_str_radix(fields.next()?, 16).ok()?;
            let kind = fields.next()?;
            let name = fields.next()?;
            // Absolute symbols are not code.
            (addr != 0 && !matches!(kind, "a" | "A")).then(|| (addr, name.to_string()))
        })
        .collect();
    symbols.sort_by_key(|(addr, _)| *addr);
    symbols
}

/// The start of each of `wanted`'s functions in `kallsyms` text, sorted.
fn starts_of(
    kallsyms: impl std::io::BufRead,
    wanted: &std::collections::HashSet<&str>,
) -> KernelSymbols {
    let mut starts: KernelSymbols = kallsyms
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let addr = fields.next()?;
            let _kind = fields.next()?;
            let name = fields.next()?;
            if !wanted.contains(name) {
                return None;
            }
            let addr = u64::from_str_radix(addr, 16).ok()?;
            (addr != 0).then(|| (addr, name.to_string()))
        })
        .collect();
    starts.sort_by_key(|(addr, _)| *addr);
    starts
}

/// Bytes past a function's start its probe may report as its address
/// (an `endbr64` before the probed instruction with IBT).
const ENTRY_SLACK: u64 = 16;

/// The attached function starting at `addr` (or just before it).
fn function_at(starts: &KernelSymbols, addr: u64) -> Option<Symbol> {
    kernel_symbol(starts, addr).filter(|s| s.offset <= ENTRY_SLACK)
}

/// The symbol at or before `addr`.
fn kernel_symbol(symbols: &KernelSymbols, addr: u64) -> Option<Symbol> {
    let after = symbols.partition_point(|(start, _)| *start <= addr);
    let (start, name) = symbols.get(after.checked_sub(1)?)?;
    Some(Symbol {
        name: name.clone(),
        offset: addr - start,
        module: None,
    })
}

/// `/proc/PID/maps`' file mappings.
fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let _perms = fields.next()?;
            let offset = fields.next()?;
            let _dev = fields.next()?;
            let _inode = fields.next()?;
            let path = fields.collect::<Vec<_>>().join(" ");
            if !path.starts_with('/') {
                return None;
            }
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_addresses_resolve_to_the_symbol_before_them() {
        let symbols = parse_kallsyms(
            "0000000000000000 A fixed_percpu_data\nffffffff81000200 T vfs_read\nffffffff81000100 t do_thing\nffffffff81000400 T ext4_x\t[ext4]\n",
        );
        let at = |addr| kernel_symbol(&symbols, addr).map(|s| format!("{}+{}", s.name, s.offset));
        assert_eq!(at(0xffff_ffff_8100_0210).as_deref(), Some("vfs_read+16"));
        assert_eq!(at(0xffff_ffff_8100_0100).as_deref(), Some("do_thing+0"));
        assert_eq!(at(0xffff_ffff_8100_0410).as_deref(), Some("ext4_x+16"));
        assert_eq!(at(0x10), None);
    }

    #[test]
    fn a_func_address_is_named_from_the_attached_functions_only() {
        let kallsyms = "ffffffff81000100 t do_thing\nffffffff81000200 T vfs_read\nffffffff81000300 T vfs_write\n";
        let wanted = std::collections::HashSet::from(["vfs_write", "vfs_read"]);
        let starts = starts_of(kallsyms.as_bytes(), &wanted);
        assert_eq!(starts.len(), 2);
        let at = |addr| function_at(&starts, addr).map(|s| s.name);
        assert_eq!(at(0xffff_ffff_8100_0200).as_deref(), Some("vfs_read"));
        assert_eq!(at(0xffff_ffff_8100_0304).as_deref(), Some("vfs_write"));
        // Far into a function, or before every one: not a probed entry.
        assert_eq!(at(0xffff_ffff_8100_0280), None);
        assert_eq!(at(0xffff_ffff_8100_0100), None);
    }

    #[test]
    fn file_mappings_of_a_process() {
        let maps = parse_maps(
            "55d0c000-55d0d000 r-xp 00002000 08:01 1234 /usr/bin/true\n7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n7f00-8f00 r-xp 00001000 08:01 99 /lib/with space.so\n",
        );
        assert_eq!(maps.len(), 2);
        assert_eq!(
            (maps[0].start, maps[0].end, maps[0].offset),
            (0x55d0_c000, 0x55d0_d000, 0x2000)
        );
        assert_eq!(maps[1].path, "/lib/with space.so");
    }

    /// This test's own process: its `main` wrapper's address names a symbol
    /// of the test binary.
    #[test]
    fn a_function_of_this_process_is_named() {
        let symbols = SystemSymbols::new(Some(std::process::id()));
        let addr = a_function_of_this_process_is_named as *const () as u64;
        let symbol = symbols.user(0, addr).expect("the test binary has symbols");
        assert!(
            symbol.name.contains("a_function_of_this_process_is_named"),
            "{symbol:?}"
        );
        assert_eq!(symbol.offset, 0);
        assert!(symbols.user(0, 8).is_none());
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_str().unwrap();
        let start = symbols
            .user_address(exe, &symbol.name)
            .expect("its own symbol");
        assert!(
            symbols
                .user_address(exe, "no_such_symbol_anywhere")
                .is_none()
        );
        // The file's address of the function, less the load bias.
        assert_eq!(start & 0xfff, addr & 0xfff);
    }
}
