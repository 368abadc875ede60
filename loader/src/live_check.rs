//! Live checks: before a trace program's first record, nobtf proves on the
//! running kernel the profile's offsets of the fields the program reads,
//! as the canary (`canary.rs`) proves `filename` for `nobtf run unlink`.
//! A wrong profile prints plausible garbage; a check turns it into a
//! refusal naming the field.
//!
//! Also here: the profile's identity against the running kernel (another
//! release or architecture is refused; another build of the same release
//! is allowed only when the live checks pass).

use profile::{Identity, Profile, Running};

use crate::detect::Report;
use crate::plan::{PlanError, ProfileChoiceError};
use crate::sys;

/// Refuses a profile of another release or architecture; another build of
/// this release is said (the live checks then decide).
pub fn identity(profile: &Profile, shown: &str, report: &Report) -> Result<Identity, PlanError> {
    let Some(running) = running_kernel(report) else {
        return Ok(Identity::ReleaseOnly);
    };
    let identity = profile
        .identity(
            shown,
            &Running {
                release: &running.0,
                version: &running.1,
                machine: kernel_headers::pt_regs::NATIVE.arch,
            },
        )
        .map_err(ProfileChoiceError::from)?;
    if let Identity::OtherBuild { profile, running } = &identity {
        eprintln!(
            "nobtf: offsets profile {shown} was made for another build of this release ({profile}; this kernel: {running}): it is used only if the live checks pass"
        );
    }
    Ok(identity)
}

/// The running kernel's `uname -r` and `uname -v`.
fn running_kernel(report: &Report) -> Option<(String, String)> {
    let release = report.kernel.as_ref().ok()?.release.clone();
    let version = sys::uname().ok()?.1;
    Some((release, version))
}
