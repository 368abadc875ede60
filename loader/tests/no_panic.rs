//! Bad input never panics: property tests over everything the loader parses
//! from outside (perf ring bytes, event records, profiles on their way to
//! bytecode, trace-pipe lines, kernel text files). Quick by default; run
//! longer with e.g. `PROPTEST_CASES=100000 cargo test -p loader --test no_panic`.

use kernel_headers::perf::{PERF_EVENT_HEADER_SIZE, PERF_RECORD_LOST, PERF_RECORD_SAMPLE};
use loader::ring::{self, Record};
use loader::{attach, features, pipe_line};
use probes::event;
use probes::unlink::{self, Choices, CommRead, Output, Readers};
use profile::Profile;
use proptest::prelude::*;

fn record(type_: u32, body: &[u8]) -> Vec<u8> {
    let mut out = type_.to_ne_bytes().to_vec();
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&((PERF_EVENT_HEADER_SIZE + body.len()) as u16).to_ne_bytes());
    out.extend_from_slice(body);
    out
}

/// Well-formed records: samples of any payload, losses, other types.
fn arb_record() -> impl Strategy<Value = (Vec<u8>, Option<u64>)> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|data| {
            let raw = 4 + data.len();
            let padded = raw.div_ceil(8) * 8;
            let mut body = ((padded - 4) as u32).to_ne_bytes().to_vec();
            body.extend_from_slice(&data);
            body.resize(padded, 0);
            (record(PERF_RECORD_SAMPLE, &body), None)
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(id, lost)| {
            let mut body = id.to_ne_bytes().to_vec();
            body.extend_from_slice(&lost.to_ne_bytes());
            (record(PERF_RECORD_LOST, &body), Some(lost))
        }),
        (3u32..100).prop_map(|t| (record(t, &[0; 8]), None)),
    ]
}

/// Parses all records, as the event loop does; must end, never panic.
fn drain(bytes: &[u8]) -> (usize, u64) {
    let (mut samples, mut lost) = (0, 0u64);
    for item in ring::records(bytes) {
        match item {
            Ok(Record::Sample(data)) => {
                samples += 1;
                if let Ok(e) = event::parse(data) {
                    let _ = (e.kind(), e.filename_str(), e.comm_str(), e.refcnt());
                }
                if let Ok(e) = event::parse_ref(data) {
                    let _ = loader::run::event(0, &e);
                }
            }
            Ok(Record::Lost(n)) => lost = lost.wrapping_add(n),
            Ok(Record::Other(_)) => {}
            Err(_) => break,
        }
    }
    (samples, lost)
}

fn profile_text() -> String {
    profile::builtin::FILENAME
        .profile("6.1.0-test")
        .to_toml_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ring_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        drain(&data);
    }

    #[test]
    fn ring_records_round_trip(records in proptest::collection::vec(arb_record(), 0..16)) {
        let bytes: Vec<u8> = records.iter().flat_map(|(r, _)| r.clone()).collect();
        let parsed: Vec<_> = ring::records(&bytes).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(parsed.len(), records.len());
        let lost: u64 = records.iter().filter_map(|(_, l)| *l).fold(0, u64::wrapping_add);
        prop_assert_eq!(drain(&bytes).1, lost);
    }

    #[test]
    fn damaged_ring_never_panics(
        records in proptest::collection::vec(arb_record(), 1..8),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes: Vec<u8> = records.iter().flat_map(|(r, _)| r.clone()).collect();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        drain(&bytes);
    }

    #[test]
    fn event_records_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..400),
        version in prop_oneof![Just(event::VERSION), any::<u32>()],
        kind in 0u32..4,
    ) {
        let mut data = data;
        if data.len() >= 8 {
            data[..4].copy_from_slice(&version.to_ne_bytes());
            data[4..8].copy_from_slice(&kind.to_ne_bytes());
        }
        if let Ok(e) = event::parse(&data) {
            prop_assert!(e.kind().is_some());
            let _ = (e.filename_str(), e.comm_str(), e.refcnt());
        }
    }

    /// A profile that parses builds probes or says why, never panics.
    #[test]
    fn mutated_profiles_build_or_fail_cleanly(
        line in any::<prop::sample::Index>(),
        action in 0u8..4,
        number in prop_oneof![Just(0i64), Just(-1), Just(u32::MAX as i64), Just(i64::MAX), 1i64..70000],
        junk in "[ -~]{0,12}",
    ) {
        let text = profile_text();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let i = line.index(lines.len());
        match action {
            0 => { lines.remove(i); }
            1 => { let l = lines[i].clone(); lines.insert(i, l); }
            2 => {
                // Replace the line's value by a number.
                if let Some((key, _)) = lines[i].split_once(" = ") {
                    lines[i] = format!("{key} = {number}");
                }
            }
            _ => lines[i].push_str(&junk),
        }
        let Ok(profile) = Profile::from_toml_str(&lines.join("\n")) else {
            return Ok(());
        };
        for read in [Readers::ProbeReadStr, Readers::Split] {
            for output in [Output::PerfEvents, Output::TracePrintk] {
                let choices = Choices {
                read,
                output,
                comm: CommRead::Helper,
            };
                if let Ok(program) = unlink::entry(&profile, &choices) {
                    let _ = program.to_string();
                }
                let _ = unlink::exit(&profile, &choices);
            }
        }
    }

    #[test]
    fn kernel_text_parsers_never_panic(text in "\\PC{0,200}") {
        let _ = features::parse_cpu_list(&text);
        let _ = features::parse_format_bit(&text);
        let _ = features::KernelVersion::parse(&text).map(|v| v.code());
        let _ = features::build_version(&text, &text, Some(&text));
        let _ = features::find_tracefs(&text);
        let _ = features::probeable("do_unlinkat", &text, Some(&text));
        let _ = pipe_line::parse(&text);
        for event in attach::stale::our_events(&text) {
            let _ = attach::stale::owner_pid(&event);
        }
    }

    /// Only names nobtf makes (`nobtf_<pid>_<p|r>_...`) are ever claimed.
    #[test]
    fn only_our_names_are_claimed(group in "[a-z]{1,8}", name in "[a-z0-9_]{0,24}") {
        if let Some(pid) = attach::stale::owner_pid(&format!("{group}/{name}")) {
            prop_assert_eq!(group.as_str(), attach::GROUP);
            let prefix = format!("nobtf_{pid}_");
            prop_assert!(name.starts_with(&prefix));
        }
    }

    #[test]
    fn event_names_parse_back(pid in any::<u32>(), entry in any::<bool>(), function in "[a-z_.0-9]{1,30}", n in any::<u32>()) {
        let kind = if entry { attach::ProbeKind::Kprobe } else { attach::ProbeKind::Kretprobe };
        let name = attach::event_name(pid, kind, &function, n);
        prop_assert_eq!(attach::stale::owner_pid(&format!("{}/{name}", attach::GROUP)), Some(pid));
    }
}
