//! A small reader for raw BTF (`/sys/kernel/btf/vmlinux`, a vmlinux `.BTF`).
//!
//! Written here rather than taken from a crate: the format is a header, a
//! type table of 19 fixed-layout kinds and a string table; nobtf needs struct
//! members, sizes and one function prototype, under its own error rules
//! (never panic on any input), and the crates that exist drag in loading
//! machinery or libbpf bindings nobtf must not have.

use crate::error::GenError;
use crate::model::{FieldPath, FnSig, ParamType};
use kernel_headers::btf::BTF_MAGIC as MAGIC;
use profile::Field;

const HEADER_LEN: usize = 24;
/// Pointers are 8 bytes on the only arch profiles support; BTF does not say.
/// Pointer size unless told otherwise (`with_pointer_size`): BTF has none.
const POINTER_SIZE: u32 = 8;
/// Qualifier/typedef chains are short; a loop in bad input must still end.
const MAX_CHAIN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Void,
    Int {
        size: u32,
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

fn err(msg: impl Into<String>) -> GenError {
    GenError::Btf(msg.into())
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u32(&mut self) -> Result<u32, GenError> {
        let end = self.pos.checked_add(4).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| err(format!("type table truncated at byte {}", self.pos)))?;
        let v = u32::from_le_bytes(self.data[self.pos..end].try_into().expect("4 bytes"));
        self.pos = end;
        Ok(v)
    }
}

fn le_u32(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"))
}

impl Btf {
    /// The same BTF read for an architecture with `bytes`-byte pointers.
    pub fn with_pointer_size(self, bytes: u32) -> Btf {
        Btf {
            pointer_size: bytes,
            ..self
        }
    }

    pub fn parse(data: &[u8]) -> Result<Btf, GenError> {
        if data.len() < HEADER_LEN {
            return Err(err("shorter than the BTF header"));
        }
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic == MAGIC.swap_bytes() {
            return Err(err("big-endian BTF is not supported (x86_64 only)"));
        }
        if magic != MAGIC {
            return Err(err(format!(
                "bad magic {magic:#06x} (want {MAGIC:#06x}); not raw BTF"
            )));
        }
        if data[2] != 1 {
            return Err(err(format!("BTF version {} is not 1", data[2])));
        }
        let hdr_len = le_u32(data, 4) as usize;
        if hdr_len < HEADER_LEN || hdr_len > data.len() {
            return Err(err(format!("header length {hdr_len} is impossible")));
        }
        let section = |off_at: usize, len_at: usize, what: &str| {
            let off = le_u32(data, off_at) as usize;
            let len = le_u32(data, len_at) as usize;
            hdr_len
                .checked_add(off)
                .and_then(|start| Some((start, start.checked_add(len)?)))
                .filter(|&(_, end)| end <= data.len())
                .map(|(start, end)| &data[start..end])
                .ok_or_else(|| err(format!("{what} section ({off}+{len}) lies beyond the data")))
        };
        let type_data = section(8, 12, "type")?;
        let strings = section(16, 20, "string")?.to_vec();
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

    fn parse_type(c: &mut Cursor) -> Result<Type, GenError> {
        let at = c.pos;
        let name_off = c.u32()?;
        let info = c.u32()?;
        let size_or_type = c.u32()?;
        let vlen = (info & 0xffff) as usize;
        let kind_flag = info >> 31 == 1;
        let kind = match (info >> 24) & 0x1f {
            1 => {
                c.u32()?;
                Kind::Int { size: size_or_type }
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
                for _ in 0..vlen * 2 {
                    c.u32()?;
                }
                Kind::Enum { size: size_or_type }
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
                for _ in 0..vlen * 3 {
                    c.u32()?;
                }
                Kind::Enum { size: size_or_type }
            }
            k => {
                return Err(err(format!(
                    "unknown type kind {k} at type-table byte {at}"
                )));
            }
        };
        Ok(Type { name_off, kind })
    }

    pub fn types(&self) -> &[Type] {
        &self.types
    }

    pub fn name(&self, off: u32) -> Result<&str, GenError> {
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

    fn get(&self, id: u32) -> Result<&Type, GenError> {
        self.types.get(id as usize).ok_or_else(|| {
            err(format!(
                "type id {id} does not exist (split BTF needs its base)"
            ))
        })
    }

    /// Follow typedefs and qualifiers to the underlying type id.
    fn strip(&self, mut id: u32) -> Result<u32, GenError> {
        for _ in 0..MAX_CHAIN {
            match self.get(id)?.kind {
                Kind::Alias { ty, .. } => id = ty,
                _ => return Ok(id),
            }
        }
        Err(err(format!("type chain from id {id} does not end")))
    }

    fn size_of(&self, id: u32, depth: usize) -> Result<u32, GenError> {
        if depth > MAX_CHAIN {
            return Err(err("type nesting too deep"));
        }
        let id = self.strip(id)?;
        Ok(match &self.get(id)?.kind {
            Kind::Int { size }
            | Kind::Struct { size, .. }
            | Kind::Union { size, .. }
            | Kind::Enum { size }
            | Kind::Float { size } => *size,
            Kind::Ptr { .. } => self.pointer_size,
            Kind::Array { elem, nelems } => self
                .size_of(*elem, depth + 1)?
                .checked_mul(*nelems)
                .ok_or_else(|| err("array size overflows"))?,
            _ => 0,
        })
    }

    /// The first complete struct (not a forward declaration) named `name`.
    fn find_struct(&self, name: &str) -> Result<u32, GenError> {
        for (id, t) in self.types.iter().enumerate() {
            if matches!(t.kind, Kind::Struct { .. }) && self.name(t.name_off)? == name {
                return Ok(id as u32);
            }
        }
        Err(GenError::NoStruct(name.into()))
    }

    /// Find `member` in struct/union `id`, looking through anonymous
    /// struct/union members; returns (bit offset, member).
    fn find_member(
        &self,
        id: u32,
        member: &str,
        depth: usize,
    ) -> Result<Option<(u32, &Member)>, GenError> {
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
            if let Some((off, found)) = self.find_member(m.ty, member, depth + 1)? {
                return Ok(Some((m.bit_offset.saturating_add(off), found)));
            }
        }
        Ok(None)
    }

    pub fn field(&self, path: &FieldPath) -> Result<Field, GenError> {
        let mut ty = self.find_struct(&path.strukt)?;
        let mut bits: u64 = 0;
        let mut size = 0;
        let mut where_ = path.strukt.clone();
        for member in &path.members {
            let (off, m) = self
                .find_member(ty, member, 0)?
                .ok_or_else(|| GenError::NoMember {
                    strukt: where_.clone(),
                    member: member.clone(),
                })?;
            where_ = format!("{where_}.{member}");
            if m.bitfield_size != 0 {
                return Err(GenError::BitField(where_));
            }
            bits = bits.saturating_add(u64::from(off));
            size = self.size_of(m.ty, 0)?;
            ty = m.ty;
        }
        if !bits.is_multiple_of(8) {
            return Err(GenError::BitField(path.key()));
        }
        if size == 0 {
            return Err(GenError::Unsized(path.key()));
        }
        let offset = u32::try_from(bits / 8).map_err(|_| err("offset overflows"))?;
        Ok(Field { offset, size })
    }

    /// The C type of the member `path` names, as text (`struct mm_struct *`,
    /// `int`, `char[16]`, `const char *`): for `nobtf trace`, which follows
    /// members by their type.
    pub fn field_type(&self, path: &FieldPath) -> Result<String, GenError> {
        let mut ty = self.find_struct(&path.strukt)?;
        let mut where_ = path.strukt.clone();
        for member in &path.members {
            let (_, m) = self
                .find_member(ty, member, 0)?
                .ok_or_else(|| GenError::NoMember {
                    strukt: where_.clone(),
                    member: member.clone(),
                })?;
            where_ = format!("{where_}.{member}");
            ty = m.ty;
        }
        self.type_text(ty, 0)
    }

    fn type_text(&self, id: u32, depth: usize) -> Result<String, GenError> {
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
            // A typedef keeps its name (`pid_t`, `atomic_t`) unless it names
            // a pointer or an array, whose shape matters more.
            Kind::Alias { ty, qualifier } => {
                let inner = self.type_text(*ty, depth + 1)?;
                if *qualifier || inner.ends_with('*') || inner.ends_with(']') {
                    inner
                } else {
                    name.into()
                }
            }
            Kind::Ptr { ty } => format!("{} *", self.type_text(*ty, depth + 1)?),
            Kind::Array { elem, nelems } => {
                format!("{}[{nelems}]", self.type_text(*elem, depth + 1)?)
            }
            Kind::Func { .. } | Kind::FuncProto { .. } | Kind::Other => "void (*)()".into(),
        })
    }

    fn param_type(&self, id: u32) -> Result<ParamType, GenError> {
        let id = self.strip(id)?;
        let t = self.get(id)?;
        if let Kind::Ptr { ty } = t.kind {
            let target = self.strip(ty)?;
            let tt = self.get(target)?;
            let name = self.name(tt.name_off)?;
            return Ok(match tt.kind {
                Kind::Struct { .. } | Kind::Fwd => ParamType::StructPtr(name.into()),
                Kind::Int { size: 1 } if name.contains("char") => ParamType::CharPtr,
                _ => ParamType::Other(format!("{name} *")),
            });
        }
        Ok(ParamType::Other(self.name(t.name_off)?.into()))
    }

    /// `name`'s signature from its FUNC and FUNC_PROTO; `None` if absent.
    /// A FUNC in BTF is emitted for a function present in the symbol table,
    /// so finding one means a kprobe can attach.
    pub fn function(&self, name: &str) -> Result<Option<FnSig>, GenError> {
        for t in &self.types {
            let Kind::Func { proto, .. } = t.kind else {
                continue;
            };
            if self.name(t.name_off)? != name {
                continue;
            }
            let Kind::FuncProto { params, .. } = &self.get(proto)?.kind else {
                return Err(err(format!("FUNC `{name}` does not point at a FUNC_PROTO")));
            };
            let params = params
                .iter()
                .map(|p| Ok((self.name(p.name_off)?.to_string(), self.param_type(p.ty)?)))
                .collect::<Result<_, GenError>>()?;
            return Ok(Some(FnSig {
                params,
                symbol: true,
            }));
        }
        Ok(None)
    }
}

/// BTF knows offsets, sizes and types; `member` may be a dotted path.
impl lang::fields::FieldSource for Btf {
    fn field(&self, strukt: &str, member: &str) -> Option<lang::fields::FieldInfo> {
        let path = crate::model::FieldPath::parse(&format!("{strukt}.{member}")).ok()?;
        let field = Btf::field(self, &path).ok()?;
        Some(lang::fields::FieldInfo {
            offset: field.offset,
            size: field.size,
            c_type: self.field_type(&path).ok(),
        })
    }
}
