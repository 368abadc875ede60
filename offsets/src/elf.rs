//! ELF access through `object`: debug sections (with relocations applied for
//! a module `.ko`), the `.BTF` section, the symbol table, the release string.

use kernel_headers::pt_regs::{self, Abi};
use std::borrow::Cow;

use object::{Object, ObjectKind, ObjectSection, ObjectSymbol, RelocationTarget};

use crate::error::GenError;

pub struct Elf<'a> {
    file: object::File<'a>,
    data: &'a [u8],
}

fn err(e: impl std::fmt::Display) -> GenError {
    GenError::Elf(e.to_string())
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, GenError> {
        let file = object::File::parse(data).map_err(err)?;
        if Self::abi_of(&file).is_none() {
            return Err(GenError::Arch(format!("{:?}", file.architecture())));
        }
        Ok(Elf { file, data })
    }

    fn abi_of(file: &object::File) -> Option<&'static Abi> {
        let name = match file.architecture() {
            object::Architecture::X86_64 => "x86_64",
            object::Architecture::Aarch64 => "aarch64",
            object::Architecture::Arm => "arm",
            _ => return None,
        };
        pt_regs::abi(name)
    }

    /// The architecture the ELF is built for (one nobtf knows: `parse` checked).
    pub fn abi(&self) -> &'static Abi {
        Self::abi_of(&self.file).unwrap_or(pt_regs::NATIVE)
    }

    /// A relocatable object (a module `.ko`) rather than a linked image.
    pub fn is_relocatable(&self) -> bool {
        self.file.kind() == ObjectKind::Relocatable
    }

    /// A section's bytes, decompressed, with its relocations applied when
    /// this is a relocatable object (DWARF in a `.ko` points at strings and
    /// abbreviations through relocations, not literal offsets).
    pub fn section(&self, name: &str) -> Result<Option<Cow<'a, [u8]>>, GenError> {
        let Some(section) = self.file.section_by_name(name) else {
            return Ok(None);
        };
        let data = section.uncompressed_data().map_err(err)?;
        if !self.is_relocatable() {
            return Ok(Some(data));
        }
        let mut bytes = data.into_owned();
        for (offset, reloc) in section.relocations() {
            if reloc.kind() != object::RelocationKind::Absolute {
                continue;
            }
            let base = match reloc.target() {
                RelocationTarget::Symbol(index) => {
                    self.file.symbol_by_index(index).map_err(err)?.address()
                }
                _ => continue,
            };
            let at = usize::try_from(offset).map_err(err)?;
            let width = usize::from(reloc.size() / 8);
            let Some(slot) = at.checked_add(width).and_then(|end| bytes.get_mut(at..end)) else {
                return Err(err(format!(
                    "{name}: relocation at {offset} lies outside the section"
                )));
            };
            // REL relocations (32-bit ARM) keep their addend in the slot.
            let addend = match (reloc.has_implicit_addend(), width) {
                (true, 4) => i64::from(i32::from_le_bytes(slot[..4].try_into().map_err(err)?)),
                (true, 8) => i64::from_le_bytes(slot[..8].try_into().map_err(err)?),
                _ => reloc.addend(),
            };
            let value = base.wrapping_add_signed(addend);
            match width {
                4 => slot.copy_from_slice(&(value as u32).to_le_bytes()),
                8 => slot.copy_from_slice(&value.to_le_bytes()),
                _ => {}
            }
        }
        Ok(Some(Cow::Owned(bytes)))
    }

    /// The GNU build-id, hex.
    pub fn build_id(&self) -> Option<String> {
        let id = self.file.build_id().ok()??;
        Some(id.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// `Some(true)` if `name` is a function symbol, `None` if there is no
    /// symbol table to ask.
    pub fn has_function(&self, name: &str) -> Option<bool> {
        let mut symbols = self.file.symbols().peekable();
        symbols.peek()?;
        Some(symbols.any(|s| s.kind() == object::SymbolKind::Text && s.name() == Ok(name)))
    }

    /// The kernel release: from `.modinfo`'s vermagic in a module, else from
    /// the `Linux version X` banner.
    pub fn release(&self) -> Option<String> {
        if let Ok(Some(modinfo)) = self.section(".modinfo") {
            for entry in modinfo.split(|&b| b == 0) {
                if let Some(rest) = entry.strip_prefix(b"vermagic=") {
                    let text = String::from_utf8_lossy(rest);
                    return text.split_whitespace().next().map(str::to_string);
                }
            }
        }
        banner_release(self.rodata())
    }

    /// The build's `uname -v`, from the banner.
    pub fn build_version(&self) -> Option<String> {
        crate::identity::banner_version(self.rodata())
    }

    /// Where the `Linux version` banner is: `.rodata`, else anywhere.
    fn rodata(&self) -> &[u8] {
        self.file
            .section_by_name(".rodata")
            .and_then(|s| s.data().ok())
            .unwrap_or(self.data)
    }
}

/// The release in a `Linux version 5.10.0-1-amd64 (...)` banner.
pub fn banner_release(hay: &[u8]) -> Option<String> {
    let rest =
        crate::identity::banners(hay).find(|rest| rest.first().is_some_and(u8::is_ascii_digit))?;
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_graphic())
        .unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner() {
        let hay = b"xxLinux version %s\0Linux version 5.10.223 (me@x) (gcc) #1\0";
        assert_eq!(banner_release(hay).as_deref(), Some("5.10.223"));
        assert_eq!(banner_release(b"Linux version "), None);
        assert_eq!(banner_release(b""), None);
    }

    #[test]
    fn not_elf() {
        assert!(Elf::parse(b"\x7fELF").is_err());
        assert!(Elf::parse(b"").is_err());
    }
}
