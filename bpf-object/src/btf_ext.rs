//! Just enough of `.BTF.ext` to tell whether an object needs CO-RE
//! relocations. Everything else in `.BTF`/`.BTF.ext` (function and line
//! info) is dropped: old kernels reject BTF they do not understand.
//!
//! Layout (little-endian): a header `magic: u16 (BTF_MAGIC), version: u8,
//! flags: u8, hdr_len: u32, func_info_off/len, line_info_off/len: u32`, and
//! from hdr_len 32 on `core_relo_off/len: u32`; offsets count from the end of
//! the header. The CO-RE part is `record_size: u32` followed by per-section
//! blocks `sec_name_off: u32, num_info: u32, num_info records`.

use kernel_headers::btf::BTF_MAGIC as MAGIC;

/// The smallest header that has the CO-RE fields.
const HDR_LEN_WITH_CORE: u32 = 32;
const CORE_OFF_FIELD: usize = 24;

/// The number of CO-RE relocation records, or `None` when there are none or
/// the section is not BTF.ext at all (in which case it is ignored too).
pub(super) fn core_relocations(data: &[u8]) -> Option<usize> {
    if u16_at(data, 0)? != MAGIC {
        return None;
    }
    let hdr_len = u32_at(data, 4)?;
    if hdr_len < HDR_LEN_WITH_CORE {
        return None;
    }
    let off = u32_at(data, CORE_OFF_FIELD)?;
    let len = u32_at(data, CORE_OFF_FIELD + 4)?;
    if len == 0 {
        return None;
    }
    let start = (hdr_len as usize).checked_add(off as usize)?;
    let core = data.get(start..start.checked_add(len as usize)?);
    // A CO-RE part that is there but unreadable still means CO-RE.
    Some(core.map_or(0, count_records))
}

fn count_records(core: &[u8]) -> usize {
    let Some(record_size) = u32_at(core, 0).map(|n| n as usize) else {
        return 0;
    };
    let (mut pos, mut count) = (4usize, 0usize);
    while let Some(num) = u32_at(core, pos + 4) {
        count = count.saturating_add(num as usize);
        let block = (num as usize).checked_mul(record_size);
        match block.and_then(|b| pos.checked_add(8 + b)) {
            Some(next) if next <= core.len() => pos = next,
            _ => break,
        }
    }
    count
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

    #[test]
    fn counts_records_over_sections() {
        let mut data = header(0, 4 + 8 + 2 * 16 + 8 + 16);
        data.extend_from_slice(&16u32.to_le_bytes()); // record size
        data.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]); // section 1: 2 records
        data.extend_from_slice(&[0; 32]);
        data.extend_from_slice(&[5, 0, 0, 0, 1, 0, 0, 0]); // section 2: 1 record
        data.extend_from_slice(&[0; 16]);
        assert_eq!(core_relocations(&data), Some(3));
    }

    #[test]
    fn no_core_part_is_none() {
        assert_eq!(core_relocations(&header(0, 0)), None);
        assert_eq!(core_relocations(b"not btf"), None);
        assert_eq!(core_relocations(&[]), None);
        // An old 24-byte header has no CO-RE fields.
        let mut old = header(0, 0);
        old[4] = 24;
        assert_eq!(core_relocations(&old[..24]), None);
    }

    #[test]
    fn unreadable_core_part_still_counts_as_core() {
        assert_eq!(core_relocations(&header(100, 50)), Some(0));
    }
}
