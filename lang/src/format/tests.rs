//! Golden outputs: the expected texts are what Debian 13's bpftrace 0.23.2
//! printed for the programs in `golden/*.bt` (`golden/regen` runs them
//! again), plus the bucket layouts of bpftrace's runtime tests
//! (`tests/runtime/outputs/*.json`), which 0.23 prints alike.

use super::hist::{HIST_SLOTS, hist_bucket};
use super::*;
use proptest::prelude::*;

fn s(text: &str) -> KeyPart {
    KeyPart::Str(text.as_bytes().to_vec())
}

fn i(n: i64) -> KeyPart {
    KeyPart::Int(n)
}

fn k(bits: i64) -> HistParams {
    HistParams::new(bits).unwrap()
}

fn buckets_of(params: &HistParams, values: &[i64]) -> Vec<u64> {
    let mut buckets = vec![0; params.slots()];
    for &v in values {
        buckets[params.bucket(v) as usize] += 1;
    }
    buckets
}

fn hist_of(values: &[i64]) -> Vec<u64> {
    buckets_of(&k(0), values)
}

fn lhist_of(params: &LhistParams, values: &[i64]) -> Vec<u64> {
    let mut buckets = vec![0; params.slots()];
    for &v in values {
        buckets[params.bucket(v) as usize] += 1;
    }
    buckets
}

fn avg_of(values: &[i64]) -> AvgState {
    AvgState {
        count: values.len() as u64,
        total: values.iter().sum(),
    }
}

fn text(map: &Map, top: u32, div: u32) -> String {
    String::from_utf8(text::map(map, top, div)).unwrap()
}

fn json(map: &Map, top: u32, div: u32) -> String {
    String::from_utf8(json::map(map, top, div)).unwrap()
}

fn map(name: &str, values: MapValues) -> Map {
    Map {
        name: name.into(),
        values,
    }
}

/// `hist()` (bits 0) entries.
fn hist(entries: Vec<(Key, Vec<u64>)>) -> MapValues {
    MapValues::Hist {
        params: k(0),
        entries,
    }
}

fn signed(entries: Vec<(Key, i64)>) -> MapValues {
    MapValues::Int {
        signed: true,
        entries: entries.into_iter().map(|(k, v)| (k, v as u64)).collect(),
    }
}

fn min(entries: Vec<(Key, i64)>) -> MapValues {
    MapValues::Min {
        signed: true,
        entries: entries.into_iter().map(|(k, v)| (k, v as u64)).collect(),
    }
}

fn max(entries: Vec<(Key, i64)>) -> MapValues {
    MapValues::Max {
        signed: true,
        entries: entries.into_iter().map(|(k, v)| (k, v as u64)).collect(),
    }
}

fn lhist(params: LhistParams, entries: Vec<(Key, Vec<u64>)>) -> MapValues {
    MapValues::Lhist { params, entries }
}

#[test]
fn keyed_hists_are_ordered_by_total_and_separated_by_an_empty_line() {
    let map = map(
        "@",
        hist(vec![
            (vec![i(3)], hist_of(&[30])),
            (vec![i(1)], hist_of(&[10, 10])),
            (vec![i(2)], hist_of(&[20])),
        ]),
    );
    let bar = "@".repeat(52);
    let expected = format!(
        "@[2]:\n[16, 32)               1 |{bar}|\n\n\
         @[3]:\n[16, 32)               1 |{bar}|\n\n\
         @[1]:\n[8, 16)                2 |{bar}|\n\n"
    );
    assert_eq!(text(&map, 0, 0), expected);
    let expected_top = format!(
        "@[3]:\n[16, 32)               1 |{bar}|\n\n\
         @[1]:\n[8, 16)                2 |{bar}|\n\n"
    );
    assert_eq!(text(&map, 2, 0), expected_top);
}

#[test]
fn avg_divides_as_bpftrace() {
    let values: Vec<i64> = (0..=100).collect();
    let map = map("@", MapValues::Avg(false, vec![(vec![], avg_of(&values))]));
    assert_eq!(text(&map, 0, 0), "@: 50\n\n");
    // Truncation toward zero for negative averages.
    assert_eq!(avg_of(&[-3, -4]).average(), -3);
    assert_eq!(AvgState::default().average(), 0);
}

#[test]
fn stats_print_count_average_and_total_as_bpftrace() {
    let map = map(
        "@s",
        MapValues::Avg(
            true,
            vec![
                (vec![i(2)], avg_of(&[10, 20])),
                (vec![i(1)], avg_of(&[-3, -4])),
            ],
        ),
    );
    assert_eq!(
        text(&map, 0, 0),
        "@s[1]: count 2, average -3, total -7\n@s[2]: count 2, average 15, total 30\n\n"
    );
    assert_eq!(
        json(&map, 0, 0),
        "{\"type\": \"stats\", \"data\": {\"@s\": {\"1\": {\"count\": 2, \"average\": -3, \"total\": -7}, \"2\": {\"count\": 2, \"average\": 15, \"total\": 30}}}}\n"
    );
}

#[test]
fn counts_are_ordered_by_value_then_key() {
    let map = map(
        "@calls",
        MapValues::Count(vec![
            (vec![s("sshd")], 5),
            (vec![s("bash")], 12),
            (vec![s("cron")], 5),
            (vec![s("init")], 1),
        ]),
    );
    assert_eq!(
        text(&map, 0, 0),
        "@calls[init]: 1\n@calls[cron]: 5\n@calls[sshd]: 5\n@calls[bash]: 12\n"
    );
    assert_eq!(text(&map, 1, 0), "@calls[bash]: 12\n");
    assert_eq!(
        text(&map, 0, 5),
        "@calls[init]: 0\n@calls[cron]: 1\n@calls[sshd]: 1\n@calls[bash]: 2\n"
    );
}

#[test]
fn min_and_max_combine_the_set_per_cpu_copies() {
    let neg = |v: i64| v as u64;
    // Two CPUs saw values, one did not (its copy is all zero).
    let copies = [(neg(-4), 1), (0, 0), (neg(3), 1)];
    assert_eq!(combine_min_max(&copies, true, false), neg(-4));
    assert_eq!(combine_min_max(&copies, true, true), 3);
    assert_eq!(combine_min_max(&copies, false, false), 3);
    assert_eq!(combine_min_max(&copies, false, true), neg(-4));
    // After zero(): nothing set, printed as 0.
    assert_eq!(combine_min_max(&[(0, 0), (0, 0)], true, false), 0);
    assert_eq!(combine_min_max(&[], true, true), 0);
}

#[test]
fn json_hist_buckets_as_the_runtime_tests_expect() {
    // @["bpftrace"] = hist(2); @["curl"] = hist(-1), hist(0), hist(511),
    // hist(1024), hist(1025)  (runtime/outputs/hist_multiple.json)
    let map = map(
        "@",
        hist(vec![
            (vec![s("curl")], hist_of(&[-1, 0, 511, 1024, 1025])),
            (vec![s("bpftrace")], hist_of(&[2])),
        ]),
    );
    let mut curl = vec![
        "{\"max\": -1, \"count\": 1}".to_string(),
        "{\"min\": 0, \"max\": 0, \"count\": 1}".to_string(),
        "{\"min\": 1, \"max\": 1, \"count\": 0}".to_string(),
    ];
    for power in 1..10 {
        let count = if power == 8 { 1 } else { 0 };
        curl.push(format!(
            "{{\"min\": {}, \"max\": {}, \"count\": {count}}}",
            1 << power,
            (2 << power) - 1
        ));
    }
    curl.push("{\"min\": 1024, \"max\": 2047, \"count\": 2}".to_string());
    let expected = format!(
        "{{\"type\": \"hist\", \"data\": {{\"@\": {{\"bpftrace\": [{{\"min\": 2, \"max\": 3, \"count\": 1}}], \
         \"curl\": [{}]}}}}}}\n",
        curl.join(", ")
    );
    assert_eq!(json(&map, 0, 0), expected);
}

#[test]
fn json_lhist_as_the_runtime_tests_expect() {
    // @h = lhist(2, 0, 100, 10); lhist(50, ...); lhist(1000, ...)  (lhist.json)
    let params = LhistParams::new(0, 100, 10).unwrap();
    let map = map(
        "@h",
        lhist(params, vec![(vec![], lhist_of(&params, &[2, 50, 1000]))]),
    );
    let mut items = Vec::new();
    for i in 0..10 {
        let count = u8::from(i == 0 || i == 5);
        items.push(format!(
            "{{\"min\": {}, \"max\": {}, \"count\": {count}}}",
            i * 10,
            i * 10 + 9
        ));
    }
    items.push("{\"min\": 100, \"count\": 1}".to_string());
    let expected = format!(
        "{{\"type\": \"hist\", \"data\": {{\"@h\": [{}]}}}}\n",
        items.join(", ")
    );
    assert_eq!(json(&map, 0, 0), expected);
}

#[test]
fn json_printf_events_escape_as_bpftrace() {
    assert_eq!(
        String::from_utf8(json::printf(b"test 5")).unwrap(),
        "{\"type\": \"printf\", \"data\": \"test 5\"}\n"
    );
    assert_eq!(
        String::from_utf8(json::printf(b"test \r \n \t \\ \" bar")).unwrap(),
        "{\"type\": \"printf\", \"data\": \"test \\r \\n \\t \\\\ \\\" bar\"}\n"
    );
    // printf("é\x80\n") with -f json on bpftrace 0.23.2.
    assert_eq!(
        String::from_utf8(json::printf("é\u{1b}\n".as_bytes())).unwrap(),
        "{\"type\": \"printf\", \"data\": \"\\uffffffc3\\uffffffa9\\u001b\\n\"}\n"
    );
}

#[test]
fn print_of_a_non_map_value_in_json() {
    // BEGIN { $x = 5; print($x); print("a\"b"); print((uint64)-1); } -f json
    assert_eq!(
        json::value(&Printed::Signed(5)),
        b"{\"type\": \"value\", \"data\": 5}\n"
    );
    assert_eq!(
        String::from_utf8(json::value(&Printed::Str(b"a\"b".to_vec()))).unwrap(),
        "{\"type\": \"value\", \"data\": \"a\\\"b\"}\n"
    );
    assert_eq!(
        json::value(&Printed::Unsigned(u64::MAX)),
        b"{\"type\": \"value\", \"data\": 18446744073709551615}\n"
    );
}

#[test]
fn probe_and_lost_lines() {
    assert_eq!(text::attached_probes(1), "Attaching 1 probe...\n");
    assert_eq!(text::attached_probes(2), "Attaching 2 probes...\n");
    assert_eq!(text::lost_events(3), "Lost 3 events\n");
    assert_eq!(
        json::attached_probes(2),
        "{\"type\": \"attached_probes\", \"data\": {\"probes\": 2}}\n"
    );
    assert_eq!(
        json::lost_events(3),
        "{\"type\": \"lost_events\", \"data\": {\"events\": 3}}\n"
    );
}

/// `golden/bars.bt`: bar widths truncate `count / largest * 52` (single
/// precision).
#[test]
fn bar_widths_as_bpftrace_0_23_drew_them() {
    let mut values = Vec::new();
    for (value, times) in [(2, 100), (5, 33), (9, 7), (17, 3), (40, 1), (70, 51)] {
        values.extend(std::iter::repeat_n(value, times));
    }
    let m = map("@", hist(vec![(vec![], hist_of(&values))]));
    let mut out = text::attached_probes(1).into_bytes();
    out.extend(text::exit_maps(&[m]));
    golden(&out, include_str!("golden/bars.out"));
    assert_eq!(HIST_SLOTS, hist::HistParams::default().slots());
    assert_eq!(hist_bucket(1 << 40), 42);
}

fn any_key() -> impl Strategy<Value = Key> {
    proptest::collection::vec(
        prop_oneof![
            any::<i64>().prop_map(KeyPart::Int),
            any::<u64>().prop_map(KeyPart::Uint),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(KeyPart::Str),
        ],
        0..3,
    )
}

fn any_values() -> impl Strategy<Value = MapValues> {
    let buckets = || proptest::collection::vec(any::<u64>(), 0..70);
    prop_oneof![
        proptest::collection::vec((any_key(), any::<u64>()), 0..5).prop_map(MapValues::Count),
        (
            any::<bool>(),
            proptest::collection::vec((any_key(), any::<u64>()), 0..5)
        )
            .prop_map(|(signed, entries)| MapValues::Int { signed, entries }),
        (
            any::<bool>(),
            proptest::collection::vec((any_key(), any::<u64>()), 0..5)
        )
            .prop_map(|(signed, entries)| MapValues::Min { signed, entries }),
        (
            any::<bool>(),
            proptest::collection::vec((any_key(), any::<u64>()), 0..5)
        )
            .prop_map(|(signed, entries)| MapValues::Max { signed, entries }),
        proptest::collection::vec((any_key(), any::<u64>(), any::<i64>()), 0..5).prop_map(|e| {
            MapValues::Avg(
                false,
                e.into_iter()
                    .map(|(k, count, total)| (k, AvgState { count, total }))
                    .collect(),
            )
        }),
        proptest::collection::vec(
            (any_key(), proptest::collection::vec(any::<u8>(), 0..8)),
            0..5
        )
        .prop_map(MapValues::Str),
        (
            0i64..=5,
            proptest::collection::vec((any_key(), buckets()), 0..4)
        )
            .prop_map(|(bits, entries)| MapValues::Hist {
                params: HistParams::new(bits).unwrap(),
                entries,
            }),
        (
            (0i64..50, 1i64..200, 1i64..20),
            proptest::collection::vec((any_key(), buckets()), 0..4)
        )
            .prop_filter_map("valid lhist", |((min, span, step), entries)| {
                let params = LhistParams::new(min, min + span, step).ok()?;
                Some(MapValues::Lhist { params, entries })
            }),
    ]
}

proptest! {
    #[test]
    fn any_map_prints_without_panicking(values in any_values(), top in 0u32..6, div in 0u32..4) {
        let map = Map { name: "@m".into(), values };
        let text = text::map(&map, top, div);
        prop_assert!(text.ends_with(b"\n"));
        let _ = json::map(&map, top, div);
    }

    #[test]
    fn any_value_lands_in_a_labelled_hist_bucket(value in any::<i64>(), bits in 0i64..=5) {
        let params = HistParams::new(bits).unwrap();
        let index = params.bucket(value) as usize;
        prop_assert!(index < params.slots());
        let (low, high) = params.range(index);
        prop_assert!(low.is_none_or(|low| low <= i128::from(value)));
        prop_assert!(high.is_some_and(|high| i128::from(value) <= high));
        let _ = params.label(index);
    }

    #[test]
    fn any_value_lands_in_an_lhist_slot(value in any::<i64>(), min in 0i64..1000, span in 1i64..1000, step in 1i64..100) {
        if let Ok(params) = LhistParams::new(min, min + span, step) {
            let index = params.bucket(value) as usize;
            prop_assert!(index < params.slots());
            if value >= min && value < min + (span / step) * step {
                let label = params.label(index);
                prop_assert!(label.starts_with('['));
            }
        }
    }

    #[test]
    fn lhist_params_never_panic(min in any::<i64>(), max in any::<i64>(), step in any::<i64>()) {
        let _ = LhistParams::new(min, max, step);
    }
}

fn golden(out: &[u8], expected: &str) {
    let out = String::from_utf8(out.to_vec()).unwrap();
    if out != expected {
        panic!("nobtf printed:\n{out}\nbpftrace 0.23.2 printed:\n{expected}");
    }
}

/// `golden/exit.bt`: every kind of map at exit, sorted by name as bytes;
/// an empty map is an empty line, an avg() map ends with two newlines,
/// negative max() and min() above 2^32 print,
/// unsigned keys print unsigned.
#[test]
fn exit_text_as_bpftrace_0_23_printed_it() {
    let params = LhistParams::new(0, 100, 10).unwrap();
    let maps = vec![
        map("@z", signed(vec![(vec![], 1)])),
        map("@a", MapValues::Count(vec![(vec![], 1)])),
        map("@B", signed(vec![(vec![], 2)])),
        map("@_x", signed(vec![(vec![], 3)])),
        map(
            "@b",
            MapValues::Count(vec![(vec![s("y")], 2), (vec![s("x")], 1)]),
        ),
        map("@c", MapValues::Avg(false, vec![(vec![], avg_of(&[5]))])),
        map("@d", signed(vec![])),
        map("@e", hist(vec![(vec![], hist_of(&[0, -5, 1000]))])),
        map(
            "@f",
            lhist(params, vec![(vec![], lhist_of(&params, &[15]))]),
        ),
        map("@g", MapValues::Str(vec![(vec![], b"str".to_vec())])),
        map(
            "@h",
            MapValues::Str(vec![
                (vec![i(-1)], b"z".to_vec()),
                (vec![i(3)], b"a".to_vec()),
                (vec![i(20)], b"b".to_vec()),
            ]),
        ),
        map("@m", min(vec![(vec![], -3)])),
        map("@n", max(vec![(vec![], 7)])),
        map("@s", signed(vec![(vec![], -4)])),
        map("@neg", max(vec![(vec![], -5)])),
        map("@mn", min(vec![(vec![], 5_000_000_000)])),
        map(
            "@u",
            signed(vec![
                (vec![KeyPart::Uint(4294967295)], 2),
                (vec![KeyPart::Uint(5)], 1),
            ]),
        ),
        map("@i8", signed(vec![(vec![], -3)])),
        map(
            "@u8",
            MapValues::Int {
                signed: false,
                entries: vec![(vec![], 200)],
            },
        ),
    ];
    let mut out = text::attached_probes(1).into_bytes();
    out.extend(text::exit_maps(&maps));
    golden(&out, include_str!("golden/exit.out"));
}

/// `golden/exit.json.bt`: the same with `-f json`, hist(x, bits), string
/// keys escaped twice and bytes from 0x80 up mangled as bpftrace does.
#[test]
fn exit_json_as_bpftrace_0_23_printed_it() {
    let params = LhistParams::new(0, 100, 10).unwrap();
    let maps = vec![
        map("@z", signed(vec![(vec![], 1)])),
        map("@a", MapValues::Count(vec![(vec![], 1)])),
        map("@b", MapValues::Count(vec![(vec![s("x"), i(2)], 1)])),
        map(
            "@c",
            MapValues::Avg(false, vec![(vec![], avg_of(&[-7, 2]))]),
        ),
        map("@d", signed(vec![])),
        map(
            "@e",
            hist(vec![
                (vec![i(1)], hist_of(&[5])),
                (vec![i(2)], hist_of(&[5, 6])),
            ]),
        ),
        map(
            "@f",
            lhist(params, vec![(vec![], lhist_of(&params, &[15]))]),
        ),
        map("@g", MapValues::Str(vec![(vec![], b"s\tr".to_vec())])),
        map("@h", MapValues::Str(vec![(vec![i(-1)], b"z".to_vec())])),
        map("@m", min(vec![(vec![], -3)])),
        map("@n", max(vec![(vec![], 7)])),
        map("@s", signed(vec![(vec![], -4)])),
        map("@u", signed(vec![(vec![KeyPart::Uint(4294967295)], 2)])),
        map(
            "@k2",
            MapValues::Hist {
                params: k(2),
                entries: vec![(vec![], buckets_of(&k(2), &[1000, -1, 3]))],
            },
        ),
        map("@big", hist(vec![(vec![], hist_of(&[i64::MAX]))])),
        map(
            "@big5",
            MapValues::Hist {
                params: k(5),
                entries: vec![(vec![], buckets_of(&k(5), &[i64::MAX]))],
            },
        ),
        map("@hz", hist(vec![(vec![], vec![0; HIST_SLOTS])])),
        map(
            "@la",
            MapValues::Avg(false, vec![(vec![], avg_of(&[3, 4]))]),
        ),
        map(
            "@ua",
            MapValues::Avg(false, vec![(vec![i(1)], avg_of(&[5]))]),
        ),
        map("@tk", signed(vec![(vec![i(1), s("a")], 5)])),
        map("@esc", signed(vec![(vec![s("é\"\t")], 1)])),
        map("@q", signed(vec![(vec![s("a"), s("b\"c")], 1)])),
        map("@bs", signed(vec![(vec![i(1), s("x\\")], 2)])),
        map(
            "@sv",
            MapValues::Str(vec![(vec![], "é".as_bytes().to_vec())]),
        ),
    ];
    let mut out = json::attached_probes(1).into_bytes();
    out.extend(json::printf(b"a\"b\x01\n"));
    out.extend(json::exit_maps(&maps));
    golden(&out, include_str!("golden/exit.json.out"));
}

/// `golden/hist.bt`: 64-bit hist buckets, hist(x, bits) labels, lhist
/// labels with K/M only for steps of whole kilos, equal totals in key byte
/// order, zeroed histograms.
#[test]
fn hist_text_as_bpftrace_0_23_printed_it() {
    let with_bits = |bits, values: &[i64]| MapValues::Hist {
        params: k(bits),
        entries: vec![(vec![], buckets_of(&k(bits), values))],
    };
    let one_lhist = |min, max, step, values: &[i64]| {
        let params = LhistParams::new(min, max, step).unwrap();
        lhist(params, vec![(vec![], lhist_of(&params, values))])
    };
    let zero_lhist = LhistParams::new(0, 10, 1).unwrap();
    let maps = vec![
        map("@", hist(vec![(vec![], hist_of(&[-1, 2, 3, 7, 20]))])),
        map("@b", hist(vec![(vec![], hist_of(&[8589934592]))])),
        map("@c", hist(vec![(vec![], hist_of(&[i64::MAX]))])),
        map("@k2", with_bits(2, &[5, 225, 1000])),
        map("@k3", with_bits(3, &[1099511627776, 1500000000000])),
        map("@k5", with_bits(5, &[i64::MAX])),
        map("@l", one_lhist(0, 10240, 1024, &[5000])),
        map("@l2", one_lhist(0, 10000, 1000, &[5000])),
        map("@l3", one_lhist(0, 4194304, 1048576, &[3000000])),
        map("@l4", one_lhist(1024, 8192, 512, &[2048])),
        map("@l5", one_lhist(1, 10, 4, &[9, 0, 10, 11])),
        map(
            "@x",
            hist(vec![
                (vec![i(1)], hist_of(&[1])),
                (vec![i(2)], hist_of(&[1])),
                (vec![i(256)], hist_of(&[1])),
            ]),
        ),
        map(
            "@y",
            hist(vec![
                (vec![s("b")], hist_of(&[1])),
                (vec![s("ab")], hist_of(&[1])),
                (vec![s("a")], hist_of(&[1])),
            ]),
        ),
        map("@z", hist(vec![(vec![], vec![0; HIST_SLOTS])])),
        map(
            "@zl",
            lhist(
                zero_lhist,
                vec![
                    (vec![i(2)], vec![0; zero_lhist.slots()]),
                    (vec![i(1)], vec![0; zero_lhist.slots()]),
                ],
            ),
        ),
    ];
    let mut out = text::attached_probes(1).into_bytes();
    out.extend(text::exit_maps(&maps));
    golden(&out, include_str!("golden/hist.out"));
}

/// `golden/print.bt`: print() with top and div, clear() and zero(), and
/// print() of values, then the maps at exit.
#[test]
fn print_as_bpftrace_0_23_printed_it() {
    let b = map(
        "@b",
        MapValues::Count(vec![
            (vec![s("z")], 3),
            (vec![s("x")], 1),
            (vec![s("y")], 2),
        ]),
    );
    let c = map("@c", MapValues::Count(vec![(vec![], 0)]));
    let c2 = map("@c2", MapValues::Count(vec![]));
    let c3 = map("@c3", MapValues::Count(vec![(vec![], 0)]));
    let mm = map(
        "@mm",
        MapValues::Max {
            signed: true,
            entries: vec![(vec![], combine_min_max(&[(0, 0)], true, true))],
        },
    );
    let h = map(
        "@h",
        hist(vec![
            (vec![i(1)], hist_of(&[10, 10, 10])),
            (vec![i(2)], hist_of(&[20])),
            (vec![i(3)], hist_of(&[30, 30])),
        ]),
    );
    let av = map(
        "@av",
        MapValues::Avg(
            false,
            vec![
                (vec![s("c")], avg_of(&[30])),
                (vec![s("a")], avg_of(&[10])),
                (vec![s("b")], avg_of(&[20])),
            ],
        ),
    );
    let neg = map("@neg", signed(vec![(vec![i(-3)], -4)]));
    let mut out = text::attached_probes(1).into_bytes();
    out.extend(text::map(&b, 0, 0));
    out.extend(text::map(&b, 1, 2));
    out.extend(text::map(&b, 0, 2));
    out.extend(text::map(&c, 0, 0));
    out.extend(text::map(&c2, 0, 0));
    out.extend(text::map(&c3, 0, 0));
    out.extend(text::map(&mm, 0, 0));
    out.extend(text::map(&h, 2, 2));
    out.extend(text::value(&Printed::Str(b"END".to_vec())));
    out.extend(text::map(&av, 2, 10));
    for value in [
        Printed::Signed(5),
        Printed::Signed(-3),
        Printed::Str(b"a\"b".to_vec()),
        Printed::Unsigned(u64::MAX),
        Printed::Signed(-1),
        Printed::Signed(-4),
    ] {
        out.extend(text::value(&value));
    }
    out.extend(text::exit_maps(&[b, c, c2, c3, mm, h, av, neg]));
    golden(&out, include_str!("golden/print.out"));
}

/// `golden/order.bt`: sums and averages sort signed, min() and max()
/// unsigned (negative values last), maps of strings by key with integers
/// unsigned, avg() is signed whatever its argument.
#[test]
fn order_as_bpftrace_0_23_printed_it() {
    let keyed = |entries: &[(i64, i64)]| -> Vec<(Key, i64)> {
        entries.iter().map(|&(key, v)| (vec![i(key)], v)).collect()
    };
    let maps = vec![
        map("@mn", min(keyed(&[(1, 3), (2, -4), (3, 1)]))),
        map("@mx", max(keyed(&[(1, 30), (2, -4), (3, 5)]))),
        map("@s", signed(keyed(&[(1, 3), (2, -9), (3, 1)]))),
        map(
            "@a",
            MapValues::Avg(
                false,
                vec![
                    (vec![i(1)], avg_of(&[3])),
                    (vec![i(2)], avg_of(&[-9])),
                    (vec![i(3)], avg_of(&[1])),
                ],
            ),
        ),
        map(
            "@ub",
            MapValues::Avg(false, vec![(vec![], avg_of(&[-1, 3]))]),
        ),
        map(
            "@u",
            MapValues::Int {
                signed: false,
                entries: vec![(vec![i(1)], u64::MAX), (vec![i(2)], 1)],
            },
        ),
        map(
            "@m2",
            MapValues::Min {
                signed: false,
                entries: vec![(vec![s("x")], 5), (vec![s("y")], u64::MAX)],
            },
        ),
        map(
            "@str",
            signed(vec![
                (vec![i(1), s("b")], 1),
                (vec![i(1), s("a")], 2),
                (vec![i(0), s("z")], 3),
            ]),
        ),
        map(
            "@sv",
            MapValues::Str(vec![
                (vec![i(1), s("b")], b"x".to_vec()),
                (vec![i(1), s("a")], b"y".to_vec()),
                (vec![i(0), s("z")], b"z".to_vec()),
                (vec![i(-1), s("a")], b"w".to_vec()),
            ]),
        ),
        map("@k", signed(vec![(vec![s("é\"\t")], 1)])),
        map("@q", signed(vec![(vec![s("a"), s("b\"c")], 1)])),
    ];
    let mut out = text::attached_probes(1).into_bytes();
    out.extend(text::exit_maps(&maps));
    golden(&out, include_str!("golden/order.out"));
}

/// `golden/untouched.bt`: maps whose statements never ran. A `count()`
/// without keys lives in a per-CPU array, so it always has its entry and
/// prints `@c: 0`; the other maps are empty (an empty line, two for avg()).
#[test]
fn untouched_maps_as_bpftrace_0_23_printed_them() {
    let c = map("@c", MapValues::Count(vec![(vec![], 0)]));
    let a = map("@a", MapValues::Avg(false, vec![]));
    let maps = vec![
        c.clone(),
        map("@s", signed(vec![])),
        map("@k", MapValues::Count(vec![])),
        map("@h", hist(vec![])),
        map("@m", max(vec![])),
        a.clone(),
        map("@v", signed(vec![])),
    ];
    let mut out = text::attached_probes(2).into_bytes();
    out.extend(text::map(&c, 0, 0));
    out.extend(text::map(&a, 0, 0));
    out.extend(text::value(&Printed::Str(b"x".to_vec())));
    out.extend(text::exit_maps(&maps));
    golden(&out, include_str!("golden/untouched.out"));
}

/// Every byte escaped as bpftrace writes it (`\u{:04x}` below 0x20, the
/// sign-extended `\u{:x}` from 0x80), alone and between plain runs.
#[test]
fn json_escapes_each_byte() {
    for b in 0..=255u8 {
        let want = match b {
            b'"' => "\\\"".to_string(),
            b'\\' => "\\\\".to_string(),
            b'\n' => "\\n".to_string(),
            b'\r' => "\\r".to_string(),
            b'\t' => "\\t".to_string(),
            0..0x20 => format!("\\u{b:04x}"),
            0x80.. => format!("\\u{:x}", i32::from(b as i8)),
            _ => char::from(b).to_string(),
        };
        let mut out = Vec::new();
        json::escape_into(&[b'a', b, b'b', b'c', b], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("a{want}bc{want}"),
            "{b:#x}"
        );
    }
}
