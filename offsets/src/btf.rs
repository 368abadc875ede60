//! Profiles from raw BTF (`/sys/kernel/btf/vmlinux`, a vmlinux `.BTF`): the
//! reading is the shared `btf` crate's; this answers a profile's questions
//! (a field's offset and size, `do_unlinkat`'s signature) from it.

use crate::error::GenError;
use crate::model::{FieldPath, FnSig, ParamType};
use btf::Kind;
use profile::{Field, StructLayout};

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

    pub fn field(&self, path: &FieldPath) -> Result<Field, GenError> {
        let at = self
            .inner
            .find_field(&path.strukt, &path.members)
            .map_err(|e| match e {
                btf::PathError::NoStruct(s) => GenError::NoStruct(s),
                btf::PathError::NoMember { strukt, member } => {
                    GenError::NoMember { strukt, member }
                }
                btf::PathError::BitField(p) => GenError::BitField(p),
                btf::PathError::Unsized(p) => GenError::Unsized(p),
                btf::PathError::Btf(e) => e.into(),
            })?;
        Ok(Field {
            offset: at.offset,
            size: at.size,
            c_type: Some(at.c_type),
        })
    }

    /// The size and alignment of the complete struct `name`, if any.
    pub fn struct_layout(&self, name: &str) -> Result<Option<StructLayout>, GenError> {
        let Some(id) = self.inner.find_struct(name)? else {
            return Ok(None);
        };
        Ok(Some(StructLayout {
            size: self.inner.size_of(id)?,
            align: self.inner.align_of(id)?,
        }))
    }

    /// The value of the enumerator `name`, if some enum has it.
    pub fn enum_value(&self, name: &str) -> Result<Option<i64>, GenError> {
        Ok(self.inner.enum_value(name)?)
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
