//! Why a kprobe cannot attach to a function, from kallsyms and
//! available_filter_functions: read only to explain a failure (they are
//! megabytes, about a second each under emulation), or when asked.

use std::path::Path;

use super::AttachError;
use crate::features::{self, Probeable};

/// Why a kprobe cannot attach, naming the compiler's clones (and `fix`, what
/// to do with one); `None` if it can.
pub fn why_unprobeable(probeable: &Probeable, fix: &str) -> Option<String> {
    Some(match probeable {
        Probeable::Yes => return None,
        Probeable::NoKprobes => format!(
            "this kernel has no kprobes ({} is not in /proc/kallsyms: CONFIG_KPROBES is off), so no function is probeable",
            features::KPROBES_SYMBOL
        ),
        Probeable::NotTraceable => {
            "it is in /proc/kallsyms but not in available_filter_functions (notrace or blacklisted)"
                .to_string()
        }
        Probeable::Missing { candidates } if candidates.is_empty() => {
            "it is not in /proc/kallsyms (misspelt, inlined, or not built) and no compiler clone of it is either".into()
        }
        Probeable::Missing { candidates } => format!(
            "it is not in /proc/kallsyms, but the compiler's clones are: {} ({fix})",
            candidates.join(", ")
        ),
    })
}

/// After attaching to `function` failed (the kernel answers ENOENT or
/// EINVAL for a symbol it does not know or refuses; any failed call is
/// looked into): why, from kallsyms and available_filter_functions. `None`
/// when they do not explain it (the attach error itself is then the best
/// answer).
pub fn explain_attach_failure(
    function: &str,
    err: &AttachError,
    tracefs: Option<&Path>,
    fix: &str,
) -> Option<String> {
    err.errno()?;
    let probeable = features::function_probeable(function, tracefs).ok()?;
    why_unprobeable(&probeable, fix)
}
