//! Profiles from raw BTF (`/sys/kernel/btf/vmlinux`, a vmlinux `.BTF`): the
//! reading is the shared `btf` crate's; this answers a profile's questions
//! (a field's offset and size, `do_unlinkat`'s signature) from it.

use crate::error::GenError;
use crate::model::{FieldPath, FnSig, ParamType};
use btf::Kind;
use profile::Field;

/// A parsed BTF blob.
#[derive(Debug)]
pub struct Btf {
    inner: btf::Btf,
}

fn err(msg: impl Into<String>) -> GenError {
    GenError::Btf(msg.into())
}

impl From<btf::BtfError> for GenError {
    fn from(e: btf::BtfError) -> GenError {
        GenError::Btf(e.0)
    }
}

impl Btf {
    /// The same BTF read for an architecture with `bytes`-byte pointers.
    pub fn with_pointer_size(self, bytes: u32) -> Btf {
        Btf {
            inner: self.inner.with_pointer_size(bytes),
        }
    }

    pub fn parse(data: &[u8]) -> Result<Btf, GenError> {
        Ok(Btf {
            inner: btf::Btf::parse(data)?,
        })
    }

    /// The member `path` names: its bit offset from the struct's start and
    /// its type id. A bit-field on the way is refused: nothing reads one.
    fn member(&self, path: &FieldPath) -> Result<(u64, u32), GenError> {
        let btf = &self.inner;
        let mut ty = btf
            .find_struct(&path.strukt)?
            .ok_or_else(|| GenError::NoStruct(path.strukt.clone()))?;
        let mut bits: u64 = 0;
        let mut where_ = path.strukt.clone();
        for member in &path.members {
            let (off, m) = btf
                .find_member(ty, member)?
                .ok_or_else(|| GenError::NoMember {
                    strukt: where_.clone(),
                    member: member.clone(),
                })?;
            where_ = format!("{where_}.{member}");
            if m.bitfield_size != 0 {
                return Err(GenError::BitField(where_));
            }
            bits = bits.saturating_add(u64::from(off));
            ty = m.ty;
        }
        Ok((bits, ty))
    }

    pub fn field(&self, path: &FieldPath) -> Result<Field, GenError> {
        let (bits, ty) = self.member(path)?;
        let size = self.inner.size_of(ty)?;
        if !bits.is_multiple_of(8) {
            return Err(GenError::BitField(path.key()));
        }
        if size == 0 {
            return Err(GenError::Unsized(path.key()));
        }
        let offset = u32::try_from(bits / 8).map_err(|_| err("offset overflows"))?;
        // The C type as text (`struct mm_struct *`, `int`, `char[16]`): for
        // `nobtf trace`, which follows members by their type.
        let c_type = self.inner.type_text(ty)?;
        Ok(Field {
            offset,
            size,
            c_type: Some(c_type),
        })
    }

    fn param_type(&self, id: u32) -> Result<ParamType, GenError> {
        let btf = &self.inner;
        let id = btf.strip(id)?;
        let t = btf.get(id)?;
        if let Kind::Ptr { ty } = t.kind {
            let target = btf.strip(ty)?;
            let tt = btf.get(target)?;
            let name = btf.name(tt.name_off)?;
            return Ok(match tt.kind {
                Kind::Struct { .. } | Kind::Fwd => ParamType::StructPtr(name.into()),
                Kind::Int { size: 1, .. } if name.contains("char") => ParamType::CharPtr,
                _ => ParamType::Other(format!("{name} *")),
            });
        }
        Ok(ParamType::Other(btf.name(t.name_off)?.into()))
    }

    /// `name`'s signature from its FUNC and FUNC_PROTO; `None` if absent.
    /// A FUNC in BTF is emitted for a function present in the symbol table,
    /// so finding one means a kprobe can attach.
    pub fn function(&self, name: &str) -> Result<Option<FnSig>, GenError> {
        let btf = &self.inner;
        for t in btf.types() {
            let Kind::Func { proto, .. } = t.kind else {
                continue;
            };
            if btf.name(t.name_off)? != name {
                continue;
            }
            let Kind::FuncProto { params, .. } = &btf.get(proto)?.kind else {
                return Err(err(format!("FUNC `{name}` does not point at a FUNC_PROTO")));
            };
            let params = params
                .iter()
                .map(|p| Ok((btf.name(p.name_off)?.to_string(), self.param_type(p.ty)?)))
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
        Btf::field(self, &path).ok()
    }

    fn struct_layout(&self, strukt: &str) -> Option<(u32, u32)> {
        let id = self.inner.find_struct(strukt).ok()??;
        Some((self.inner.size_of(id).ok()?, self.inner.align_of(id).ok()?))
    }

    fn enum_value(&self, name: &str) -> Option<i64> {
        self.inner.enum_value(name).ok()?
    }
}
