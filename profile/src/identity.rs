//! Which kernel a profile describes, against the one running: another
//! release or architecture is refused; another build of the same release
//! (its `uname -v` differs) may differ in layout too, so it is allowed only
//! when the live checks pass.

use crate::model::Profile;

/// The running kernel as `uname` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running<'a> {
    /// `uname -r`.
    pub release: &'a str,
    /// `uname -v`.
    pub version: &'a str,
    /// `uname -m` (`x86_64`, `aarch64`, `armv7l`).
    pub machine: &'a str,
}

/// How far a profile is known to be the running kernel's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Same release, architecture and build string.
    Same,
    /// Same release and architecture; the profile records no build string
    /// (made from BTF, or by an older `offsets`).
    ReleaseOnly,
    /// Same release and architecture, another build: the profile's
    /// `uname -v`, then the kernel's.
    OtherBuild { profile: String, running: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "offsets profile {shown} is for kernel {profile} on {profile_arch}, but this kernel is {running} on {running_arch}: generate one for this kernel with `offsets gen` (docs/offsets.md)"
    )]
    OtherKernel {
        /// The profile as the user named it.
        shown: String,
        profile: String,
        profile_arch: String,
        running: String,
        running_arch: String,
    },
}

/// `uname -m` as a profile's `arch` spells it.
pub fn arch_of_machine(machine: &str) -> &str {
    match machine {
        m if m.starts_with("arm") && m != "arm64" => "arm",
        "arm64" => "aarch64",
        m => m,
    }
}

impl Profile {
    /// Compares the profile's kernel with the running one; `shown` names
    /// the profile in the refusal.
    pub fn identity(&self, shown: &str, running: &Running<'_>) -> Result<Identity, IdentityError> {
        let arch = arch_of_machine(running.machine);
        if self.kernel.release != running.release || self.kernel.arch != arch {
            return Err(IdentityError::OtherKernel {
                shown: shown.to_string(),
                profile: self.kernel.release.clone(),
                profile_arch: self.kernel.arch.clone(),
                running: running.release.to_string(),
                running_arch: arch.to_string(),
            });
        }
        Ok(match &self.kernel.version {
            None => Identity::ReleaseOnly,
            Some(v) if v.trim() == running.version.trim() => Identity::Same,
            Some(v) => Identity::OtherBuild {
                profile: v.clone(),
                running: running.version.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FORMAT_VERSION;
    use crate::model::{KernelInfo, Provenance};

    fn profile(release: &str, arch: &str, version: Option<&str>) -> Profile {
        Profile {
            format: FORMAT_VERSION,
            kernel: KernelInfo {
                version: version.map(str::to_string),
                ..KernelInfo::new(release, arch)
            },
            source: Provenance {
                method: "vmlinux".into(),
                detail: String::new(),
                generator: "test".into(),
            },
            fields: Default::default(),
            functions: Default::default(),
            structs: Default::default(),
            enums: Default::default(),
        }
    }

    const RUNNING: Running<'static> = Running {
        release: "5.10.223",
        version: "#1 SMP Mon Dec 1 00:00:00 UTC 2026",
        machine: "x86_64",
    };

    #[test]
    fn same_build_same_release_other_build() {
        let same = profile("5.10.223", "x86_64", Some(RUNNING.version));
        assert_eq!(same.identity("p.toml", &RUNNING), Ok(Identity::Same));
        let old = profile("5.10.223", "x86_64", None);
        assert_eq!(old.identity("p.toml", &RUNNING), Ok(Identity::ReleaseOnly));
        let other = profile("5.10.223", "x86_64", Some("#2 SMP PREEMPT"));
        assert_eq!(
            other.identity("p.toml", &RUNNING),
            Ok(Identity::OtherBuild {
                profile: "#2 SMP PREEMPT".into(),
                running: RUNNING.version.into(),
            })
        );
    }

    #[test]
    fn another_release_or_architecture_is_refused_naming_both() {
        let err = profile("4.14.177", "x86_64", None)
            .identity("p.toml", &RUNNING)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "offsets profile p.toml is for kernel 4.14.177 on x86_64, but this kernel is 5.10.223 on x86_64"
            ),
            "{err}"
        );
        let err = profile("5.10.223", "aarch64", None)
            .identity("p.toml", &RUNNING)
            .unwrap_err()
            .to_string();
        assert!(err.contains("5.10.223 on aarch64, but"), "{err}");
        let armv7 = Running {
            machine: "armv7l",
            ..RUNNING
        };
        assert_eq!(
            profile("5.10.223", "arm", None).identity("p.toml", &armv7),
            Ok(Identity::ReleaseOnly)
        );
    }
}
