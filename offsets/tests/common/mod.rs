//! Helpers for more than one of the integration tests.

use offsets::Profile;

/// The `(offset, size)` of each field in `profile`, in the order asked.
pub fn layout(profile: &Profile, keys: &[&str]) -> Vec<(u32, u32)> {
    keys.iter()
        .map(|key| {
            let field = profile.field(key).unwrap();
            (field.offset, field.size)
        })
        .collect()
}
