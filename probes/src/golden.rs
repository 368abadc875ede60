//! Golden-file comparison for the disassembly tests of the crates that
//! generate bytecode (probes, lang): one place decides what "matches",
//! how a difference is shown and how `UPDATE_GOLDEN=1` rewrites the files.

use std::path::{Path, PathBuf};

/// Compares each `(file, text)` with `dir/file`, or writes the texts when
/// `UPDATE_GOLDEN` is set. Returns the files that differ or are missing,
/// after printing each difference to stderr.
pub fn compare(
    dir: &Path,
    cases: impl IntoIterator<Item = (String, String)>,
) -> Result<(), Vec<PathBuf>> {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    for (file, text) in cases {
        let path = dir.join(file);
        if update {
            if let Err(e) = std::fs::write(&path, &text) {
                eprintln!("{}: {e}", path.display());
                mismatched.push(path);
            }
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == text => {}
            Ok(expected) => {
                eprintln!(
                    "--- {} (expected)\n{expected}+++ actual\n{text}",
                    path.display()
                );
                mismatched.push(path);
            }
            Err(e) => {
                eprintln!("{}: {e}; UPDATE_GOLDEN=1 writes it", path.display());
                mismatched.push(path);
            }
        }
    }
    if mismatched.is_empty() {
        Ok(())
    } else {
        Err(mismatched)
    }
}
