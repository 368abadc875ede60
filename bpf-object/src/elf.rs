//! The ELF layer: checks that the bytes are a 64-bit little-endian BPF
//! relocatable object that is all there, and gives checked access to its
//! sections and symbols. Every read is bounds-checked by `object`; nothing
//! here indexes a slice without checking first.

use object::LittleEndian as Le;
use object::elf::{self, FileHeader64, SectionHeader64, Sym64};
use object::read::elf::{FileHeader, Rel, SectionHeader, SectionTable, Sym, SymbolTable};
use object::{SectionIndex, SymbolIndex};

use super::error::ObjError;

/// Size of the ELF64 file header.
const EHDR_SIZE: usize = 64;
const ELFMAG: &[u8; 4] = b"\x7fELF";
/// Offsets of the class and data-encoding bytes in `e_ident`.
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;

pub(super) struct Elf<'a> {
    data: &'a [u8],
    sections: SectionTable<'a, FileHeader64<Le>, &'a [u8]>,
    symbols: SymbolTable<'a, FileHeader64<Le>, &'a [u8]>,
}

/// One section, with what the parser needs from its header.
pub(super) struct Section<'a> {
    pub index: SectionIndex,
    pub name: String,
    pub header: &'a SectionHeader64<Le>,
}

/// A symbol, decoded.
#[derive(Debug, Clone)]
pub(super) struct Symbol {
    pub name: String,
    pub section: Option<SectionIndex>,
    pub value: u64,
    pub size: u64,
    pub kind: u8,
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, ObjError> {
        check_ident(data)?;
        let header = FileHeader64::<Le>::parse(data).map_err(|e| malformed("file header", e))?;
        let machine = header.e_machine(Le);
        if machine != elf::EM_BPF {
            return Err(ObjError::WrongMachine { machine });
        }
        let e_type = header.e_type(Le);
        if e_type != elf::ET_REL {
            return Err(ObjError::NotRelocatable { e_type });
        }
        check_section_table_fits(header, data)?;
        let sections = header
            .sections(Le, data)
            .map_err(|e| malformed("section headers", e))?;
        for (index, section) in sections.enumerate() {
            check_section_fits(&sections, index, section, data.len())?;
        }
        let symbols = sections
            .symbols(Le, data, elf::SHT_SYMTAB)
            .map_err(|e| malformed("symbol table", e))?;
        Ok(Elf {
            data,
            sections,
            symbols,
        })
    }

    pub fn sections(&self) -> Result<Vec<Section<'a>>, ObjError> {
        self.sections
            .enumerate()
            .map(|(index, header)| {
                let name = self
                    .sections
                    .section_name(Le, header)
                    .map_err(|e| malformed(&format!("name of section {}", index.0), e))?;
                Ok(Section {
                    index,
                    name: String::from_utf8_lossy(name).into_owned(),
                    header,
                })
            })
            .collect()
    }

    /// The bytes of a section; NOBITS sections have none in the file.
    pub fn data(&self, section: &Section<'a>) -> Result<&'a [u8], ObjError> {
        if section.header.sh_type(Le) == elf::SHT_NOBITS {
            return Ok(&[]);
        }
        section
            .header
            .data(Le, self.data)
            .map_err(|e| malformed(&format!("section `{}`", section.name), e))
    }

    pub fn symbol(&self, index: SymbolIndex) -> Result<Symbol, ObjError> {
        let sym = self
            .symbols
            .symbol(index)
            .map_err(|e| malformed(&format!("symbol {}", index.0), e))?;
        self.decode(index, sym)
    }

    pub fn symbols(&self) -> Result<Vec<Symbol>, ObjError> {
        self.symbols
            .enumerate()
            .map(|(index, sym)| self.decode(index, sym))
            .collect()
    }

    fn decode(&self, index: SymbolIndex, sym: &Sym64<Le>) -> Result<Symbol, ObjError> {
        let name = self
            .symbols
            .symbol_name(Le, sym)
            .map_err(|e| malformed(&format!("name of symbol {}", index.0), e))?;
        let section = self
            .symbols
            .symbol_section(Le, sym, index)
            .map_err(|e| malformed(&format!("section of symbol {}", index.0), e))?;
        Ok(Symbol {
            name: String::from_utf8_lossy(name).into_owned(),
            section,
            value: sym.st_value(Le),
            size: sym.st_size(Le),
            kind: sym.st_type(),
        })
    }

    /// Relocations that apply to section `target`, as (offset, symbol, type).
    pub fn relocations(
        &self,
        target: &Section<'a>,
        program: &str,
    ) -> Result<Vec<(u64, u32, u32)>, ObjError> {
        let mut out = Vec::new();
        for section in self.sections.iter() {
            if section.sh_info(Le) as usize != target.index.0 {
                continue;
            }
            match section.sh_type(Le) {
                elf::SHT_REL => {}
                elf::SHT_RELA => {
                    return Err(ObjError::BadRelocation {
                        program: program.to_string(),
                        offset: 0,
                        cause: super::error::RelocCause::Rela,
                    });
                }
                _ => continue,
            }
            let rels = match section.rel(Le, self.data) {
                Ok(Some((rels, _))) => rels,
                Ok(None) => continue,
                Err(e) => return Err(malformed(&format!("relocations of `{}`", target.name), e)),
            };
            for rel in rels {
                out.push((rel.r_offset(Le), rel.r_sym(Le), rel.r_type(Le)));
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

fn malformed(what: &str, cause: object::read::Error) -> ObjError {
    ObjError::Malformed {
        what: what.to_string(),
        cause: cause.to_string(),
    }
}

fn check_ident(data: &[u8]) -> Result<(), ObjError> {
    if data.len() < ELFMAG.len() || &data[..ELFMAG.len()] != ELFMAG {
        return Err(ObjError::NotElf);
    }
    let truncated = || ObjError::Truncated {
        what: "the ELF file header".to_string(),
        need: EHDR_SIZE as u64,
        len: data.len() as u64,
    };
    let class = *data.get(EI_CLASS).ok_or_else(truncated)?;
    if class != elf::ELFCLASS64 {
        return Err(ObjError::NotElf64 { class });
    }
    let encoding = *data.get(EI_DATA).ok_or_else(truncated)?;
    if encoding == elf::ELFDATA2MSB {
        return Err(ObjError::BigEndian);
    }
    if data.len() < EHDR_SIZE {
        return Err(truncated());
    }
    Ok(())
}

fn check_section_table_fits(header: &FileHeader64<Le>, data: &[u8]) -> Result<(), ObjError> {
    let shoff = header.e_shoff(Le);
    let entsize = u64::from(header.e_shentsize(Le));
    // e_shnum 0 with a table means the count is in section 0 (extended
    // numbering): `object` reads that, so only check the first entry here.
    let count = u64::from(header.e_shnum(Le)).max(1);
    let need = entsize
        .checked_mul(count)
        .and_then(|size| size.checked_add(shoff));
    match need {
        _ if shoff == 0 => Ok(()),
        Some(need) if need <= data.len() as u64 => Ok(()),
        need => Err(ObjError::Truncated {
            what: "the section header table".to_string(),
            need: need.unwrap_or(u64::MAX),
            len: data.len() as u64,
        }),
    }
}

fn check_section_fits<'a>(
    sections: &SectionTable<'a, FileHeader64<Le>, &'a [u8]>,
    index: SectionIndex,
    section: &SectionHeader64<Le>,
    len: usize,
) -> Result<(), ObjError> {
    if section.sh_type(Le) == elf::SHT_NOBITS || section.sh_type(Le) == elf::SHT_NULL {
        return Ok(());
    }
    let need = section.sh_offset(Le).checked_add(section.sh_size(Le));
    if need.is_some_and(|need| need <= len as u64) {
        return Ok(());
    }
    let name = sections
        .section_name(Le, section)
        .map(|n| format!("section `{}`", String::from_utf8_lossy(n)))
        .unwrap_or_else(|_| format!("section {}", index.0));
    Err(ObjError::Truncated {
        what: name,
        need: need.unwrap_or(u64::MAX),
        len: len as u64,
    })
}
