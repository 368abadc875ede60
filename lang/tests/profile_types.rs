//! An offsets profile that carries member types (format 2) lets a program
//! follow a chain of members without casts, as the kernel's BTF does; a
//! format-1 profile (no types) still needs the cast.

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::NATIVE;
use lang::kernel::Kernel;
use lang::tracepoint::NoTracepoints;
use lang::{Target, compile};
use profile::{Field, Profile};

const CHAIN: &str = r#"kprobe:vfs_read { $f = (struct file *)arg0; printf("R %s\n", str($f->f_path.dentry->d_name.name)); }"#;

/// What `offsets gen --field file.f_path.dentry --field dentry.d_name.name`
/// writes for 6.1 x86-64 (offsets from its BTF).
fn typed() -> Profile {
    let mut profile = profile::builtin::FILENAME.profile("6.1.0-test");
    for (key, field) in [
        ("file.f_path", Field::typed(16, 16, "struct path")),
        ("file.f_path.dentry", Field::typed(24, 8, "struct dentry *")),
        ("dentry.d_name", Field::typed(32, 16, "struct qstr")),
        ("dentry.d_name.name", Field::typed(40, 8, "unsigned char *")),
    ] {
        profile.fields.insert(key.into(), field);
    }
    profile
}

/// The same profile as a format-1 file reads: no types.
fn untyped() -> Profile {
    let text = typed()
        .to_toml_string()
        .replace("format = 2", "format = 1")
        .lines()
        .filter(|l| !l.starts_with("type = "))
        .collect::<Vec<_>>()
        .join("\n");
    Profile::from_toml_str(&text).unwrap()
}

fn compile_against(profile: &Profile, src: &str) -> Result<(), String> {
    let target = Target {
        fields: profile,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(6, 1, 0), NATIVE),
    };
    compile(src, &target).map(|_| ()).map_err(|e| e.render(src))
}

#[test]
fn a_typed_profile_follows_member_chains() {
    compile_against(&typed(), CHAIN).unwrap();
    // Each member on its own, through the embedded structs' types.
    let stepwise = r#"kprobe:vfs_read { $f = (struct file *)arg0; $d = $f->f_path.dentry; printf("%s\n", str($d->d_name.name)); }"#;
    compile_against(&typed(), stepwise).unwrap();
}

#[test]
fn an_untyped_profile_needs_the_cast() {
    let e = compile_against(&untyped(), CHAIN).unwrap_err();
    assert!(e.contains("has no members; cast it first"), "{e}");
    let cast = r#"kprobe:vfs_read { $f = (struct file *)arg0; printf("R %s\n", str(((struct dentry *)$f->f_path.dentry)->d_name.name)); }"#;
    compile_against(&untyped(), cast).unwrap();
}
