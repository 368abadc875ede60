//! Where struct members come from, as every consumer asks: trace programs
//! (lang), CO-RE relocations (bpf-object) and `offsets gen` name a member
//! by a [`FieldPath`] and ask a [`FieldSource`] (an offsets profile, a
//! kernel's BTF, a script's own types) for its [`Field`].

use std::fmt;

use crate::model::{Field, Profile};

/// `struct.member[.member...]`: the key of `Profile::fields`. Anonymous
/// structs and unions on the way are left out, as the profile leaves them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath {
    pub strukt: String,
    pub members: Vec<String>,
}

impl FieldPath {
    /// `struct.member[.member]` of C identifiers; `None` for anything else.
    pub fn parse(text: &str) -> Option<FieldPath> {
        let mut parts = text.split('.');
        let strukt = parts.next()?;
        let members: Vec<String> = parts.map(str::to_string).collect();
        let ident = |s: &str| {
            !s.is_empty()
                && !s.starts_with(|c: char| c.is_ascii_digit())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !ident(strukt) || members.is_empty() || !members.iter().all(|m| ident(m)) {
            return None;
        }
        Some(FieldPath {
            strukt: strukt.to_string(),
            members,
        })
    }

    /// The profile key, `struct.member[.member]`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.strukt, self.member_path())
    }

    /// `member[.member]`, as C's `offsetof` and [`FieldSource`] take it.
    pub fn member_path(&self) -> String {
        self.members.join(".")
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A source's answer about one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Field),
    /// The source knows the struct, and it has no such member.
    Absent,
    /// The source cannot say (a profile without the key, a struct it does
    /// not have, a bit-field).
    Unknown,
}

/// Struct members by struct and member name. `member` may be a dotted path
/// (`se.vruntime`) when the source knows nested members but not the type of
/// the enclosing one.
pub trait FieldSource {
    fn lookup(&self, strukt: &str, member: &str) -> Lookup;

    /// The member when the source has it.
    fn field(&self, strukt: &str, member: &str) -> Option<Field> {
        match self.lookup(strukt, member) {
            Lookup::Found(field) => Some(field),
            Lookup::Absent | Lookup::Unknown => None,
        }
    }

    /// Whether the member is a signed integer, when the source can say
    /// through typedefs (BTF); CO-RE's `signed` relocation asks.
    fn is_signed(&self, _strukt: &str, _member: &str) -> Option<bool> {
        None
    }

    /// `(size, alignment)` of `struct NAME`, for a script's definitions
    /// that embed it; `None` when the source does not know (a profile).
    fn struct_layout(&self, _strukt: &str) -> Option<(u32, u32)> {
        None
    }

    /// The value of the enumerator `name` (`TCP_CLOSE`), when known.
    fn enum_value(&self, _name: &str) -> Option<i64> {
        None
    }

    /// Whether this is the running kernel's BTF: bpftrace then defines
    /// `BPFTRACE_HAVE_BTF` for the program's `#ifdef`s.
    fn has_kernel_btf(&self) -> bool {
        false
    }
}

/// A profile knows the members it lists, under `struct.member[.member]`
/// keys, with their types from format 2 on, and the struct sizes and
/// enumerators `offsets gen --fields-from` recorded.
impl FieldSource for Profile {
    fn lookup(&self, strukt: &str, member: &str) -> Lookup {
        match self.fields.get(&format!("{strukt}.{member}")) {
            Some(field) => Lookup::Found(field.clone()),
            None => Lookup::Unknown,
        }
    }

    fn struct_layout(&self, strukt: &str) -> Option<(u32, u32)> {
        self.structs.get(strukt).map(|s| (s.size, s.align))
    }

    fn enum_value(&self, name: &str) -> Option<i64> {
        self.enums.get(name).copied()
    }
}

/// BTF knows every struct's members, with their types (the walk is the
/// `btf` crate's).
impl FieldSource for btf::Btf {
    fn lookup(&self, strukt: &str, member: &str) -> Lookup {
        let members: Vec<&str> = member.split('.').collect();
        match self.find_field(strukt, &members) {
            Ok(at) => Lookup::Found(Field {
                offset: at.offset,
                size: at.size,
                c_type: Some(at.c_type),
            }),
            Err(btf::PathError::NoMember { .. }) => Lookup::Absent,
            // No such struct, a bit-field, a broken blob: no answer.
            Err(_) => Lookup::Unknown,
        }
    }

    fn is_signed(&self, strukt: &str, member: &str) -> Option<bool> {
        let members: Vec<&str> = member.split('.').collect();
        let at = self.find_field(strukt, &members).ok()?;
        btf::Btf::is_signed(self, at.ty).ok()
    }

    fn struct_layout(&self, strukt: &str) -> Option<(u32, u32)> {
        let id = self.find_struct(strukt).ok()??;
        Some((self.size_of(id).ok()?, self.align_of(id).ok()?))
    }

    fn enum_value(&self, name: &str) -> Option<i64> {
        btf::Btf::enum_value(self, name).ok()?
    }
}

/// A fixed list of `("struct.member", field)`: tests, and sources built by
/// hand.
impl FieldSource for Vec<(&str, Field)> {
    fn lookup(&self, strukt: &str, member: &str) -> Lookup {
        let key = format!("{strukt}.{member}");
        match self.iter().find(|(k, _)| *k == key) {
            Some((_, field)) => Lookup::Found(field.clone()),
            None => Lookup::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_c_identifiers_with_at_least_one_member() {
        let p = FieldPath::parse("task_struct.se.vruntime").unwrap();
        assert_eq!(
            (p.key(), p.member_path()),
            ("task_struct.se.vruntime".into(), "se.vruntime".into())
        );
        for bad in [
            "filename",
            "filename.",
            ".name",
            "1x.name",
            "filename.na-me",
            "",
        ] {
            assert_eq!(FieldPath::parse(bad), None, "{bad}");
        }
    }
}
