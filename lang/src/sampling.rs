//! Sampling probes: `profile:hz:N`, `profile:s|ms|us:N`, `software:EVENT:N`
//! and `hardware:EVENT:N`, each a perf event on every online CPU that runs
//! the program when it overflows (bpftrace 0.23's events, aliases and
//! default periods).

use kernel_headers::KernelVersion;
use kernel_headers::bpf::PERF_EVENT_PROGRAMS_SINCE;
use kernel_headers::perf::{self, hw, sw};

use crate::diag::{Error, Span};
use crate::providers::AttachPoint;

/// A perf event the loader opens on each online CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampling {
    /// The probe as bpftrace names it (`profile:hz:99`, `software:faults:100`).
    pub name: String,
    /// `perf_event_attr.type` and `.config`.
    pub event_type: u32,
    pub config: u64,
    /// Events between samples, or samples per second when `freq`.
    pub period: u64,
    pub freq: bool,
}

/// A named perf event: its name, perf's alias (or ""), its `config`, and the
/// period bpftrace takes when the probe gives none.
struct Event {
    name: &'static str,
    alias: &'static str,
    config: u64,
    default_period: u64,
}

const fn event(name: &'static str, alias: &'static str, config: u64, period: u64) -> Event {
    Event {
        name,
        alias,
        config,
        default_period: period,
    }
}

const SOFTWARE: &[Event] = &[
    event("alignment-faults", "", sw::ALIGNMENT_FAULTS, 1),
    event("bpf-output", "", sw::BPF_OUTPUT, 1),
    event("context-switches", "cs", sw::CONTEXT_SWITCHES, 1000),
    event("cpu-clock", "cpu", sw::CPU_CLOCK, 1_000_000),
    event("cpu-migrations", "", sw::CPU_MIGRATIONS, 1),
    event("dummy", "", sw::DUMMY, 1),
    event("emulation-faults", "", sw::EMULATION_FAULTS, 1),
    event("major-faults", "", sw::PAGE_FAULTS_MAJ, 1),
    event("minor-faults", "", sw::PAGE_FAULTS_MIN, 100),
    event("page-faults", "faults", sw::PAGE_FAULTS, 100),
    event("task-clock", "", sw::TASK_CLOCK, 1),
];

const HARDWARE: &[Event] = &[
    event("backend-stalls", "", hw::STALLED_CYCLES_BACKEND, 1_000_000),
    event(
        "branch-instructions",
        "branches",
        hw::BRANCH_INSTRUCTIONS,
        100_000,
    ),
    event("branch-misses", "", hw::BRANCH_MISSES, 100_000),
    event("bus-cycles", "", hw::BUS_CYCLES, 100_000),
    event("cache-misses", "", hw::CACHE_MISSES, 1_000_000),
    event("cache-references", "", hw::CACHE_REFERENCES, 1_000_000),
    event("cpu-cycles", "cycles", hw::CPU_CYCLES, 1_000_000),
    event(
        "frontend-stalls",
        "",
        hw::STALLED_CYCLES_FRONTEND,
        1_000_000,
    ),
    event("instructions", "", hw::INSTRUCTIONS, 1_000_000),
    event("ref-cycles", "", hw::REF_CPU_CYCLES, 1_000_000),
];

/// `profile:UNIT:N`: a CPU clock on each CPU, `hz` by frequency, `s`, `ms`
/// and `us` by period.
pub fn profile(rest: &[String]) -> Option<Sampling> {
    let [unit, n] = rest else { return None };
    let n: u64 = n.parse().ok().filter(|&n| n > 0)?;
    let (period, freq) = match unit.as_str() {
        "hz" => (n, true),
        "s" => (n.checked_mul(1_000_000_000)?, false),
        "ms" => (n.checked_mul(1_000_000)?, false),
        "us" => (n.checked_mul(1_000)?, false),
        _ => return None,
    };
    Some(Sampling {
        name: format!("profile:{unit}:{n}"),
        event_type: perf::PERF_TYPE_SOFTWARE,
        config: sw::CPU_CLOCK,
        period,
        freq,
    })
}

/// `software:EVENT[:N]`.
pub fn software(rest: &[String]) -> Option<Sampling> {
    named("software", perf::PERF_TYPE_SOFTWARE, SOFTWARE, rest)
}

/// `hardware:EVENT[:N]`.
pub fn hardware(rest: &[String]) -> Option<Sampling> {
    named("hardware", perf::PERF_TYPE_HARDWARE, HARDWARE, rest)
}

fn named(provider: &str, event_type: u32, table: &[Event], rest: &[String]) -> Option<Sampling> {
    let (written, period) = match rest {
        [name] => (name, None),
        [name, n] => (name, Some(n.parse::<u64>().ok()?)),
        _ => return None,
    };
    let event = table
        .iter()
        .find(|e| e.name == written || (!e.alias.is_empty() && e.alias == written))?;
    // bpftrace takes a period of 0 as "the default".
    let period = period.filter(|&n| n > 0);
    Some(Sampling {
        name: match period {
            Some(n) => format!("{provider}:{written}:{n}"),
            None => format!("{provider}:{written}"),
        },
        event_type,
        config: event.config,
        period: period.unwrap_or(event.default_period),
        freq: false,
    })
}

/// A probe that runs on a perf event (`interval:`, `profile:`,
/// `software:`, `hardware:`) needs BPF programs on perf events (4.9+).
pub fn check_kernel(point: &AttachPoint, release: KernelVersion, span: Span) -> Result<(), Error> {
    let on_perf_event = matches!(
        point,
        AttachPoint::Interval { .. } | AttachPoint::Sampling(_)
    );
    if on_perf_event && release < PERF_EVENT_PROGRAMS_SINCE {
        return Err(Error::at(
            span,
            format!(
                "`{point}` runs a BPF program on a perf event, which needs Linux {}.{} or later (this kernel is {release})",
                PERF_EVENT_PROGRAMS_SINCE.major, PERF_EVENT_PROGRAMS_SINCE.minor
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_event_probes_need_4_9() {
        let point = AttachPoint::Sampling(profile(&parts("hz:99")).unwrap());
        let old = check_kernel(&point, KernelVersion::new(4, 8, 0), Span::default());
        assert!(
            old.unwrap_err()
                .message
                .contains("needs Linux 4.9 or later")
        );
        assert!(check_kernel(&point, KernelVersion::new(4, 9, 0), Span::default()).is_ok());
        let kprobe = AttachPoint::Kprobe("f".into());
        assert!(check_kernel(&kprobe, KernelVersion::new(4, 1, 0), Span::default()).is_ok());
    }

    fn parts(text: &str) -> Vec<String> {
        text.split(':').map(String::from).collect()
    }

    #[test]
    fn profile_takes_a_frequency_or_a_period() {
        let hz = profile(&parts("hz:99")).unwrap();
        assert_eq!(
            (hz.period, hz.freq, hz.name.as_str()),
            (99, true, "profile:hz:99")
        );
        assert_eq!((hz.event_type, hz.config), (1, 0));
        assert_eq!(profile(&parts("ms:10")).unwrap().period, 10_000_000);
        assert_eq!(profile(&parts("us:5")).unwrap().period, 5_000);
        assert_eq!(profile(&parts("s:1")).unwrap().period, 1_000_000_000);
        assert!(profile(&parts("hz:0")).is_none());
        assert!(profile(&parts("m:1")).is_none());
        assert!(profile(&parts("hz")).is_none());
    }

    #[test]
    fn events_by_name_or_alias_with_bpftraces_default_periods() {
        let faults = software(&parts("faults")).unwrap();
        assert_eq!((faults.config, faults.period), (sw::PAGE_FAULTS, 100));
        assert_eq!(faults.name, "software:faults");
        let cs = software(&parts("context-switches:7")).unwrap();
        assert_eq!(
            (cs.config, cs.period, cs.freq),
            (sw::CONTEXT_SWITCHES, 7, false)
        );
        assert_eq!(software(&parts("cpu:0")).unwrap().period, 1_000_000);
        let cycles = hardware(&parts("cycles:1000")).unwrap();
        assert_eq!((cycles.event_type, cycles.config), (0, hw::CPU_CYCLES));
        assert!(software(&parts("cycles")).is_none());
        assert!(hardware(&parts("")).is_none());
    }
}
