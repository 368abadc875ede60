//! The reader's userspace work per event, with no kernel: perf records of
//! unlink events are parsed and printed as `nobtf run unlink` does, into
//! /dev/null through the same buffered writer; with `trace-text` or
//! `trace-json`, records of the benchmark's `nobtf trace` one-liner
//! (`printf("KPROBE ENTRY %s %d\n", str(...), ...)`) are printed as
//! `nobtf trace` does. Run under `valgrind --tool=callgrind` for
//! instructions per event (scripts/bench measures the whole tracer in a
//! VM; this isolates the printing path).
//! `text` and `json` take the records as the BPF ring buffer lays them
//! out (5.8+), `perf-text` and `perf-json` as the perf rings do.
//!   cargo run --release -p loader --example reader_cost -- [EVENTS] [text|json|perf-text|perf-json|trace-text|trace-json]
#![forbid(unsafe_code)]

use std::io::{BufWriter, Write};

use kernel_headers::perf::{PERF_EVENT_HEADER_SIZE, PERF_RECORD_SAMPLE};
use lang::Compiled;
use lang::output::{EventFormat, Slot, ValueType};
use lang::report;
use loader::output::{self, Format};
use loader::ring::{self, Record};
use probes::event::{self, EventBytes, EventKind, HAS_REFCNT, SIZE, UnlinkEvent, VERSION};

/// One perf sample record holding `raw`, as the kernel lays it out.
fn sample_record(raw: &UnlinkEvent) -> Vec<u8> {
    let mut body = Vec::with_capacity(SIZE);
    body.extend_from_slice(&raw.version.to_ne_bytes());
    body.extend_from_slice(&raw.kind.to_ne_bytes());
    body.extend_from_slice(&raw.ts_ns.to_ne_bytes());
    body.extend_from_slice(&raw.pid.to_ne_bytes());
    body.extend_from_slice(&raw.tid.to_ne_bytes());
    body.extend_from_slice(&raw.refcnt.to_ne_bytes());
    body.extend_from_slice(&raw.flags.to_ne_bytes());
    body.extend_from_slice(&raw.ret.to_ne_bytes());
    body.extend_from_slice(&raw.comm);
    body.extend_from_slice(&raw.cpu.to_ne_bytes());
    body.extend_from_slice(&raw.reserved.to_ne_bytes());
    // An exit record stops before the path, as the probe sends it.
    if raw.kind == EventKind::Entry as u32 {
        body.extend_from_slice(&raw.filename);
    }
    let padded = (4 + body.len()).div_ceil(8) * 8;
    let size = PERF_EVENT_HEADER_SIZE + padded;
    let mut out = PERF_RECORD_SAMPLE.to_ne_bytes().to_vec();
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&(size as u16).to_ne_bytes());
    out.extend_from_slice(&((padded - 4) as u32).to_ne_bytes());
    out.extend_from_slice(&body);
    out.resize(size, 0);
    out
}

/// One BPF ring buffer record holding `raw`: the 8-byte header (length,
/// page offset) and the record, padded to 8, as the kernel lays it out.
fn ring_record(raw: &UnlinkEvent) -> Vec<u8> {
    let sample = sample_record(raw);
    let body = &sample[PERF_EVENT_HEADER_SIZE + 4..];
    let len = if raw.kind == EventKind::Entry as u32 {
        SIZE
    } else {
        event::EXIT_SIZE
    };
    let mut out = (len as u32).to_ne_bytes().to_vec();
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&body[..len]);
    out.resize(out.len().next_multiple_of(8), 0);
    out
}

/// The perf sample record around a program's output `raw`.
fn wrap(raw: &[u8]) -> Vec<u8> {
    let padded = (4 + raw.len()).div_ceil(8) * 8;
    let size = PERF_EVENT_HEADER_SIZE + padded;
    let mut out = PERF_RECORD_SAMPLE.to_ne_bytes().to_vec();
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&(size as u16).to_ne_bytes());
    out.extend_from_slice(&((padded - 4) as u32).to_ne_bytes());
    out.extend_from_slice(raw);
    out.resize(size, 0);
    out
}

/// A drain's worth of records, as one 64-page ring would hold.
fn batch(records: &[Vec<u8>]) -> Vec<u8> {
    let mut batch = Vec::new();
    while batch.len() < 64 * 4096 - 2 * 1200 {
        for record in records {
            batch.extend(record);
        }
    }
    batch
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args
        .next()
        .map_or(100_000, |n| n.parse().expect("EVENTS is a number"));
    let (format, perf) = match args.next().as_deref() {
        Some("json") => (Format::Json, false),
        Some("perf-text") => (Format::Text, true),
        Some("perf-json") => (Format::Json, true),
        Some("trace-text") => return trace(events, report::Format::Text),
        Some("trace-json") => return trace(events, report::Format::Json),
        _ => (Format::Text, false),
    };
    let mut comm = [0u8; kernel_headers::sched::TASK_COMM_LEN];
    comm[..9].copy_from_slice(b"benchctl\0");
    let mut filename = [0u8; event::FILENAME_LEN];
    filename[..22].copy_from_slice(b"/tmp/nobtf-bench-storm");
    let entry = UnlinkEvent {
        version: VERSION,
        kind: EventKind::Entry as u32,
        ts_ns: 12_345_678_901_234,
        pid: 4242,
        tid: 4242,
        refcnt: 1,
        flags: HAS_REFCNT,
        ret: 0,
        comm,
        filename,
        cpu: 0,
        reserved: 0,
    };
    let exit = UnlinkEvent {
        kind: EventKind::Exit as u32,
        ret: -2,
        flags: 0,
        ..entry
    };
    // A drain's worth of records, as one 64-page ring would hold.
    let mut batch = Vec::new();
    while batch.len() < 64 * 4096 - 2 * 400 {
        if perf {
            batch.extend(sample_record(&entry));
            batch.extend(sample_record(&exit));
        } else {
            batch.extend(ring_record(&entry));
            batch.extend(ring_record(&exit));
        }
    }
    print_unlink(events, format, &batch, perf);
}

/// Prints `events` records of `batch` (walked again and again, by
/// `try_each` as the session hands them over) as the printer does.
fn print_unlink(events: usize, format: Format, batch: &[u8], perf: bool) {
    let records = || {
        if perf {
            ring::records(batch)
        } else {
            ring::ring_buffer_records(batch)
        }
    };
    let per_batch = records().count();
    let mut out = dev_null();
    let mut done = 0;
    // As the printer gathers lines: one buffer, written when 64 KiB wait.
    let mut line = output::Lines::with_capacity(68 * 1024);
    let mut cache = output::LineCache::default();
    while done < events {
        let left = events - done;
        let mut printed = 0;
        let walked = records().try_each(
            |record| {
                if printed == left {
                    return Err(None);
                }
                print_one(record, format, &mut cache, &mut line, &mut out);
                printed += 1;
                Ok(())
            },
            Some,
        );
        if let Err(Some(err)) = walked {
            panic!("{err}");
        }
        done += printed;
    }
    out.write_all(line.as_bytes())
        .expect("writing to /dev/null");
    out.flush().expect("flush");
    eprintln!("{done} events ({per_batch} per 64-page batch)");
}

/// One record, as the printer shows it: text straight from the record's
/// bytes, else the parsed event; the lines written when 64 KiB wait.
#[inline(always)]
fn print_one(
    record: Record<'_>,
    format: Format,
    cache: &mut output::LineCache,
    line: &mut output::Lines,
    out: &mut BufWriter<std::fs::File>,
) {
    let Record::Sample(data) = record else {
        panic!("bad record")
    };
    let straight = match EventBytes::new(data) {
        Some(record) if format == Format::Text => cache.append_record(line, record, 1),
        _ => false,
    };
    if !straight {
        let parsed = event::parse_ref(data);
        let raw = match &parsed {
            Ok(raw) => raw,
            Err(err) => panic!("{err}"),
        };
        cache.append(line, format, &loader::run::event(1, raw));
    }
    if line.len() >= 64 * 1024 {
        out.write_all(line.as_bytes())
            .expect("writing to /dev/null");
        line.clear();
    }
}

/// `nobtf trace -e 'kprobe:do_unlinkat { printf("KPROBE ENTRY %s %d\n",
/// str(...->name), ...->refcnt.counter); }'`: its records printed as
/// `nobtf trace`'s printer does (`report::Records`, bytes to the writer).
fn trace(events: usize, format: report::Format) {
    const PATH_LEN: u32 = 64;
    let compiled = Compiled {
        probes: Vec::new(),
        begin: Vec::new(),
        end: Vec::new(),
        timers: Vec::new(),
        multi_refused: None,
        maps: Vec::new(),
        time_formats: Vec::new(),
        events: vec![EventFormat::Printf {
            format: "KPROBE ENTRY %s %d\n".into(),
            args: vec![
                Slot {
                    ty: ValueType::Str { len: PATH_LEN },
                    offset: 8,
                },
                Slot {
                    ty: ValueType::Int { signed: true },
                    offset: 8 + PATH_LEN,
                },
            ],
        }],
        config: Default::default(),
        listed: Vec::new(),
    };
    let mut raw = 0u64.to_ne_bytes().to_vec();
    let mut path = [0u8; PATH_LEN as usize];
    path[..22].copy_from_slice(b"/tmp/nobtf-bench-storm");
    raw.extend_from_slice(&path);
    raw.extend_from_slice(&1i64.to_ne_bytes());
    let batch = batch(&[wrap(&raw)]);
    let per_batch = ring::records(&batch).count();
    let mut out = dev_null();
    let mut done = 0;
    let clock = lang::format::time::FixedClock::default();
    let mut records = report::Records::new(&compiled, format, &clock);
    let mut line = Vec::new();
    while done < events {
        for record in ring::records(&batch).take(events - done) {
            let Ok(Record::Sample(data)) = record else {
                panic!("bad record")
            };
            line.clear();
            if let Some(step) = records.record(data, &mut line).expect("a valid record") {
                panic!("unexpected {step:?}");
            }
            out.write_all(&line).expect("writing to /dev/null");
            done += 1;
        }
    }
    out.flush().expect("flush");
    eprintln!("{done} events ({per_batch} per 64-page batch)");
}

/// Where the lines go: /dev/null through the writer `nobtf` uses.
fn dev_null() -> BufWriter<std::fs::File> {
    let sink = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    BufWriter::with_capacity(64 * 1024, sink)
}
