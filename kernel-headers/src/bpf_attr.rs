//! `bpf(2)`: the commands and the members of `union bpf_attr` nobtf passes.
//!
//! Each struct is the prefix of one anonymous member of the union, laid out as
//! in `include/uapi/linux/bpf.h`, ending at the last field nobtf fills. The
//! kernel copies `size` bytes and requires every byte it does not know to be
//! zero (E2BIG otherwise), so a caller zeroes the struct and fills only the
//! fields the running kernel has; the `*_SINCE` notes say which those are.

/// `enum bpf_cmd` values nobtf uses.
pub mod cmd {
    pub const BPF_MAP_CREATE: u32 = 0;
    pub const BPF_MAP_LOOKUP_ELEM: u32 = 1;
    pub const BPF_MAP_UPDATE_ELEM: u32 = 2;
    pub const BPF_MAP_DELETE_ELEM: u32 = 3;
    pub const BPF_MAP_GET_NEXT_KEY: u32 = 4;
    pub const BPF_PROG_LOAD: u32 = 5;
    /// 5.2+: makes a map read-only for user space from now on (global
    /// `.rodata` after its one update).
    pub const BPF_MAP_FREEZE: u32 = 22;
    /// 5.7+: a link of a program to where it runs (kprobe_multi: 5.18+).
    pub const BPF_LINK_CREATE: u32 = 28;
}

// Program and map types and the object name length live in `crate::bpf`.
use crate::bpf::OBJ_NAME_LEN as BPF_OBJ_NAME_LEN;

/// `flags` of BPF_MAP_UPDATE_ELEM: create or overwrite.
pub const BPF_ANY: u64 = 0;

/// Verifier log levels (`log_level`). Level 1 prints the instructions the
/// verifier walked and the rejection reason; level 2 adds every state.
pub mod log_level {
    pub const OFF: u32 = 0;
    pub const BASIC: u32 = 1;
    pub const VERBOSE: u32 = 2;
}

/// Bounds of `log_size` every kernel accepts: below 128 or (before 5.2)
/// above `UINT_MAX >> 8` the load fails with EINVAL.
pub const LOG_SIZE_MIN: u32 = 128;
pub const LOG_SIZE_MAX: u32 = u32::MAX >> 8;

/// The BPF_MAP_CREATE member of `union bpf_attr`, up to `map_name`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    /// 4.12+.
    pub inner_map_fd: u32,
    /// 4.14+.
    pub numa_node: u32,
    /// 4.15+: NUL-terminated.
    pub map_name: [u8; BPF_OBJ_NAME_LEN],
}

/// Bytes of `MapCreateAttr` before `map_name`: what a 4.14 kernel knows.
pub const MAP_CREATE_SIZE_NO_NAME: usize = 28;

/// The BPF_PROG_LOAD member of `union bpf_attr`, up to `prog_name`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    /// Pointer to `insn_cnt` 8-byte instructions.
    pub insns: u64,
    /// Pointer to a NUL-terminated license string.
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    /// Pointer to `log_size` writable bytes, or 0.
    pub log_buf: u64,
    /// Checked against LINUX_VERSION_CODE for kprobe programs before 5.0.
    pub kern_version: u32,
    /// 4.12+.
    pub prog_flags: u32,
    /// 4.15+: NUL-terminated.
    pub prog_name: [u8; BPF_OBJ_NAME_LEN],
    /// 4.15+ (device offload); zero here.
    pub prog_ifindex: u32,
    /// 4.17+: what the program will attach as (`crate::bpf::attach_type`),
    /// checked at load; zero for a plain kprobe.
    pub expected_attach_type: u32,
}

/// Bytes of `ProgLoadAttr` before `prog_name`: what a 4.14 kernel knows.
pub const PROG_LOAD_SIZE_NO_NAME: usize = 48;

/// The BPF_LINK_CREATE member of `union bpf_attr` as a kprobe_multi link
/// takes it (5.18+): one program on `cnt` functions named by `syms` (or at
/// `addrs`), each with an optional cookie.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KprobeMultiLinkAttr {
    pub prog_fd: u32,
    pub target_fd: u32,
    /// `crate::bpf::attach_type::TRACE_KPROBE_MULTI`.
    pub attach_type: u32,
    pub flags: u32,
    /// [`KPROBE_MULTI_RETURN`] for the functions' returns.
    pub kprobe_multi_flags: u32,
    pub cnt: u32,
    /// Pointer to `cnt` pointers to NUL-terminated function names, or 0.
    pub syms: u64,
    /// Pointer to `cnt` addresses, or 0 (with `syms`).
    pub addrs: u64,
    /// Pointer to `cnt` u64 cookies, or 0.
    pub cookies: u64,
}

/// `BPF_F_KPROBE_MULTI_RETURN`: the link fires at the functions' returns.
pub const KPROBE_MULTI_RETURN: u32 = 1;

/// The BPF_MAP_*_ELEM member of `union bpf_attr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapElemAttr {
    pub map_fd: u32,
    // The kernel's `key` is `__aligned_u64`: 4 bytes of padding precede it.
    pub pad: u32,
    /// Pointer to the key.
    pub key: u64,
    /// Pointer to the value (`next_key` for GET_NEXT_KEY).
    pub value: u64,
    pub flags: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn map_create_layout() {
        assert_eq!(offset_of!(MapCreateAttr, max_entries), 12);
        assert_eq!(offset_of!(MapCreateAttr, map_flags), 16);
        assert_eq!(offset_of!(MapCreateAttr, numa_node), 24);
        assert_eq!(offset_of!(MapCreateAttr, map_name), MAP_CREATE_SIZE_NO_NAME);
        assert_eq!(size_of::<MapCreateAttr>(), 44);
    }

    #[test]
    fn prog_load_layout() {
        assert_eq!(offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(offset_of!(ProgLoadAttr, license), 16);
        assert_eq!(offset_of!(ProgLoadAttr, log_level), 24);
        assert_eq!(offset_of!(ProgLoadAttr, log_size), 28);
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, kern_version), 40);
        assert_eq!(offset_of!(ProgLoadAttr, prog_flags), 44);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), PROG_LOAD_SIZE_NO_NAME);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
    }

    #[test]
    fn kprobe_multi_link_layout() {
        assert_eq!(offset_of!(KprobeMultiLinkAttr, attach_type), 8);
        assert_eq!(offset_of!(KprobeMultiLinkAttr, kprobe_multi_flags), 16);
        assert_eq!(offset_of!(KprobeMultiLinkAttr, syms), 24);
        assert_eq!(offset_of!(KprobeMultiLinkAttr, cookies), 40);
        assert_eq!(size_of::<KprobeMultiLinkAttr>(), 48);
    }

    #[test]
    fn map_elem_layout() {
        assert_eq!(offset_of!(MapElemAttr, key), 8);
        assert_eq!(offset_of!(MapElemAttr, value), 16);
        assert_eq!(offset_of!(MapElemAttr, flags), 24);
        assert_eq!(size_of::<MapElemAttr>(), 32);
    }
}
