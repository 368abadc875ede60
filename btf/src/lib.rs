//! A small reader for raw BTF: a kernel's (`/sys/kernel/btf/vmlinux`, a
//! vmlinux `.BTF`) or a BPF object's own `.BTF`.
//!
//! Written here rather than taken from a crate: the format is a header, a
//! type table of 19 fixed-layout kinds and a string table; nobtf needs struct
//! members, sizes, integer signedness and function prototypes, under its own
//! error rules (never panic on any input), and the crates that exist drag in
//! loading machinery or libbpf bindings nobtf must not have. Shared by
//! `offsets` (profiles from a kernel's BTF) and `bpf-object` (CO-RE records
//! name types of the object's BTF).
#![forbid(unsafe_code)]

use kernel_headers::btf::BTF_MAGIC as MAGIC;

/// Bytes of the header every raw BTF starts with.
pub const HEADER_LEN: usize = 24;
/// Pointer size unless told otherwise ([`Btf::with_pointer_size`]): BTF
/// does not record it; 8 bytes on x86-64 and arm64.
const POINTER_SIZE: u32 = 8;
/// Qualifier/typedef chains are short; a loop in bad input must still end.
const MAX_CHAIN: usize = 64;
/// `BTF_INT_SIGNED` in an integer's encoding bits.
const INT_SIGNED: u32 = 1;

/// Bad BTF: the message says what is wrong where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BtfError(pub String);

/// Why a member path has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("no struct `{0}`")]
    NoStruct(String),
    #[error("`{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
    /// A bit-field on the way, or a member not on a byte boundary.
    #[error("`{0}` is a bit-field")]
    BitField(String),
    #[error("`{0}` has no size")]
    Unsized(String),
    #[error(transparent)]
    Btf(#[from] BtfError),
}

/// A struct member found by its path: where it is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldAt {
    pub offset: u32,
    pub size: u32,
    /// The member's type id, for what else a caller asks of it.
    pub ty: u32,
    /// Its C type as text (`struct mm_struct *`, `int`, `char[16]`).
    pub c_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Void,
    Int {
        size: u32,
        signed: bool,
    },
    Ptr {
        ty: u32,
    },
    Array {
        elem: u32,
        nelems: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Union {
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        size: u32,
        /// Enumerators: name offset and value.
        values: Vec<(u32, i64)>,
    },
    Fwd,
    /// typedef, volatile, const, restrict, type tag: all just refer on.
    Alias {
        ty: u32,
        qualifier: bool,
    },
    Func {
        proto: u32,
        linkage: u16,
    },
    FuncProto {
        ret: u32,
        params: Vec<Param>,
    },
    Float {
        size: u32,
    },
    /// var, datasec, decl tag: never sized or walked here.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name_off: u32,
    pub ty: u32,
    pub bit_offset: u32,
    pub bitfield_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name_off: u32,
    pub ty: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type {
    pub name_off: u32,
    pub kind: Kind,
}

/// A parsed BTF blob. Type id `n` is `types[n]`; id 0 is void.
#[derive(Debug)]
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    pointer_size: u32,
}

fn err(msg: impl Into<String>) -> BtfError {
    BtfError(msg.into())
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u32(&mut self) -> Result<u32, BtfError> {
        let end = self.pos.checked_add(4).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| err(format!("type table truncated at byte {}", self.pos)))?;
        let v = le_u32(self.data, self.pos);
        self.pos = end;
        Ok(v)
    }
}

/// Callers check `at + 4 <= data.len()` first.
fn le_u32(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Where a raw BTF's type and string sections lie (byte ranges of the
/// whole data), from its header alone: what [`Btf::parse`] reads, and what
/// [`partial`] reads a prefix of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sections {
    pub types: std::ops::Range<usize>,
    pub strings: std::ops::Range<usize>,
}

impl Sections {
    /// The sections `header` (the data's first bytes, at least
    /// [`HEADER_LEN`]) describes.
    pub fn of(header: &[u8]) -> Result<Sections, BtfError> {
        if header.len() < HEADER_LEN {
            return Err(err("shorter than the BTF header"));
        }
        let magic = u16::from_le_bytes([header[0], header[1]]);
        if magic == MAGIC.swap_bytes() {
            return Err(err("big-endian BTF is not supported (x86_64 only)"));
        }
        if magic != MAGIC {
            return Err(err(format!(
                "bad magic {magic:#06x} (want {MAGIC:#06x}); not raw BTF"
            )));
        }
        if header[2] != 1 {
            return Err(err(format!("BTF version {} is not 1", header[2])));
        }
        let hdr_len = le_u32(header, 4) as usize;
        if hdr_len < HEADER_LEN {
            return Err(err(format!("header length {hdr_len} is impossible")));
        }
        let section = |off_at: usize, len_at: usize, what: &str| {
            let off = le_u32(header, off_at) as usize;
            let len = le_u32(header, len_at) as usize;
            hdr_len
                .checked_add(off)
                .and_then(|start| Some(start..start.checked_add(len)?))
                .ok_or_else(|| err(format!("{what} section ({off}+{len}) overflows")))
        };
        Ok(Sections {
            types: section(8, 12, "type")?,
            strings: section(16, 20, "string")?,
        })
    }
}

impl Btf {
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let sections = Sections::of(data)?;
        let section = |range: std::ops::Range<usize>, what: &str| {
            data.get(range.clone()).ok_or_else(|| {
                err(format!(
                    "{what} section ({}..{}) lies beyond the data",
                    range.start, range.end
                ))
            })
        };
        let type_data = section(sections.types, "type")?;
        let strings = section(sections.strings, "string")?.to_vec();
        let mut types = vec![Type {
            name_off: 0,
            kind: Kind::Void,
        }];
        let mut c = Cursor {
            data: type_data,
            pos: 0,
        };
        while c.pos < type_data.len() {
            types.push(Self::parse_type(&mut c)?);
        }
        Ok(Btf {
            types,
            strings,
            pointer_size: POINTER_SIZE,
        })
    }

    fn parse_type(c: &mut Cursor) -> Result<Type, BtfError> {
        let at = c.pos;
        let name_off = c.u32()?;
        let info = c.u32()?;
        let size_or_type = c.u32()?;
        let vlen = (info & 0xffff) as usize;
        let kind_flag = info >> 31 == 1;
        let kind = match (info >> 24) & 0x1f {
            1 => {
                let encoding = (c.u32()? >> 24) & 0x0f;
                Kind::Int {
                    size: size_or_type,
                    signed: encoding & INT_SIGNED != 0,
                }
            }
            2 => Kind::Ptr { ty: size_or_type },
            3 => {
                let elem = c.u32()?;
                let _index = c.u32()?;
                let nelems = c.u32()?;
                Kind::Array { elem, nelems }
            }
            k @ (4 | 5) => {
                let mut members = Vec::with_capacity(vlen.min(1024));
                for _ in 0..vlen {
                    let name_off = c.u32()?;
                    let ty = c.u32()?;
                    let offset = c.u32()?;
                    let (bit_offset, bitfield_size) = if kind_flag {
                        (offset & 0x00ff_ffff, offset >> 24)
                    } else {
                        (offset, 0)
                    };
                    members.push(Member {
                        name_off,
                        ty,
                        bit_offset,
                        bitfield_size,
                    });
                }
                if k == 4 {
                    Kind::Struct {
                        size: size_or_type,
                        members,
                    }
                } else {
                    Kind::Union {
                        size: size_or_type,
                        members,
                    }
                }
            }
            6 => {
                let mut values = Vec::with_capacity(vlen.min(1024));
                for _ in 0..vlen {
                    let name_off = c.u32()?;
                    let raw = c.u32()?;
                    // The kind flag marks a signed enum.
                    let value = if kind_flag {
                        i64::from(raw as i32)
                    } else {
                        i64::from(raw)
                    };
                    values.push((name_off, value));
                }
                Kind::Enum {
                    size: size_or_type,
                    values,
                }
            }
            7 => Kind::Fwd,
            8 | 18 => Kind::Alias {
                ty: size_or_type,
                qualifier: false,
            },
            9..=11 => Kind::Alias {
                ty: size_or_type,
                qualifier: true,
            },
            12 => Kind::Func {
                proto: size_or_type,
                linkage: vlen as u16,
            },
            13 => {
                let mut params = Vec::with_capacity(vlen.min(64));
                for _ in 0..vlen {
                    let name_off = c.u32()?;
                    let ty = c.u32()?;
                    params.push(Param { name_off, ty });
                }
                Kind::FuncProto {
                    ret: size_or_type,
                    params,
                }
            }
            14 | 17 => {
                c.u32()?;
                Kind::Other
            }
            15 => {
                for _ in 0..vlen * 3 {
                    c.u32()?;
                }
                Kind::Other
            }
            16 => Kind::Float { size: size_or_type },
            19 => {
                let mut values = Vec::with_capacity(vlen.min(1024));
                for _ in 0..vlen {
                    let name_off = c.u32()?;
                    let low = u64::from(c.u32()?);
                    let high = u64::from(c.u32()?);
                    values.push((name_off, (high << 32 | low) as i64));
                }
                Kind::Enum {
                    size: size_or_type,
                    values,
                }
            }
            k => {
                return Err(err(format!(
                    "unknown type kind {k} at type-table byte {at}"
                )));
            }
        };
        Ok(Type { name_off, kind })
    }

    /// The same BTF read for an architecture with `bytes`-byte pointers
    /// (32-bit ARM: 4).
    pub fn with_pointer_size(self, bytes: u32) -> Btf {
        Btf {
            pointer_size: bytes,
            ..self
        }
    }

    pub fn types(&self) -> &[Type] {
        &self.types
    }

    pub fn name(&self, off: u32) -> Result<&str, BtfError> {
        let start = off as usize;
        let rest = self
            .strings
            .get(start..)
            .ok_or_else(|| err(format!("string offset {off} beyond the string table")))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| err(format!("string at {off} is not NUL-terminated")))?;
        std::str::from_utf8(&rest[..end]).map_err(|_| err(format!("string at {off} is not UTF-8")))
    }

    pub fn get(&self, id: u32) -> Result<&Type, BtfError> {
        self.types.get(id as usize).ok_or_else(|| {
            err(format!(
                "type id {id} does not exist (split BTF needs its base)"
            ))
        })
    }

    /// Follow typedefs and qualifiers to the underlying type id.
    pub fn strip(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_CHAIN {
            match self.get(id)?.kind {
                Kind::Alias { ty, .. } => id = ty,
                _ => return Ok(id),
            }
        }
        Err(err(format!("type chain from id {id} does not end")))
    }

    /// Size in bytes of type `id`; 0 for what has none (void, functions,
    /// forward declarations).
    pub fn size_of(&self, id: u32) -> Result<u32, BtfError> {
        self.size_at(id, 0)
    }

    fn size_at(&self, id: u32, depth: usize) -> Result<u32, BtfError> {
        if depth > MAX_CHAIN {
            return Err(err("type nesting too deep"));
        }
        let id = self.strip(id)?;
        Ok(match &self.get(id)?.kind {
            Kind::Int { size, .. }
            | Kind::Struct { size, .. }
            | Kind::Union { size, .. }
            | Kind::Enum { size, .. }
            | Kind::Float { size } => *size,
            Kind::Ptr { .. } => self.pointer_size,
            Kind::Array { elem, nelems } => self
                .size_at(*elem, depth + 1)?
                .checked_mul(*nelems)
                .ok_or_else(|| err("array size overflows"))?,
            _ => 0,
        })
    }

    /// Type `id` as C text (`struct mm_struct *`, `int`, `char[16]`): a
    /// typedef keeps its name (`pid_t`, `atomic_t`) unless it names a pointer
    /// or an array, whose shape matters more to a reader of the member.
    pub fn type_text(&self, id: u32) -> Result<String, BtfError> {
        self.type_text_at(id, 0)
    }

    fn type_text_at(&self, id: u32, depth: usize) -> Result<String, BtfError> {
        if depth > MAX_CHAIN {
            return Err(err("type nesting too deep"));
        }
        let t = self.get(id)?;
        let name = self.name(t.name_off)?;
        Ok(match &t.kind {
            Kind::Void => "void".into(),
            Kind::Int { .. } | Kind::Float { .. } => name.into(),
            Kind::Enum { .. } => format!("enum {name}"),
            Kind::Struct { .. } | Kind::Fwd => format!("struct {name}"),
            Kind::Union { .. } => format!("union {name}"),
            Kind::Alias { ty, qualifier } => {
                let inner = self.type_text_at(*ty, depth + 1)?;
                if *qualifier || inner.ends_with('*') || inner.ends_with(']') {
                    inner
                } else {
                    name.into()
                }
            }
            Kind::Ptr { ty } => format!("{} *", self.type_text_at(*ty, depth + 1)?),
            Kind::Array { elem, nelems } => {
                format!("{}[{nelems}]", self.type_text_at(*elem, depth + 1)?)
            }
            Kind::Func { .. } | Kind::FuncProto { .. } | Kind::Other => "void (*)()".into(),
        })
    }

    /// Alignment in bytes of type `id`, as the C ABI placed it: a struct's
    /// widest member's, 1 for one whose members sit off their alignment
    /// (packed).
    pub fn align_of(&self, id: u32) -> Result<u32, BtfError> {
        self.align_at(id, 0)
    }

    fn align_at(&self, id: u32, depth: usize) -> Result<u32, BtfError> {
        if depth > MAX_CHAIN {
            return Err(err("type nesting too deep"));
        }
        let id = self.strip(id)?;
        Ok(match &self.get(id)?.kind {
            Kind::Int { size, .. } | Kind::Enum { size, .. } | Kind::Float { size } => {
                (*size).clamp(1, 8)
            }
            Kind::Ptr { .. } => self.pointer_size,
            Kind::Array { elem, .. } => self.align_at(*elem, depth + 1)?,
            Kind::Struct { members, .. } | Kind::Union { members, .. } => {
                let mut align = 1;
                for m in members {
                    let a = self.align_at(m.ty, depth + 1)?;
                    if m.bitfield_size == 0 && m.bit_offset % (a * 8) != 0 {
                        return Ok(1);
                    }
                    align = align.max(a);
                }
                align
            }
            _ => 1,
        })
    }

    /// The value of the enumerator `name`, from the first enum that has it.
    pub fn enum_value(&self, name: &str) -> Result<Option<i64>, BtfError> {
        for t in &self.types {
            if let Kind::Enum { values, .. } = &t.kind {
                for &(name_off, value) in values {
                    if self.name(name_off)? == name {
                        return Ok(Some(value));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Whether type `id` (through typedefs and qualifiers) is a signed integer.
    pub fn is_signed(&self, id: u32) -> Result<bool, BtfError> {
        Ok(matches!(
            self.get(self.strip(id)?)?.kind,
            Kind::Int { signed: true, .. }
        ))
    }

    /// The first complete struct (not a forward declaration) named `name`.
    pub fn find_struct(&self, name: &str) -> Result<Option<u32>, BtfError> {
        for (id, t) in self.types.iter().enumerate() {
            if matches!(t.kind, Kind::Struct { .. }) && self.name(t.name_off)? == name {
                return Ok(Some(id as u32));
            }
        }
        Ok(None)
    }

    /// The member `members` names inside struct `strukt` (`["f_path",
    /// "dentry"]`), through embedded structs and anonymous members: the one
    /// member walk that `offsets gen`, CO-RE and `nobtf trace` share.
    /// Bit-fields are refused: nothing reads one.
    pub fn find_field(
        &self,
        strukt: &str,
        members: &[impl AsRef<str>],
    ) -> Result<FieldAt, PathError> {
        let mut ty = self
            .find_struct(strukt)?
            .ok_or_else(|| PathError::NoStruct(strukt.to_string()))?;
        let mut bits: u64 = 0;
        let mut path = strukt.to_string();
        for member in members {
            let member = member.as_ref();
            let (off, m) = self
                .find_member(ty, member)?
                .ok_or_else(|| PathError::NoMember {
                    strukt: path.clone(),
                    member: member.to_string(),
                })?;
            path = format!("{path}.{member}");
            if m.bitfield_size != 0 {
                return Err(PathError::BitField(path));
            }
            bits = bits.saturating_add(u64::from(off));
            ty = m.ty;
        }
        let offset = match u32::try_from(bits / 8) {
            Ok(offset) if bits.is_multiple_of(8) => offset,
            _ => return Err(PathError::BitField(path)),
        };
        let size = self.size_of(ty)?;
        if size == 0 {
            return Err(PathError::Unsized(path));
        }
        Ok(FieldAt {
            offset,
            size,
            ty,
            c_type: self.type_text(ty)?,
        })
    }

    /// Find `member` in struct/union `id`, looking through anonymous
    /// struct/union members; returns (bit offset, member).
    pub fn find_member(&self, id: u32, member: &str) -> Result<Option<(u32, &Member)>, BtfError> {
        self.find_member_at(id, member, 0)
    }

    fn find_member_at(
        &self,
        id: u32,
        member: &str,
        depth: usize,
    ) -> Result<Option<(u32, &Member)>, BtfError> {
        if depth > MAX_CHAIN {
            return Err(err("anonymous member nesting too deep"));
        }
        let members = match &self.get(self.strip(id)?)?.kind {
            Kind::Struct { members, .. } | Kind::Union { members, .. } => members,
            _ => return Ok(None),
        };
        for m in members {
            if m.name_off != 0 && self.name(m.name_off)? == member {
                return Ok(Some((m.bit_offset, m)));
            }
        }
        for m in members.iter().filter(|m| m.name_off == 0) {
            if let Some((off, found)) = self.find_member_at(m.ty, member, depth + 1)? {
                return Ok(Some((m.bit_offset.saturating_add(off), found)));
            }
        }
        Ok(None)
    }
}

pub mod partial;

#[cfg(test)]
mod tests;
