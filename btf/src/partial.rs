//! One struct member's offset from the first bytes of a raw BTF's type and
//! string sections, for a caller that reads the kernel's BTF a piece at a
//! time: `task_struct` is among a vmlinux's first few hundred types and
//! its name among the first few thousand string bytes (debian-6.12: type
//! 112 of 113,921, name at byte 778), where the whole BTF is megabytes
//! and [`Btf::parse`](crate::Btf::parse) of it costs tens of millions of
//! instructions.

use crate::{BtfError, Cursor, Kind};

/// A prefix of one section, and whether it is the whole section.
#[derive(Debug, Clone, Copy)]
pub struct Prefix<'a> {
    pub bytes: &'a [u8],
    pub whole: bool,
}

/// What a prefix says about the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The member's offset in bits from the start of the struct.
    Found { bit_offset: u32 },
    /// The whole BTF has no such struct with such a member (directly in
    /// it: anonymous members are not looked through).
    Absent,
    /// More of the type section is needed.
    MoreTypes,
    /// More of the string section is needed.
    MoreStrings,
}

/// Looks for member `member` of the first struct named `strukt`.
pub fn member_offset(
    types: Prefix<'_>,
    strings: Prefix<'_>,
    strukt: &str,
    member: &str,
) -> Result<Scan, BtfError> {
    let (Some(strukt_off), Some(member_off)) = (
        string_offset(strings.bytes, strukt),
        string_offset(strings.bytes, member),
    ) else {
        return Ok(if strings.whole {
            Scan::Absent
        } else {
            Scan::MoreStrings
        });
    };
    let mut c = Cursor {
        data: types.bytes,
        pos: 0,
    };
    while c.pos < types.bytes.len() {
        let t = match crate::Btf::parse_type(&mut c) {
            Ok(t) => t,
            // A record cut by the prefix's end.
            Err(_) if !types.whole => return Ok(Scan::MoreTypes),
            Err(e) => return Err(e),
        };
        if t.name_off != strukt_off {
            continue;
        }
        if let Kind::Struct { members, .. } = &t.kind {
            return Ok(members.iter().find(|m| m.name_off == member_off).map_or(
                Scan::Absent,
                |m| Scan::Found {
                    bit_offset: m.bit_offset,
                },
            ));
        }
    }
    Ok(if types.whole {
        Scan::Absent
    } else {
        Scan::MoreTypes
    })
}

/// Where `name` starts in the string section, if `strings` holds it: a
/// string starts at byte 0 (the empty one) or after a NUL, and ends with
/// one. Deduplicated BTF holds each name once.
fn string_offset(strings: &[u8], name: &str) -> Option<u32> {
    let name = name.as_bytes();
    let mut at = 0;
    while at < strings.len() {
        let end = at + strings[at..].iter().position(|&b| b == 0)?;
        if &strings[at..end] == name {
            return u32::try_from(at).ok();
        }
        at = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sections;

    /// Raw BTF: an int, `struct task_struct { int pid; char comm[16]; }`
    /// (as int + array), and the strings.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0task_struct\0pid\0comm\0char\0".to_vec();
        let at = |s: &[u8]| {
            strings
                .windows(s.len())
                .position(|w| w == s)
                .expect("in the table") as u32
        };
        let mut types = Vec::new();
        let mut put = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        // [1] int: name, info (kind 1), size 4, encoding (signed, 32 bits).
        put(&[at(b"int\0"), 1 << 24, 4, 1 << 24 | 32]);
        // [2] char[16]: an array of [1] (close enough for offsets).
        put(&[0, 3 << 24, 0, 1, 1, 16]);
        // [3] struct task_struct, two members.
        put(&[at(b"task_struct\0"), 4 << 24 | 2, 20]);
        put(&[at(b"pid\0"), 1, 0]);
        put(&[at(b"comm\0"), 2, 32]);
        let mut data = Vec::new();
        data.extend_from_slice(&kernel_headers::btf::BTF_MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(&strings);
        data
    }

    fn scan(data: &[u8], types_len: usize, strings_len: usize, member: &str) -> Scan {
        let s = Sections::of(data).unwrap();
        let types = &data[s.types.clone()];
        let strings = &data[s.strings.clone()];
        member_offset(
            Prefix {
                bytes: &types[..types_len.min(types.len())],
                whole: types_len >= types.len(),
            },
            Prefix {
                bytes: &strings[..strings_len.min(strings.len())],
                whole: strings_len >= strings.len(),
            },
            "task_struct",
            member,
        )
        .unwrap()
    }

    #[test]
    fn finds_a_member_and_asks_for_more_of_a_cut_section() {
        let data = sample();
        assert_eq!(
            scan(&data, 999, 999, "comm"),
            Scan::Found { bit_offset: 32 }
        );
        assert_eq!(scan(&data, 999, 999, "pid"), Scan::Found { bit_offset: 0 });
        assert_eq!(scan(&data, 999, 999, "mm"), Scan::Absent);
        assert_eq!(scan(&data, 999, 10, "comm"), Scan::MoreStrings);
        assert_eq!(scan(&data, 40, 999, "comm"), Scan::MoreTypes);
        assert_eq!(scan(&data, 16, 999, "comm"), Scan::MoreTypes);
        // The whole BTF parses the same.
        let btf = crate::Btf::parse(&data).unwrap();
        assert_eq!(btf.find_struct("task_struct").unwrap(), Some(3));
    }

    #[test]
    fn every_prefix_of_bad_input_ends_without_a_panic() {
        let data = sample();
        for cut in 0..data.len() {
            let mut bad = data.clone();
            bad[cut] ^= 0xff;
            if let Ok(s) = Sections::of(&bad) {
                let types = bad.get(s.types.clone()).unwrap_or(&[]);
                let strings = bad.get(s.strings.clone()).unwrap_or(&[]);
                let _ = member_offset(
                    Prefix {
                        bytes: types,
                        whole: true,
                    },
                    Prefix {
                        bytes: strings,
                        whole: true,
                    },
                    "task_struct",
                    "comm",
                );
            }
        }
    }
}
