//! Profile files under generated input: every valid profile survives a
//! write and a read unchanged (also as an older file with `[pt_regs]`), and
//! arbitrary or mutated text gives an error, never a panic. Run longer with
//! `PROPTEST_CASES=100000 cargo test -p profile --test props`.

use std::collections::BTreeMap;

use profile::{
    FORMAT_VERSION, Field, Function, KernelInfo, MAX_REGISTER_ARGS, NameArgType, Profile,
    Provenance, arg_register,
};
use proptest::prelude::*;

/// Any text a TOML string can hold, quotes, backslashes and non-ASCII included.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("\\PC{{0,{max}}}")).unwrap()
}

fn field() -> impl Strategy<Value = Field> {
    // A type is any non-blank text: the checker, not the profile, parses it.
    (0u32..=1 << 16, 1u32.., "\\PC{0,8}[^\\s\\pC]\\PC{0,8}").prop_map(|(offset, size, c_type)| {
        Field {
            offset,
            size,
            c_type: Some(c_type),
        }
    })
}

fn function() -> impl Strategy<Value = Function> {
    (
        any::<bool>(),
        1..=MAX_REGISTER_ARGS,
        prop_oneof![Just(NameArgType::Filename), Just(NameArgType::UserPath)],
        text(12),
    )
        .prop_map(|(symbol, name_arg, name_arg_type, decided_by)| Function {
            symbol,
            name_arg,
            name_arg_type,
            decided_by,
        })
}

/// A profile `validate` accepts, built as the model rather than as text.
fn valid_profile() -> impl Strategy<Value = Profile> {
    (
        text(24),
        (text(12), text(40), text(16)),
        // `struct.member[.member...]`: no dot before the first one.
        proptest::collection::btree_map("[^.\\pC]{1,10}\\.\\PC{1,16}", field(), 0..6),
        proptest::collection::btree_map("[a-z_][a-z0-9_]{0,15}", function(), 0..3),
    )
        .prop_map(
            |(release, (method, detail, generator), fields, functions)| Profile {
                format: FORMAT_VERSION,
                kernel: KernelInfo::new(release, "x86_64"),
                source: Provenance {
                    method,
                    detail,
                    generator,
                },
                fields,
                functions,
                structs: Default::default(),
                enums: Default::default(),
            },
        )
}

/// The `[pt_regs]` table files carried before registers were derived.
fn registers_table(profile: &Profile) -> String {
    let mut table = BTreeMap::new();
    for (name, f) in &profile.functions {
        table.insert(format!("{name}.name"), arg_register(f.name_arg).unwrap());
        table.insert(format!("{name}.ret"), "ax");
    }
    let lines: Vec<String> = table
        .iter()
        .map(|(key, reg)| format!("{key:?} = {reg:?}"))
        .collect();
    format!("\n[pt_regs]\n{}\n", lines.join("\n"))
}

fn good() -> String {
    let mut profile = profile::builtin::FILENAME.profile("5.10.0-test");
    profile.fields.insert(
        "inode.i_ino".into(),
        Field::typed(64, 8, "long unsigned int"),
    );
    profile.to_toml_string()
}

/// Whatever reads must survive a write and a second read unchanged, and the
/// questions the probes ask of it must answer without panicking.
fn check(text: &str) -> Result<(), TestCaseError> {
    if let Ok(profile) = Profile::from_toml_str(text) {
        let again = Profile::from_toml_str(&profile.to_toml_string());
        prop_assert!(again.is_ok(), "{:?}", again);
        prop_assert_eq!(again.unwrap(), profile.clone());
        let _ = profile.unlink();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn valid_profiles_round_trip(profile in valid_profile()) {
        prop_assert!(profile.validate().is_ok(), "{:?}", profile.validate());
        let text = profile.to_toml_string();
        let read = Profile::from_toml_str(&text);
        prop_assert!(read.is_ok(), "{:?}\n{}", read, text);
        prop_assert_eq!(read.unwrap(), profile.clone());
        let older = text + &registers_table(&profile);
        let read = Profile::from_toml_str(&older);
        prop_assert!(read.is_ok(), "{:?}\n{}", read, older);
        prop_assert_eq!(read.unwrap(), profile);
    }

    #[test]
    fn arbitrary_text(text in "\\PC{0,300}") {
        check(&text)?;
    }

    #[test]
    fn toml_shaped_text(lines in proptest::collection::vec(
        prop_oneof![
            "\\[[a-z_.\"]{0,24}\\]",
            "[a-z_\"]{1,12} = [0-9-]{1,20}",
            "[a-z_\"]{1,12} = \"[ -~]{0,20}\"",
            "[a-z_\"]{1,12} = (true|false)",
        ],
        0..24,
    )) {
        check(&lines.join("\n"))?;
    }

    #[test]
    fn mutated_valid_profile(
        line in any::<prop::sample::Index>(),
        action in 0u8..5,
        number in prop_oneof![Just(0i64), Just(-1), Just(i64::MAX), Just(u32::MAX as i64 + 1), 0i64..70000],
        text in "[ -~]{0,16}",
    ) {
        let good = good();
        let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
        let i = line.index(lines.len());
        match action {
            0 => { lines.remove(i); }
            1 => { let l = lines[i].clone(); lines.insert(i, l); }
            2 => if let Some((key, _)) = lines[i].split_once(" = ") {
                lines[i] = format!("{key} = {number}");
            },
            3 => if let Some((key, _)) = lines[i].split_once(" = ") {
                lines[i] = format!("{key} = {text:?}");
            },
            _ => lines[i] = text,
        }
        check(&lines.join("\n"))?;
    }
}
