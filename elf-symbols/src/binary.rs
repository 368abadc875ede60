//! An executable or shared object: its symbols (`.symtab` and `.dynsym`)
//! and its executable load segments, to turn a symbol's address into the
//! file offset a uprobe is placed at.

use std::collections::BTreeSet;

use object::elf;
use object::read::elf::{ElfFile, FileHeader, ProgramHeader, Sym, SymbolTable};
use object::{Endianness, FileKind, ReadRef};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("a damaged ELF file: {0}")]
    Damaged(String),
}

/// A defined symbol of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// Its virtual address as the file states it (`st_value`).
    pub address: u64,
    pub size: u64,
    /// `STT_FUNC` or `STT_GNU_IFUNC`: what a wildcard lists.
    pub function: bool,
}

/// An executable load segment (`PT_LOAD` with `PF_X`).
#[derive(Debug, Clone, Copy)]
struct Load {
    vaddr: u64,
    memsz: u64,
    offset: u64,
}

#[derive(Debug)]
pub struct Binary {
    elf_type: u16,
    /// `.symtab`'s then `.dynsym`'s, in file order; no `STT_NOTYPE` and
    /// no undefined ones (what the kernel cannot probe in this file).
    symbols: Vec<Symbol>,
    loads: Vec<Load>,
}

impl Binary {
    pub fn parse(data: &[u8]) -> Result<Binary, ElfError> {
        match FileKind::parse(data).map_err(|_| ElfError::NotElf)? {
            FileKind::Elf32 => parse_as::<elf::FileHeader32<Endianness>>(data),
            FileKind::Elf64 => parse_as::<elf::FileHeader64<Endianness>>(data),
            _ => Err(ElfError::NotElf),
        }
    }

    /// An executable or a shared object (`ET_EXEC` or `ET_DYN`): what a
    /// uprobe may be placed in.
    pub fn is_program(&self) -> bool {
        matches!(self.elf_type, elf::ET_EXEC | elf::ET_DYN)
    }

    /// `ET_EXEC`: an executable that is not position-independent.
    pub fn is_fixed_executable(&self) -> bool {
        self.elf_type == elf::ET_EXEC
    }

    /// The first symbol called `name`.
    pub fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.symbols.iter().find(|s| s.name == name)
    }

    /// The symbol `address` lies in (its start, or inside its size).
    pub fn symbol_at(&self, address: u64) -> Option<&Symbol> {
        self.symbols
            .iter()
            .find(|s| s.address == address || (s.address < address && address - s.address < s.size))
    }

    /// The functions' names, sorted, each once.
    pub fn functions(&self) -> BTreeSet<&str> {
        self.symbols
            .iter()
            .filter(|s| s.function && !s.name.is_empty())
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Where the code at virtual `address` is in the file: in the
    /// executable load segment that maps it.
    pub fn file_offset(&self, address: u64) -> Option<u64> {
        self.loads
            .iter()
            .find(|l| address >= l.vaddr && address - l.vaddr < l.memsz)
            .map(|l| address - l.vaddr + l.offset)
    }
}

fn damaged(err: object::Error) -> ElfError {
    ElfError::Damaged(err.to_string())
}

fn parse_as<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Binary, ElfError> {
    let file = ElfFile::<Elf>::parse(data).map_err(damaged)?;
    let endian = file.endian();
    let header = file.elf_header();
    let loads = file
        .elf_program_headers()
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD && p.p_flags(endian) & elf::PF_X != 0)
        .map(|p| Load {
            vaddr: p.p_vaddr(endian).into(),
            memsz: p.p_memsz(endian).into(),
            offset: p.p_offset(endian).into(),
        })
        .collect();
    let mut symbols = Vec::new();
    read_symbols(file.elf_symbol_table(), endian, &mut symbols)?;
    read_symbols(file.elf_dynamic_symbol_table(), endian, &mut symbols)?;
    Ok(Binary {
        elf_type: header.e_type(endian),
        symbols,
        loads,
    })
}

fn read_symbols<'data, Elf: FileHeader, R: ReadRef<'data>>(
    table: &SymbolTable<'data, Elf, R>,
    endian: Elf::Endian,
    out: &mut Vec<Symbol>,
) -> Result<(), ElfError> {
    for sym in table.iter() {
        let kind = sym.st_type();
        if kind == elf::STT_NOTYPE || sym.st_shndx(endian) == elf::SHN_UNDEF {
            continue;
        }
        let name = table.symbol_name(endian, sym).map_err(damaged)?;
        out.push(Symbol {
            name: String::from_utf8_lossy(name).into_owned(),
            address: sym.st_value(endian).into(),
            size: sym.st_size(endian).into(),
            function: matches!(kind, elf::STT_FUNC | elf::STT_GNU_IFUNC),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test's own executable: an ELF file of this machine with a
    /// symbol table (test builds are not stripped).
    fn own() -> (Vec<u8>, Binary) {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let binary = Binary::parse(&bytes).unwrap();
        (bytes, binary)
    }

    #[inline(never)]
    fn elf_symbols_test_marker(x: u64) -> u64 {
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a
    }

    /// `n` bytes of this process's memory at `at`, through /proc/self/mem.
    fn memory(at: u64, n: usize) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
        mem.seek(SeekFrom::Start(at)).unwrap();
        let mut buf = vec![0u8; n];
        mem.read_exact(&mut buf).unwrap();
        buf
    }

    #[test]
    fn a_function_is_found_where_its_code_is_in_the_file() {
        let (bytes, binary) = own();
        assert!(binary.is_program());
        assert_eq!(elf_symbols_test_marker(0), 0x5a5a);
        // Rust mangles the name: find it among the functions.
        let name = *binary
            .functions()
            .iter()
            .find(|f| f.contains("elf_symbols_test_marker"))
            .expect("the marker is listed");
        let sym = binary.symbol(name).unwrap();
        assert!(sym.function && sym.size > 0);
        let offset = binary.file_offset(sym.address).expect("in a load segment") as usize;
        // The process maps the file: the code it runs at the function's
        // address is the file's bytes at the offset.
        let running = elf_symbols_test_marker as fn(u64) -> u64 as usize as u64;
        assert_eq!(bytes[offset..offset + 16], memory(running, 16)[..]);
        assert_eq!(binary.symbol_at(sym.address + 1), Some(sym));
        assert!(binary.symbol("no_such_symbol_anywhere").is_none());
    }

    #[test]
    fn other_files_are_refused() {
        assert_eq!(Binary::parse(b"#!/bin/sh\n").unwrap_err(), ElfError::NotElf);
        let (bytes, _) = own();
        assert!(matches!(
            Binary::parse(&bytes[..200]),
            Err(ElfError::Damaged(_))
        ));
    }
}
