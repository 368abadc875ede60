//! `nobtf dump unlink`: the programs the plan builds for this kernel,
//! disassembled, with their maps. Needs no privilege: without it the helper
//! probe says "unknown" and the automatic reader is `bpf_probe_read`.

use probes::ProbeKind;

use crate::detect::{Report, Scope};
use crate::plan::{PlanError, Probes, UnlinkRequest};

pub fn dump(request: &UnlinkRequest) -> Result<String, PlanError> {
    let mut report = Report::detect(Scope::Start);
    let probes = Probes::choose(&mut report, request)?;
    let profile = &probes.profile;
    let mut text = String::new();
    for program in probes.programs()? {
        let kind = match program.kind() {
            ProbeKind::Kprobe => "kprobe",
            ProbeKind::Kretprobe => "kretprobe",
        };
        text.push_str(&format!(
            "; {} ({kind} on {}, {} insns, profile {} from {})\n",
            program.name(),
            program.function(),
            program.len(),
            profile.kernel.release,
            profile.source.method
        ));
        for map in program.maps() {
            text.push_str(&format!(
                "; map {}: type {}, key {} B, value {} B\n",
                map.name, map.map_type, map.key_size, map.value_size
            ));
        }
        text.push_str(&program.to_string());
        text.push('\n');
    }
    Ok(text)
}
