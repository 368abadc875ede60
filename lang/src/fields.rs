//! Where struct members come from: a [`FieldSource`] (an offsets profile
//! or a kernel's BTF here; the script's own types in `ctypes`), and the C
//! types the checker understands.

/// One struct member, as a profile or BTF knows it: the profile's own
/// field model. Without a `c_type` (a format-1 profile) a member of 1, 2, 4
/// or 8 bytes reads as an unsigned integer; a pointer-sized one can be
/// followed after an explicit cast: `((struct mm_struct *)$t->mm)->owner`.
pub use profile::Field as FieldInfo;
pub use profile::{FieldPath, FieldSource, Lookup};

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
        let cleaned: Vec<&str> = text
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
        assert_eq!(CType::parse("void (*)(int)", 8), CType::Other);
    }
}
