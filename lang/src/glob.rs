//! bpftrace's probe wildcards: `*` stands for any run of characters
//! (`vfs_*`, `*sleep*`, `syscalls:sys_enter_open*`); every other character
//! matches itself.

/// Whether `text` has a wildcard.
pub fn has_wildcard(text: &str) -> bool {
    text.contains('*')
}

/// Whether all of `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the prefix was the whole pattern.
        return rest.is_empty();
    };
    // Each middle piece at its first place after the previous one: taking
    // the earliest leaves the most room for what follows.
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run() {
        assert!(matches("vfs_*", "vfs_read"));
        assert!(matches("vfs_*", "vfs_"));
        assert!(!matches("vfs_*", "do_vfs_read"));
        assert!(matches("*sleep*", "do_nanosleep"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "abc"));
        assert!(matches("a*b*c", "a_b_b_c"));
        assert!(!matches("a*b*c", "a_c_b"));
        assert!(matches(
            "syscalls:sys_enter_open*",
            "syscalls:sys_enter_openat"
        ));
        assert!(!matches(
            "syscalls:sys_enter_open*",
            "syscalls:sys_exit_openat"
        ));
        assert!(matches("vfs_read", "vfs_read"));
        assert!(!matches("vfs_read", "vfs_readv"));
        // The last piece may not overlap what a middle piece took.
        assert!(!matches("*ab*ba", "aba"));
        assert!(matches("*ab*ba", "abba"));
        assert!(has_wildcard("vfs_*") && !has_wildcard("vfs_read"));
    }
}
