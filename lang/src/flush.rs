//! The probe that makes the kernel report a trace's last losses. A full
//! perf ring drops records and counts them, but the count reaches the
//! reader (a `PERF_RECORD_LOST`) only ahead of the next record written to
//! that ring. When a trace stops after its rings overflowed, the loader
//! attaches this probe, fires it once on each CPU with a ring (an unlink of
//! a missing file by nobtf itself, pinned to that CPU) and drains: each
//! ring's pending count arrives before the probe's marker record, which the
//! printer, stopped by then, does not show.

use kernel_headers::bpf::{F_CURRENT_CPU, Helper};
use probes::asm::{AluOp, Builder, JmpOp, Reg, Size};

use crate::compile::CompiledProbe;
use crate::output::EVENTS_MAP;
use crate::providers::AttachPoint;

use Reg::*;

/// The marker record: no event has this index.
pub const MARKER: u64 = u64::MAX;

/// The function the loader unlinks through to fire the probe.
pub const FUNCTION: &str = probes::unlink::FUNCTION;

/// A kprobe on [`FUNCTION`] writing a [`MARKER`] record to
/// [`EVENTS_MAP`] when the process `tgid` calls it, and nothing otherwise.
pub fn probe(tgid: u32) -> CompiledProbe {
    let mut b = Builder::new();
    b.mov(R6, R1);
    b.call(Helper::GetCurrentPidTgid);
    b.alu(AluOp::Rsh, R0, 32);
    let out = b.new_label("out");
    b.jump(JmpOp::Ne, R0, tgid as i32, out);
    b.mov(R1, MARKER as i64 as i32);
    b.store(Size::DW, R10, -8, R1);
    b.mov(R1, R6);
    b.ld_map(R2, EVENTS_MAP);
    b.ld_imm64(R3, F_CURRENT_CPU as i64);
    b.mov(R4, R10);
    b.alu(AluOp::Add, R4, -8);
    b.mov(R5, 8);
    b.call(Helper::PerfEventOutput);
    b.bind(out);
    b.mov(R0, 0);
    b.exit();
    CompiledProbe {
        attach: AttachPoint::Kprobe(FUNCTION.into()),
        insns: b
            .finish()
            .expect("the flush probe's labels are all defined"),
        rules: probes::check::Rules::ALL_KERNELS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_encodes_and_passes_the_static_check() {
        let probe = probe(4242);
        assert!(
            probe
                .encode(|name| (name == EVENTS_MAP).then_some(3))
                .is_ok()
        );
        assert!(probe.helpers().contains(&Helper::PerfEventOutput));
    }
}
