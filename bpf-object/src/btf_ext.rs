//! The CO-RE relocation records of `.BTF.ext`. Everything else in
//! `.BTF`/`.BTF.ext` (function and line info) is dropped: old kernels reject
//! BTF they do not understand, so no BTF is ever loaded.
//!
//! Layout (little-endian): a header `magic: u16 (BTF_MAGIC), version: u8,
//! flags: u8, hdr_len: u32, func_info_off/len, line_info_off/len: u32`, and
//! from hdr_len 32 on `core_relo_off/len: u32`; offsets count from the end of
//! the header. The CO-RE part is `record_size: u32` followed by per-section
//! blocks `sec_name_off: u32, num_info: u32, num_info records`.

use kernel_headers::btf::{BTF_MAGIC as MAGIC, CORE_RELO_SIZE};

/// The smallest header that has the CO-RE fields.
const HDR_LEN_WITH_CORE: u32 = 32;
const CORE_OFF_FIELD: usize = 24;

/// One `struct bpf_core_relo`, with the section its block names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CoreRecord {
    /// Offset in `.BTF`'s strings of the program section's name.
    pub section_name_off: u32,
    /// Byte offset of the instruction in that section.
    pub insn_off: u32,
    /// The root type, in the object's `.BTF`.
    pub type_id: u32,
    /// Offset in `.BTF`'s strings of the access string, e.g. `0:2`.
    pub access_str_off: u32,
    pub kind: u32,
}

/// The CO-RE relocation records, in order; none when the section has no
/// CO-RE part or is not BTF.ext at all (then it is ignored, as before).
pub(super) fn core_records(data: &[u8]) -> Result<Vec<CoreRecord>, String> {
    if u16_at(data, 0) != Some(MAGIC) {
        return Ok(Vec::new());
    }
    let Some(hdr_len) = u32_at(data, 4) else {
        return Ok(Vec::new());
    };
    if hdr_len < HDR_LEN_WITH_CORE {
        return Ok(Vec::new());
    }
    let (Some(off), Some(len)) = (
        u32_at(data, CORE_OFF_FIELD),
        u32_at(data, CORE_OFF_FIELD + 4),
    ) else {
        return Err("the header is cut short".into());
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let core = (hdr_len as usize)
        .checked_add(off as usize)
        .and_then(|start| data.get(start..start.checked_add(len as usize)?))
        .ok_or_else(|| {
            format!(
                "its CO-RE part ({off}+{len}) lies beyond the section's {} bytes",
                data.len()
            )
        })?;
    parse_records(core)
}

fn parse_records(core: &[u8]) -> Result<Vec<CoreRecord>, String> {
    let record_size = u32_at(core, 0).ok_or("no record size")? as usize;
    if record_size < CORE_RELO_SIZE {
        return Err(format!(
            "records of {record_size} bytes are shorter than the {CORE_RELO_SIZE} a record has"
        ));
    }
    let mut out = Vec::new();
    let mut pos = 4usize;
    while pos < core.len() {
        let (Some(section_name_off), Some(num)) = (u32_at(core, pos), u32_at(core, pos + 4)) else {
            return Err(format!("block header at byte {pos} is cut short"));
        };
        pos += 8;
        for _ in 0..num {
            let field = |n: usize| u32_at(core, pos.checked_add(n * 4)?);
            let (Some(insn_off), Some(type_id), Some(access_str_off), Some(kind)) =
                (field(0), field(1), field(2), field(3))
            else {
                return Err(format!("record at byte {pos} is cut short"));
            };
            out.push(CoreRecord {
                section_name_off,
                insn_off,
                type_id,
                access_str_off,
                kind,
            });
            pos = pos
                .checked_add(record_size)
                .ok_or("record size overflows")?;
        }
    }
    Ok(out)
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(core_off: u32, core_len: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&32u32.to_le_bytes());
        out.extend_from_slice(&[0; 16]); // func_info and line_info: empty
        out.extend_from_slice(&core_off.to_le_bytes());
        out.extend_from_slice(&core_len.to_le_bytes());
        out
    }

    fn record(insn_off: u32, type_id: u32, access: u32, kind: u32) -> Vec<u8> {
        [insn_off, type_id, access, kind]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    #[test]
    fn reads_records_over_sections() {
        let mut data = header(0, 4 + 8 + 2 * 16 + 8 + 16);
        data.extend_from_slice(&16u32.to_le_bytes()); // record size
        data.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]); // section 1: 2 records
        data.extend(record(8, 3, 10, 0));
        data.extend(record(24, 4, 12, 2));
        data.extend_from_slice(&[5, 0, 0, 0, 1, 0, 0, 0]); // section 5: 1 record
        data.extend(record(0, 7, 14, 1));
        let records = core_records(&data).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(
            records[1],
            CoreRecord {
                section_name_off: 1,
                insn_off: 24,
                type_id: 4,
                access_str_off: 12,
                kind: 2
            }
        );
        assert_eq!((records[2].section_name_off, records[2].type_id), (5, 7));
        // Cut inside the last record.
        let cut = header(0, 4 + 8 + 2 * 16 + 8 + 12);
        let mut short = cut.clone();
        short.extend_from_slice(&data[cut.len()..data.len() - 4]);
        assert!(core_records(&short).unwrap_err().contains("cut short"));
    }

    #[test]
    fn no_core_part_is_empty() {
        assert_eq!(core_records(&header(0, 0)), Ok(vec![]));
        assert_eq!(core_records(b"not btf"), Ok(vec![]));
        assert_eq!(core_records(&[]), Ok(vec![]));
        // An old 24-byte header has no CO-RE fields.
        let mut old = header(0, 0);
        old[4] = 24;
        assert_eq!(core_records(&old[..24]), Ok(vec![]));
    }

    #[test]
    fn a_core_part_beyond_the_section_is_an_error() {
        assert!(
            core_records(&header(100, 50))
                .unwrap_err()
                .contains("beyond")
        );
    }
}
