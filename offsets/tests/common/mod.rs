//! Helpers for more than one of the integration tests.

use offsets::Profile;
use offsets::generate::Request;

/// The `(offset, size)` of each field in `profile`, in the order asked.
pub fn layout(profile: &Profile, keys: &[&str]) -> Vec<(u32, u32)> {
    keys.iter()
        .map(|key| {
            let field = profile.field(key).unwrap();
            (field.offset, field.size)
        })
        .collect()
}

/// Members a trace program follows, and the type each source must give:
/// an embedded struct, a pointer through it, a qualified pointer in an
/// embedded struct, an array, a member of an anonymous union, a typedef'd
/// struct, `void *`. (A base type is named as its compiler names it: gcc
/// `long long int`, clang `long long`; a kernel's BTF is converted from
/// gcc's DWARF, so its names are gcc's.)
#[allow(dead_code)] // not every test binary uses each helper
pub const TYPED_FIELDS: &[(&str, &str)] = &[
    ("file.f_path", "struct path"),
    ("file.f_path.dentry", "struct dentry *"),
    ("dentry.d_name", "struct qstr"),
    ("dentry.d_name.name", "unsigned char *"),
    ("dentry.d_name.hash", "u32"),
    ("dentry.d_iname", "unsigned char[32]"),
    ("file.f_count", "atomic_t"),
    ("file.f_pos", "loff_t"),
    ("file.f_u", "void *"),
    ("filename.name", "char *"),
    ("filename.refcnt", "int"),
];

/// The fields of [`TYPED_FIELDS`] beyond the builtin ones, as `--field`
/// takes them: the last members only, their first ones come with them.
#[allow(dead_code)]
pub fn typed_request() -> Request {
    let fields = [
        "file.f_path.dentry",
        "dentry.d_name.name",
        "dentry.d_name.hash",
        "dentry.d_iname",
        "file.f_count",
        "file.f_pos",
        "file.f_u",
    ];
    Request {
        fields: fields.iter().map(|f| f.to_string()).collect(),
        release: Some("5.4.0-test".into()),
        arch: None,
        ..Request::default()
    }
}
