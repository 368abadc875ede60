//! The session as a `nobtf trace` front end will use it, on a real kernel
//! (run it as root in a VM: `scripts/vm --file target/.../session_smoke:/bin/session_smoke
//! -- session_smoke`): a tracepoint program writes a hash map, a CPU-clock
//! program counts ticks in a per-CPU array, and both maps are read back at
//! exit. Exits non-zero, naming what failed, when the kernel disagrees.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kernel_headers::bpf::{Helper, map_type};
use loader::attach::{AttachMode, AttachPoint};
use loader::detect::{Report, Scope};
use loader::load::{self, LoadOptions};
use loader::plan;
use loader::session::{Events, Flow, MapSpec, ProgramSpec, Session, SessionError, Setup};
use probes::MaxEntries;
use probes::asm::{Builder, JmpOp, Reg::*, Size};

/// Records and lines are not expected: counts only.
struct Quiet;

impl Events for Quiet {
    type Error = SessionError;
    fn sample(&mut self, _cpu: Option<u32>, _data: &[u8]) -> Result<Flow, SessionError> {
        Ok(Flow::Continue)
    }
    fn lost(&mut self, _cpu: u32, _count: u64) {}
    fn line(&mut self, _line: &str) -> Result<Flow, SessionError> {
        Ok(Flow::Continue)
    }
    fn idle(&mut self) -> Result<(), SessionError> {
        Ok(())
    }
}

/// `counts[7] = 42` each time it runs.
fn writer() -> Builder {
    let mut b = Builder::new();
    b.store(Size::W, R10, -4, 7);
    b.store(Size::DW, R10, -16, 42);
    b.ld_map(R1, "counts");
    b.mov(R2, R10);
    b.add(R2, -4);
    b.mov(R3, R10);
    b.add(R3, -16);
    b.mov(R4, 0);
    b.call(Helper::MapUpdateElem);
    b.mov(R0, 0);
    b.exit();
    b
}

/// `ticks[0] += 1` on this CPU.
fn ticker() -> Builder {
    let mut b = Builder::new();
    b.store(Size::W, R10, -4, 0);
    b.ld_map(R1, "ticks");
    b.mov(R2, R10);
    b.add(R2, -4);
    b.call(Helper::MapLookupElem);
    let out = b.new_label("out");
    b.jump(JmpOp::Eq, R0, 0, out);
    b.load(Size::DW, R1, R0, 0);
    b.add(R1, 1);
    b.store(Size::DW, R0, 0, R1);
    b.bind(out);
    b.mov(R0, 0);
    b.exit();
    b
}

fn main() -> ExitCode {
    match smoke() {
        Ok(()) => {
            println!("session smoke: ok");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("session smoke: {err}");
            ExitCode::FAILURE
        }
    }
}

fn smoke() -> Result<(), Box<dyn std::error::Error>> {
    let mut report = Report::detect(Scope::Start);
    let basic = *report.basic()?;
    let mut session = Session::new(Setup {
        attach: plan::attach_mechanism(&report, AttachMode::Auto)?,
        load: LoadOptions {
            kern_version: report.kern_version(),
            names: basic.names,
        },
        tracefs: report.tracefs.clone(),
        ring_pages: 8,
        clone_fix: "",
    })?;
    session.create_maps([
        MapSpec {
            name: "counts".into(),
            map_type: map_type::HASH,
            key_size: 4,
            value_size: 8,
            max_entries: MaxEntries::Fixed(16),
            flags: 0,
        },
        MapSpec {
            name: "ticks".into(),
            map_type: map_type::PERCPU_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: MaxEntries::Fixed(1),
            flags: 0,
        },
    ])?;
    let programs = [
        (
            "writer",
            writer(),
            AttachPoint::Tracepoint {
                category: "sched".into(),
                name: "sched_process_fork".into(),
            },
        ),
        (
            "ticker",
            ticker(),
            AttachPoint::CpuClock {
                period_ns: 1_000_000,
            },
        ),
    ];
    for (name, builder, point) in programs {
        let program = builder.finish()?;
        let insns = program.encode(|map| session.map(map).map(|m| m.raw()))?;
        session.load(
            &ProgramSpec {
                name,
                point,
                insns: &insns,
                license: load::GPL,
                disassembly: &program,
            },
            &mut report,
        )?;
    }
    session.attach_all()?;
    // A fork for the tracepoint; CPU time for the clock.
    session.run_command("true")?;
    let spin_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < spin_until {
        std::hint::spin_loop();
    }
    session.stream(&mut Quiet, Some(Instant::now() + Duration::from_millis(50)))?;

    let counts = session.entries("counts")?;
    let want = vec![(7u32.to_ne_bytes().to_vec(), 42u64.to_ne_bytes().to_vec())];
    if counts != want {
        return Err(format!("counts: {counts:?}, expected {want:?}").into());
    }
    let ticks = session.entries("ticks")?;
    let [(key, values)] = ticks.as_slice() else {
        return Err(format!("ticks: {ticks:?}, expected one entry").into());
    };
    let per_cpu: Vec<u64> = values
        .chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .collect();
    if key != &0u32.to_ne_bytes() || per_cpu.iter().sum::<u64>() == 0 {
        return Err(format!("ticks: key {key:?}, per CPU {per_cpu:?}: no tick counted").into());
    }
    println!("ticks per CPU: {per_cpu:?}");
    let counts_map = session.map("counts").ok_or("no counts map")?;
    if !counts_map.delete(&7u32.to_ne_bytes())? || !session.entries("counts")?.is_empty() {
        return Err("counts[7] was not deleted".into());
    }
    Ok(())
}
