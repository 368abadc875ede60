//! Profile reading under arbitrary and mutated input: never a panic, and
//! whatever reads back writes out to the same profile. Run longer with
//! `PROPTEST_CASES=100000 cargo test -p offsets --test profile_props`.

use offsets::Profile;
use proptest::prelude::*;

fn good() -> String {
    let mut profile = Profile::builtin("5.10.0-test");
    profile.fields.insert(
        "inode.i_ino".into(),
        offsets::profile::Field {
            offset: 64,
            size: 8,
        },
    );
    profile.to_toml_string()
}

/// Whatever parses must survive a write and a second read unchanged, and
/// the questions the probes ask of it must answer without panicking.
fn check(text: &str) -> Result<(), TestCaseError> {
    if let Ok(profile) = Profile::from_toml_str(text) {
        let again = Profile::from_toml_str(&profile.to_toml_string());
        prop_assert!(again.is_ok(), "{:?}", again);
        prop_assert_eq!(again.unwrap(), profile.clone());
        let _ = profile.unlink();
        let _ = profile.validate();
        let _ = profile.register(offsets::profile::DO_UNLINKAT_NAME_REG);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

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
