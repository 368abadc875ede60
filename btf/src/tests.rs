use proptest::prelude::*;

use super::*;

/// Builds raw BTF from (name, info, size_or_type, extra words) rows.
struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            types: Vec::new(),
            strings: vec![0],
        }
    }

    fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let at = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        at
    }

    fn push(
        &mut self,
        name: &str,
        kind: u32,
        vlen: u32,
        kind_flag: bool,
        size_or_type: u32,
        extra: &[u32],
    ) {
        let name = self.string(name);
        let info = (kind << 24) | vlen | (u32::from(kind_flag) << 31);
        for word in [name, info, size_or_type].iter().chain(extra) {
            self.types.extend_from_slice(&word.to_le_bytes());
        }
    }

    fn int(&mut self, name: &str, size: u32, signed: bool) {
        let encoding = if signed { 1 << 24 } else { 0 };
        self.push(name, 1, 0, false, size, &[encoding | (size * 8)]);
    }

    /// Members as (name, type, bit offset).
    fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) {
        let mut extra = Vec::new();
        for &(m, ty, off) in members {
            extra.extend([self.string(m), ty, off]);
        }
        self.push(name, 4, members.len() as u32, false, size, &extra);
    }

    fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        let words = [
            24,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ];
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// 1 int, 2 unsigned int, 3 int *, 4 anonymous union { int a; }, 5 struct s,
/// 6 typedef s_t, 7 const s_t.
fn sample() -> Vec<u8> {
    let mut u = Builder::new();
    u.int("int", 4, true);
    u.int("unsigned int", 4, false);
    u.push("", 2, 0, false, 1, &[]);
    let a = u.string("a");
    u.push("", 5, 1, false, 4, &[a, 1, 0]);
    u.strukt(
        "s",
        24,
        &[
            ("name", 3, 0),
            ("count", 2, 64),
            ("", 4, 96),
            ("last", 1, 128),
        ],
    );
    u.push("s_t", 8, 0, false, 5, &[]);
    u.push("", 10, 0, false, 6, &[]);
    u.build()
}

#[test]
fn reads_members_sizes_and_signedness() {
    let btf = Btf::parse(&sample()).unwrap();
    assert_eq!(btf.types().len(), 8);
    let s = btf.find_struct("s").unwrap().unwrap();
    assert_eq!(s, 5);
    assert_eq!(btf.find_struct("t").unwrap(), None);
    assert_eq!(btf.size_of(7).unwrap(), 24, "through const and typedef");
    assert_eq!(btf.size_of(3).unwrap(), 8, "a pointer");
    let (bits, count) = btf.find_member(7, "count").unwrap().unwrap();
    assert_eq!((bits, count.ty), (64, 2));
    assert!(!btf.is_signed(count.ty).unwrap());
    let (bits, a) = btf.find_member(s, "a").unwrap().unwrap();
    assert_eq!(bits, 96, "found through the anonymous union");
    assert!(btf.is_signed(a.ty).unwrap());
    assert!(btf.find_member(s, "nope").unwrap().is_none());
    assert_eq!(btf.name(btf.get(s).unwrap().name_off).unwrap(), "s");
}

#[test]
fn bad_input_is_an_error() {
    assert_eq!(
        Btf::parse(&[0; 4]).unwrap_err().to_string(),
        "shorter than the BTF header"
    );
    let mut data = sample();
    data[0] ^= 0xff;
    assert!(Btf::parse(&data).unwrap_err().0.starts_with("bad magic"));
    let data = sample();
    let cut = &data[..data.len() - 10];
    assert!(
        Btf::parse(cut)
            .unwrap_err()
            .0
            .contains("lies beyond the data")
    );
    let btf = Btf::parse(&sample()).unwrap();
    assert!(btf.get(99).is_err());
    assert!(btf.name(9999).is_err());
}

proptest! {
    #[test]
    fn mutated_btf_never_panics(at in 0usize..400, byte in any::<u8>()) {
        let mut data = sample();
        let at = at % data.len();
        data[at] = byte;
        if let Ok(btf) = Btf::parse(&data) {
            for id in 0..btf.types().len() as u32 {
                let _ = btf.size_of(id);
                let _ = btf.find_member(id, "a");
                let _ = btf.is_signed(id);
            }
        }
    }
}

#[test]
fn enumerators_and_alignment() {
    let mut b = Builder::new();
    b.int("int", 4, true); // 1
    b.int("long", 8, true); // 2
    let (a, minus) = (b.string("TCP_CLOSE"), b.string("MINUS"));
    b.push("tcp_state", 6, 2, true, 4, &[a, 7, minus, (-1i32) as u32]); // 3
    let big = b.string("BIG");
    b.push("wide", 19, 1, false, 8, &[big, 1, 2]); // 4
    b.strukt("s", 16, &[("i", 1, 0), ("l", 2, 64)]); // 5
    b.strukt("packed", 12, &[("i", 1, 0), ("l", 2, 32)]); // 6
    let btf = Btf::parse(&b.build()).unwrap();
    assert_eq!(btf.enum_value("TCP_CLOSE").unwrap(), Some(7));
    assert_eq!(btf.enum_value("MINUS").unwrap(), Some(-1));
    assert_eq!(btf.enum_value("BIG").unwrap(), Some(2 << 32 | 1));
    assert_eq!(btf.enum_value("NOPE").unwrap(), None);
    assert_eq!(btf.size_of(4).unwrap(), 8);
    assert_eq!(btf.align_of(5).unwrap(), 8);
    assert_eq!(btf.align_of(6).unwrap(), 1);
    assert_eq!(btf.with_pointer_size(4).align_of(1).unwrap(), 4);
}
