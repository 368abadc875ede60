//! The disassembly of every variant, compared with probes/tests/golden/*.txt.
//!
//! After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p probes --test golden` and review the diff.

mod common;

use std::path::PathBuf;

use common::*;
use probes::unlink::{self, CommRead, Output, Readers};

fn slug(output: Output, read: Readers) -> &'static str {
    match (output, read) {
        (Output::PerfEvents, Readers::ProbeReadStr) => "perf-probe_read",
        (Output::PerfEvents, Readers::Split) => "perf-probe_read_kernel",
        (Output::TracePrintk, Readers::ProbeReadStr) => "printk-probe_read",
        (Output::TracePrintk, Readers::Split) => "printk-probe_read_kernel",
        (Output::PerfEvents, Readers::ProbeRead) => "perf-probe_read_fixed",
        (Output::TracePrintk, Readers::ProbeRead) => "printk-probe_read_fixed",
        // The ring buffer (5.8+) comes after the reader split (5.5).
        (Output::RingBuffer, Readers::Split) => "ring-probe_read_kernel",
        (Output::RingBuffer, _) => {
            unreachable!("no kernel has the ring buffer without the split readers")
        }
    }
}

fn variants() -> Vec<(String, probes::Program)> {
    let mut out = Vec::new();
    let ring = (Output::RingBuffer, Readers::Split);
    let pairs = OUTPUTS
        .into_iter()
        .flat_map(|output| READS.into_iter().map(move |read| (output, read)));
    for (output, read) in pairs.chain([ring]) {
        {
            let c = choices(output, read);
            let slug = slug(output, read);
            for (arg, profile) in [
                ("filename", profile_5_4()),
                ("user_path", profile_user_path()),
            ] {
                let entry = unlink::entry(&profile, &c).unwrap();
                out.push((format!("entry-{slug}-{arg}"), entry));
                let exit = unlink::exit(&profile, &c).unwrap();
                out.push((format!("exit-{slug}-{arg}"), exit));
            }
        }
    }
    // The comm read through the task's BTF pointer (5.11+ with BTF), at
    // debian-6.12's offset.
    let c = unlink::Choices {
        comm: CommRead::TaskBtf { comm_offset: 2976 },
        ..choices(ring.0, ring.1)
    };
    let profile = profile_5_4();
    out.push((
        "entry-ring-task_btf-filename".into(),
        unlink::entry(&profile, &c).unwrap(),
    ));
    out.push((
        "exit-ring-task_btf-filename".into(),
        unlink::exit(&profile, &c).unwrap(),
    ));
    out
}

#[test]
fn disassembly_matches_golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let cases = variants()
        .into_iter()
        .map(|(name, program)| (format!("{name}.txt"), program.to_string()));
    if let Err(differ) = probes::golden::compare(&dir, cases) {
        panic!("differ from golden: {differ:?}; UPDATE_GOLDEN=1 regenerates");
    }
}

#[test]
fn every_variant_passes_the_static_check_and_fits_old_kernels() {
    for (name, program) in variants() {
        let raw = program
            .encode(|_| Some(3))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(raw.len(), program.len(), "{name}");
        assert!(
            program.name().len() < kernel_headers::bpf::OBJ_NAME_LEN,
            "{name}"
        );
        assert_eq!(program.function(), "do_unlinkat");
    }
}
