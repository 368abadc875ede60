//! Kernel versions as the kernel encodes them (`LINUX_VERSION_CODE`), which
//! `BPF_PROG_LOAD` checks for kprobes before 5.0.

use core::fmt;

/// A kernel version: the leading `X.Y.Z` of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> KernelVersion {
        KernelVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses the leading `X.Y[.Z]` of a release string such as
    /// `5.10.0-32-amd64` or `4.19.260`.
    pub fn parse(text: &str) -> Option<KernelVersion> {
        let mut nums = text.split(|c: char| !c.is_ascii_digit());
        let major = nums.next()?.parse().ok()?;
        let minor = nums.next()?.parse().ok()?;
        // The third number only counts when it follows a dot directly.
        let rest = text.split_once('.')?.1.split_once('.').map(|(_, r)| r);
        let patch = rest
            .and_then(|r| {
                let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                r[..end].parse().ok()
            })
            .unwrap_or(0);
        Some(KernelVersion {
            major,
            minor,
            patch,
        })
    }

    /// LINUX_VERSION_CODE, with the sublevel clamped to 255 as the kernel
    /// does since 4.9.256/4.14.218 overflowed it.
    pub fn code(self) -> u32 {
        (self.major << 16) + (self.minor << 8) + self.patch.min(255)
    }

    pub fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// `X.Y`, as a release series is named (a helper's first release).
    pub fn series(self) -> impl fmt::Display {
        Series(self)
    }
}

struct Series(KernelVersion);

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0.major, self.0.minor)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::format;

    #[test]
    fn versions_and_codes() {
        let v = KernelVersion::parse("5.10.0-32-amd64").unwrap();
        assert_eq!(v, KernelVersion::new(5, 10, 0));
        assert_eq!(
            KernelVersion::parse("4.19.260").unwrap().code(),
            (4 << 16) + (19 << 8) + 255
        );
        assert_eq!(KernelVersion::parse("5.4").unwrap().code(), 0x050400);
        assert_eq!(KernelVersion::parse("6.1.0-rc1").unwrap().patch, 0);
        assert_eq!(KernelVersion::parse("4.14.5").unwrap().code(), 0x040e05);
        assert_eq!(KernelVersion::parse("4.14.").unwrap().patch, 0);
        assert!(KernelVersion::parse("linux").is_none());
        assert!(KernelVersion::new(4, 11, 0) > KernelVersion::new(4, 2, 9));
        assert_eq!(format!("{}", KernelVersion::new(5, 5, 0)), "5.5.0");
        assert_eq!(format!("{}", KernelVersion::new(5, 5, 0).series()), "5.5");
    }
}
