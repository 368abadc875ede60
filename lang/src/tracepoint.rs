//! Tracepoint formats: the text of tracefs `events/CAT/NAME/format`, parsed
//! (pure; the loader reads the file).

use crate::fields::CType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointFormat {
    pub id: Option<u32>,
    pub fields: Vec<TracepointField>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointField {
    pub name: String,
    pub c_type: CType,
    pub offset: u32,
    pub size: u32,
    /// `__data_loc`: the field holds `len << 16 | offset` of data in the record.
    pub data_loc: bool,
}

/// The formats of the running kernel's tracepoints, e.g. read from tracefs.
pub trait TracepointSource {
    fn format(&self, category: &str, name: &str) -> Option<TracepointFormat>;

    /// The kernel's probes matching the wildcard `pattern` (`kprobe:vfs_*`,
    /// `tracepoint:syscalls:sys_enter_*`), named the same way, for
    /// [`crate::expand`]; `None` when the kernel's lists cannot be read.
    fn matching(&self, _pattern: &str) -> Option<Vec<String>> {
        None
    }

    /// The file a uprobe's BINARY names: a path, or a library's name
    /// (`libc`) as the dynamic loader finds it; `None` when there is no
    /// such executable or shared object. Taken as written by default.
    fn uprobe_binary(&self, binary: &str) -> Option<String> {
        Some(binary.to_string())
    }
}

/// No tracepoints: for programs that use none, and for tests.
pub struct NoTracepoints;

impl TracepointSource for NoTracepoints {
    fn format(&self, _: &str, _: &str) -> Option<TracepointFormat> {
        None
    }
}

/// Parse a `format` file. Lines that are not fields are skipped; a field line
/// that cannot be read is an error naming it.
pub fn parse_format(text: &str) -> Result<TracepointFormat, String> {
    let mut format = TracepointFormat {
        id: None,
        fields: Vec::new(),
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(id) = line.strip_prefix("ID:") {
            format.id = id.trim().parse().ok();
            continue;
        }
        let Some(decl) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = decl.split(';').map(str::trim);
        let decl = parts.next().unwrap_or_default();
        let mut offset = None;
        let mut size = None;
        for part in parts {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        let (Some(offset), Some(size)) = (offset, size) else {
            return Err(format!(
                "tracepoint format line `{line}` has no offset or size"
            ));
        };
        // The name is the last word, before any `[N]`.
        let (ty, name) = match decl.find('[').filter(|_| decl.ends_with(']')) {
            Some(open) => {
                let before = &decl[..open];
                let split = before.rfind(' ').unwrap_or(0);
                (
                    format!("{}{}", &before[..split], &decl[open..]),
                    before[split..].trim(),
                )
            }
            None => {
                let split = decl.rfind([' ', '*']).map_or(0, |i| i + 1);
                (decl[..split].to_string(), decl[split..].trim())
            }
        };
        if name.is_empty() {
            return Err(format!("tracepoint format line `{line}` has no field name"));
        }
        format.fields.push(TracepointField {
            name: name.to_string(),
            c_type: CType::parse(&ty, size),
            offset,
            size,
            data_loc: ty.contains("__data_loc"),
        });
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const OPENAT: &str = "name: sys_enter_openat
ID: 614
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;
\tfield:__data_loc char[] name;\toffset:48;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:52;\tsize:16;\tsigned:1;

print fmt: \"dfd: 0x%08lx\", ((unsigned long)(REC->dfd))
";

    #[test]
    fn reads_fields_with_types() {
        let format = parse_format(OPENAT).unwrap();
        assert_eq!(format.id, Some(614));
        let field = |name: &str| format.fields.iter().find(|f| f.name == name).unwrap();
        assert_eq!(field("filename").offset, 24);
        assert!(matches!(field("filename").c_type, CType::Ptr { .. }));
        assert_eq!(field("comm").c_type, CType::CharArray(16));
        assert!(field("name").data_loc);
        assert_eq!(
            field("common_pid").c_type,
            CType::Int {
                bytes: 4,
                signed: true
            }
        );
        assert!(parse_format("field:int x;\tsize:4;").is_err());
    }
}
