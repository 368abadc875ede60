//! The dynamic loader's cache, `/etc/ld.so.cache` (glibc's format 1.1,
//! alone or after the old `ld.so-1.7.0` table): which file a library name
//! stands for on this system, as `uprobe:libc:...` finds it.

/// `glibc-ld.so.cache` and its version `1.1`.
const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// The old format's magic, which may come first.
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
/// Old format: the magic padded to 12 bytes and a count; 12-byte entries.
const OLD_HEADER: usize = 16;
const OLD_ENTRY: usize = 12;
/// New format: magic, version, counts, flags, extension offset, padding.
const HEADER: usize = 48;
/// flags, key (the name), value (the path), osversion, hwcap.
const ENTRY: usize = 24;

/// `FLAG_ELF_LIBC6` and the mask of that part of an entry's flags.
const TYPE_LIBC6: u32 = 0x0003;
const TYPE_MASK: u32 = 0x00ff;
const ABI_MASK: u32 = 0xff00;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LdCacheError {
    #[error("not a glibc ld.so.cache (format 1.1)")]
    Format,
    #[error("a damaged ld.so.cache: {0}")]
    Damaged(&'static str),
}

/// The ABI bits an entry of a library this machine can load carries:
/// `FLAG_X8664_LIB64`, `FLAG_AARCH64_LIB64`, and for 32-bit ARM hard- or
/// soft-float (`FLAG_ARM_LIBHF` or none).
fn abi_matches(arch: &str, flags: u32) -> bool {
    let abi = flags & ABI_MASK;
    match arch {
        "x86_64" => abi == 0x0300,
        "aarch64" => abi == 0x0a00,
        "arm" => abi == 0x0900 || abi == 0,
        "x86" => abi == 0,
        _ => false,
    }
}

/// The path of the first library of the cache whose name begins with
/// `lib<name>.so` (`c` finds `libc.so.6`) and that `arch` (Rust's name of
/// the architecture) can load, as the dynamic loader's lookup and bcc's
/// (bpftrace's) find it.
pub fn find_library(cache: &[u8], name: &str, arch: &str) -> Result<Option<String>, LdCacheError> {
    let start = if cache.starts_with(MAGIC) {
        0
    } else if cache.starts_with(OLD_MAGIC) {
        let old_count = u32_at(cache, OLD_MAGIC.len() + 1)? as usize;
        let end = old_count
            .checked_mul(OLD_ENTRY)
            .and_then(|n| n.checked_add(OLD_HEADER))
            .ok_or(LdCacheError::Damaged("old table too long"))?;
        let start = end.next_multiple_of(8);
        if !cache
            .get(start..)
            .is_some_and(|rest| rest.starts_with(MAGIC))
        {
            return Err(LdCacheError::Format);
        }
        start
    } else {
        return Err(LdCacheError::Format);
    };
    let table = &cache[start..];
    let count = u32_at(table, MAGIC.len())? as usize;
    let prefix = format!("lib{name}.so");
    for i in 0..count {
        let entry = HEADER + i * ENTRY;
        let flags = u32_at(table, entry)?;
        let key = string_at(table, u32_at(table, entry + 4)?)?;
        if flags & TYPE_MASK != TYPE_LIBC6 || !abi_matches(arch, flags) {
            continue;
        }
        if key.starts_with(prefix.as_bytes()) {
            let path = string_at(table, u32_at(table, entry + 8)?)?;
            return Ok(Some(String::from_utf8_lossy(path).into_owned()));
        }
    }
    Ok(None)
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, LdCacheError> {
    let bytes = data
        .get(at..at + 4)
        .ok_or(LdCacheError::Damaged("ends inside the table"))?;
    Ok(u32::from_ne_bytes(bytes.try_into().expect("four bytes")))
}

/// The NUL-terminated string at `offset` from the table's start.
fn string_at(data: &[u8], offset: u32) -> Result<&[u8], LdCacheError> {
    let rest = data
        .get(offset as usize..)
        .ok_or(LdCacheError::Damaged("a name past the end"))?;
    let len = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(LdCacheError::Damaged("a name without its NUL"))?;
    Ok(&rest[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache of `entries` (flags, name, path) in the new format, after an
    /// old table of `old` entries when given.
    fn cache(entries: &[(u32, &str, &str)], old: Option<u32>) -> Vec<u8> {
        let mut strings = Vec::new();
        let strings_at = HEADER + entries.len() * ENTRY;
        let mut table = Vec::new();
        table.extend_from_slice(MAGIC);
        table.extend_from_slice(&(entries.len() as u32).to_ne_bytes());
        table.resize(HEADER, 0);
        for (flags, key, value) in entries {
            let key_at = strings_at + strings.len();
            strings.extend_from_slice(key.as_bytes());
            strings.push(0);
            let value_at = strings_at + strings.len();
            strings.extend_from_slice(value.as_bytes());
            strings.push(0);
            for word in [*flags, key_at as u32, value_at as u32, 0, 0, 0] {
                table.extend_from_slice(&word.to_ne_bytes());
            }
        }
        table.extend_from_slice(&strings);
        let Some(n) = old else { return table };
        let mut out = OLD_MAGIC.to_vec();
        out.push(0);
        out.extend_from_slice(&n.to_ne_bytes());
        out.resize((OLD_HEADER + n as usize * OLD_ENTRY).next_multiple_of(8), 0);
        out.extend_from_slice(&table);
        out
    }

    const X86: u32 = 0x0303;
    const I386: u32 = 0x0003;

    #[test]
    fn a_bare_name_finds_the_first_library_of_this_abi() {
        let entries = [
            (
                X86,
                "libreadline.so.8",
                "/lib/x86_64-linux-gnu/libreadline.so.8",
            ),
            (I386, "libc.so.6", "/lib/i386-linux-gnu/libc.so.6"),
            (
                X86,
                "libcrypto.so.3",
                "/lib/x86_64-linux-gnu/libcrypto.so.3",
            ),
            (X86, "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
        ];
        for old in [None, Some(3)] {
            let cache = cache(&entries, old);
            let find = |name| find_library(&cache, name, "x86_64").unwrap();
            assert_eq!(
                find("c").as_deref(),
                Some("/lib/x86_64-linux-gnu/libc.so.6")
            );
            assert_eq!(
                find("crypto").as_deref(),
                Some("/lib/x86_64-linux-gnu/libcrypto.so.3")
            );
            assert_eq!(find("ssl"), None);
            assert_eq!(
                find_library(&cache, "c", "x86").unwrap().as_deref(),
                Some("/lib/i386-linux-gnu/libc.so.6")
            );
            assert_eq!(find_library(&cache, "c", "aarch64").unwrap(), None);
        }
    }

    #[test]
    fn other_files_are_refused() {
        assert_eq!(
            find_library(b"hello", "c", "x86_64"),
            Err(LdCacheError::Format)
        );
        let mut short = cache(&[(X86, "libc.so.6", "/l/libc.so.6")], None);
        short.truncate(HEADER + 10);
        assert!(matches!(
            find_library(&short, "c", "x86_64"),
            Err(LdCacheError::Damaged(_))
        ));
    }
}
