//! Where struct members come from: a [`FieldSource`] (an offsets profile
//! or a kernel's BTF here; the script's own types in `ctypes`), and the C
//! types the checker understands.

/// One struct member, as a profile or BTF knows it: the profile's own
/// field model. Without a `c_type` (a format-1 profile) a member of 1, 2, 4
/// or 8 bytes reads as an unsigned integer; a pointer-sized one can be
/// followed after an explicit cast: `((struct mm_struct *)$t->mm)->owner`.
pub use profile::Field as FieldInfo;

/// Struct members by struct and member name. `member` may be a dotted path
/// (`se.vruntime`) when the source knows nested members but not the type of
/// the enclosing one.
pub trait FieldSource {
    fn field(&self, strukt: &str, member: &str) -> Option<FieldInfo>;

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

/// A profile knows members under `struct.member[.member]` keys, with their
/// types from format 2 on.
impl FieldSource for profile::Profile {
    fn field(&self, strukt: &str, member: &str) -> Option<FieldInfo> {
        profile::Profile::field(self, &format!("{strukt}.{member}")).ok()
    }
}

/// BTF knows every struct's members, with their types (the walk is the
/// `btf` crate's, shared with `offsets gen` and CO-RE).
impl FieldSource for btf::Btf {
    fn field(&self, strukt: &str, member: &str) -> Option<FieldInfo> {
        let members: Vec<&str> = member.split('.').collect();
        let at = self.find_field(strukt, &members).ok()?;
        Some(FieldInfo {
            offset: at.offset,
            size: at.size,
            c_type: Some(at.c_type),
        })
    }

    fn struct_layout(&self, strukt: &str) -> Option<(u32, u32)> {
        let id = self.find_struct(strukt).ok()??;
        Some((self.size_of(id).ok()?, self.align_of(id).ok()?))
    }

    fn enum_value(&self, name: &str) -> Option<i64> {
        btf::Btf::enum_value(self, name).ok()?
    }
}

/// A fixed list of `("struct.member", info)`: tests, and sources built by hand.
impl FieldSource for Vec<(&str, FieldInfo)> {
    fn field(&self, strukt: &str, member: &str) -> Option<FieldInfo> {
        let key = format!("{strukt}.{member}");
        self.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, info)| info.clone())
    }
}

/// A C type, as far as the checker cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CType {
    Int {
        bytes: u8,
        signed: bool,
    },
    /// A pointer; `user` when declared `__user`.
    Ptr {
        to: Box<CType>,
        user: bool,
    },
    Struct(String),
    /// `char[N]`, and `__data_loc char[]` in tracepoints (N = 0).
    CharArray(u32),
    /// Anything else (`void`, function pointers, unknown typedefs).
    Other,
}

impl CType {
    /// Parse a declaration's type, given the member's size for typedefs
    /// (`pid_t`, `u64`) whose width the text alone does not say.
    pub fn parse(text: &str, size: u32) -> CType {
        let user = text.contains("__user");
        // `*` apart, so that `char *const *` (execve's argv) loses its
        // inner `const` too.
        let spaced = text.replace('*', " * ");
        let cleaned: Vec<&str> = spaced
            .split_whitespace()
            .filter(|w| !["const", "volatile", "__user", "__rcu", "__data_loc"].contains(w))
            .collect();
        let text = cleaned.join(" ");
        if let Some(open) = text.find('[') {
            let base = text[..open].trim();
            let len = text[open + 1..].trim_end_matches(']').trim();
            if base == "char" || base == "unsigned char" || base == "u8" {
                return CType::CharArray(len.parse().unwrap_or(0));
            }
            return CType::Other;
        }
        if let Some(base) = text.strip_suffix('*') {
            let to = CType::parse(base.trim(), 0);
            return CType::Ptr {
                to: Box::new(to),
                user,
            };
        }
        if let Some(name) = text.strip_prefix("struct ") {
            return CType::Struct(name.trim().to_string());
        }
        // The kernel's unsigned typedefs: `u16`, `__u32`, the byte-order
        // ones (`__be16` ports, `__le32`) and checksums.
        let unsigned = text.contains("unsigned")
            || ["u", "__u", "__be", "__le", "__sum", "__wsum"]
                .iter()
                .any(|p| text.starts_with(p))
            || text == "bool";
        let by_name = match text.replace("unsigned", "").replace("signed", "").trim() {
            "char" | "s8" | "u8" | "__u8" | "__s8" | "bool" | "_Bool" => Some(1),
            "short" | "short int" | "s16" | "u16" | "__u16" | "__s16" => Some(2),
            "int" | "" | "s32" | "u32" | "__u32" | "__s32" => Some(4),
            "long long" | "long long int" | "s64" | "u64" | "__u64" | "__s64" => Some(8),
            // `long` is as wide as the target's pointers: take the size given.
            _ => None,
        };
        let plain_name = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ');
        let bytes = by_name.or(match size {
            _ if !plain_name => None,
            1 | 2 | 4 | 8 => Some(size as u8),
            _ => None,
        });
        match bytes {
            Some(bytes) => CType::Int {
                bytes,
                signed: !unsigned && !text.ends_with("_t")
                    || ["pid_t", "ssize_t", "loff_t", "time64_t"].contains(&text.as_str()),
            },
            None => CType::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_the_checker_needs() {
        let int = |bytes, signed| CType::Int { bytes, signed };
        assert_eq!(CType::parse("int", 4), int(4, true));
        assert_eq!(CType::parse("unsigned int", 4), int(4, false));
        assert_eq!(CType::parse("u64", 8), int(8, false));
        assert_eq!(CType::parse("pid_t", 4), int(4, true));
        assert_eq!(CType::parse("__u16", 2), int(2, false));
        assert_eq!(CType::parse("__be16", 2), int(2, false));
        assert_eq!(CType::parse("__be32", 4), int(4, false));
        assert_eq!(CType::parse("__s32", 4), int(4, true));
        assert_eq!(CType::parse("long", 8), int(8, true));
        assert_eq!(CType::parse("long", 4), int(4, true));
        assert_eq!(CType::parse("char[16]", 16), CType::CharArray(16));
        assert_eq!(CType::parse("__data_loc char[]", 4), CType::CharArray(0));
        assert_eq!(
            CType::parse("struct sched_entity", 200),
            CType::Struct("sched_entity".into())
        );
        assert_eq!(
            CType::parse("struct mm_struct *", 8),
            CType::Ptr {
                to: Box::new(CType::Struct("mm_struct".into())),
                user: false
            }
        );
        assert_eq!(
            CType::parse("const char __user *", 8),
            CType::Ptr {
                to: Box::new(int(1, true)),
                user: true
            }
        );
        // execve's argv, as its tracepoint's format writes it.
        assert_eq!(
            CType::parse("const char *const *", 8),
            CType::Ptr {
                to: Box::new(CType::Ptr {
                    to: Box::new(int(1, true)),
                    user: false
                }),
                user: false
            }
        );
        assert_eq!(CType::parse("void (*)(int)", 8), CType::Other);
    }
}
