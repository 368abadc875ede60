//! Creating maps and loading programs, with the verifier log on rejection,
//! and the feature probes that need a test load (helpers, object names).

use std::ffi::CStr;
use std::fmt;
use std::os::fd::OwnedFd;

use kernel_headers::bpf::{Helper, PSEUDO_MAP_VALUE, RawInsn, class, jmp, map_flags, map_type};
use kernel_headers::bpf_attr::{LOG_SIZE_MAX, log_level};
use probes::asm::{Builder, Reg, Size};

use crate::attrs;
use crate::sys::{self, MapFd, SysError};

/// The license of nobtf's own programs (and its feature probes): the
/// helpers they call are GPL-only.
pub const GPL: &CStr = c"GPL";
/// First verifier log buffer; four times larger on each ENOSPC, up to
/// `LOG_SIZE_MAX`.
const LOG_START: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("creating map `{name}`: {err}")]
    Map { name: String, err: SysError },
    #[error(transparent)]
    Rejected(Box<Rejection>),
    #[error("loading program `{name}`: {err}")]
    Load { name: String, err: SysError },
}

/// A verifier rejection: the kernel's own log next to what nobtf sent.
#[derive(Debug)]
pub struct Rejection {
    pub name: String,
    pub err: SysError,
    /// The license the program was loaded with.
    pub license: String,
    pub log: String,
    pub disassembly: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the kernel's verifier rejected program `{}` ({})",
            self.name, self.err
        )?;
        if NOT_GPL.iter().any(|text| self.log.contains(text)) {
            write!(
                f,
                ": the license is {:?}: GPL-only helpers need a GPL-compatible license",
                self.license
            )?;
        }
        writeln!(f)?;
        writeln!(f, "--- verifier log ---")?;
        writeln!(f, "{}", self.log.trim_end())?;
        writeln!(f, "--- program ---")?;
        write!(f, "{}", self.disassembly.trim_end())
    }
}

impl std::error::Error for Rejection {}

/// What the verifier says of a GPL-only helper called under another
/// license: "cannot call GPL-restricted function from non-GPL compatible
/// program" on newer kernels, "cannot call GPL only function from
/// proprietary program" on older ones (4.14 among them).
const NOT_GPL: [&str; 2] = [
    "from non-GPL compatible program",
    "GPL only function from proprietary program",
];

/// How a program is loaded on this kernel.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// LINUX_VERSION_CODE, checked for kprobes before 5.0.
    pub kern_version: u32,
    /// Whether the kernel takes `prog_name`/`map_name` (4.15+).
    pub names: bool,
}

/// The shape of a map to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapShape {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

/// Creates a map; `slots` is how many values one lookup returns (the
/// possible CPUs for a per-CPU map, else 1).
pub fn create_map(
    name: &str,
    shape: MapShape,
    names: bool,
    slots: u32,
) -> Result<MapFd, LoadError> {
    let attr = attrs::map_create(
        shape.map_type,
        shape.key_size,
        shape.value_size,
        shape.max_entries,
        shape.map_flags,
        names.then_some(name),
    );
    sys::map_create(&attr, slots).map_err(|err| LoadError::Map {
        name: name.into(),
        err,
    })
}

/// Loads a program of `prog_type` with no log first (cheap, and what
/// succeeds nearly always); on a rejection loads again with a log, growing
/// the buffer until it fits. The kernel itself decides whether `license` is
/// GPL-compatible.
pub fn load_program(
    name: &str,
    (prog_type, expected_attach_type): (u32, u32),
    insns: &[RawInsn],
    license: &CStr,
    disassembly: &dyn fmt::Display,
    opts: LoadOptions,
) -> Result<OwnedFd, LoadError> {
    let prog_name = opts.names.then_some(name);
    let mut attr = attrs::prog_load(prog_type, opts.kern_version, prog_name, log_level::OFF);
    attr.expected_attach_type = expected_attach_type;
    let first = match sys::prog_load(&attr, insns, license, None) {
        Ok(fd) => return Ok(fd),
        Err(err) => err,
    };
    // Only a verifier rejection (EACCES/EINVAL) has a log worth fetching.
    if !matches!(first.errno(), Some(libc::EACCES | libc::EINVAL)) {
        return Err(LoadError::Load {
            name: name.into(),
            err: first,
        });
    }
    let (err, log) = load_with_log(&attr, insns, license, first);
    Err(LoadError::Rejected(Box::new(Rejection {
        name: name.into(),
        err,
        license: license.to_string_lossy().into_owned(),
        log,
        disassembly: disassembly.to_string(),
    })))
}

/// Retries a failed load with `log_level` 1; returns the final error and the
/// log as the kernel wrote it.
fn load_with_log(
    attr: &kernel_headers::bpf_attr::ProgLoadAttr,
    insns: &[RawInsn],
    license: &CStr,
    first: SysError,
) -> (SysError, String) {
    let mut attr = *attr;
    attr.log_level = log_level::BASIC;
    let mut size = LOG_START;
    loop {
        let mut buf = vec![0u8; size];
        match sys::prog_load(&attr, insns, license, Some(&mut buf)) {
            // Loading with a log succeeded where it failed without: report
            // the first error; nothing else to show.
            Ok(_) => {
                return (
                    first,
                    String::from("(the load succeeded when retried with a log)"),
                );
            }
            Err(err) if err.errno() == Some(libc::ENOSPC) && size < LOG_SIZE_MAX as usize => {
                size = (size * 4).min(LOG_SIZE_MAX as usize);
            }
            Err(err) => {
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                return (err, String::from_utf8_lossy(&buf[..end]).into_owned());
            }
        }
    }
}

/// The opcode of a call (a helper's, or BPF-to-BPF with `src` 1).
pub const CALL: u8 = class::JMP | jmp::CALL;

/// The helpers a program calls, each once (BPF-to-BPF calls and unknown
/// ids are not helpers nobtf can name).
pub fn called_helpers(insns: &[RawInsn]) -> Vec<Helper> {
    let mut helpers = Vec::new();
    for insn in insns {
        if insn.code != CALL || insn.src() != 0 {
            continue;
        }
        if let Some(helper) = Helper::from_id(insn.imm as u32)
            && !helpers.contains(&helper)
        {
            helpers.push(helper);
        }
    }
    helpers
}

/// Whether a helper can be called from a kprobe program on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Yes,
    No,
    /// The probe itself failed (e.g. no permission to load anything).
    Unknown(String),
}

/// A test program that calls only `helper`. The verifier looks the helper up
/// before it checks arguments, so "unknown/invalid func" means absent and any
/// other outcome means present (libbpf probes the same way).
fn helper_probe(helper: Helper) -> Vec<RawInsn> {
    let mut b = Builder::new();
    b.call(helper);
    b.mov(Reg::R0, 0);
    b.exit();
    b.finish()
        .and_then(|insns| insns.encode(|_| None))
        .expect("a call, a mov and an exit always assemble")
}

pub fn probe_helper(helper: Helper, kern_version: u32) -> Support {
    let insns = helper_probe(helper);
    let attr = attrs::prog_load_kprobe(kern_version, None, log_level::BASIC);
    let mut buf = vec![0u8; LOG_START];
    match sys::prog_load(&attr, &insns, GPL, Some(&mut buf)) {
        Ok(_) => Support::Yes,
        Err(err) => {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let log = String::from_utf8_lossy(&buf[..end]);
            if log.contains("invalid func") || log.contains("unknown func") {
                Support::No
            } else if log.is_empty() {
                Support::Unknown(err.to_string())
            } else {
                Support::Yes
            }
        }
    }
}

/// Whether this kernel loads the unlink probes' comm read through
/// `bpf_get_current_task_btf` at `comm_offset` (the very instructions, by
/// `probes::unlink::copy_comm`): the helper (5.11+), the kernel's BTF, and
/// a verifier that takes 8-byte loads inside `char comm[16]`.
pub fn probe_task_comm(kern_version: u32, comm_offset: i16) -> bool {
    let mut b = Builder::new();
    let comm = probes::unlink::CommRead::TaskBtf { comm_offset };
    probes::unlink::copy_comm(&mut b, comm, Reg::R10, -16);
    b.mov(Reg::R0, 0);
    b.exit();
    let Ok(insns) = b.finish().and_then(|insns| insns.encode(|_| None)) else {
        return false;
    };
    let attr = attrs::prog_load_kprobe(kern_version, None, log_level::OFF);
    sys::prog_load(&attr, &insns, GPL, None).is_ok()
}

/// Whether this kernel creates a BPF ring buffer (5.8+), by creating the
/// smallest one (a page) and dropping it.
pub fn probe_ring_buffer() -> bool {
    // 32-bit ARM keeps the perf rings: with the ring buffer, nobtf hung in
    // debian-6.1-armhf's VM (loader_check_and_dump, the canary's run), and
    // the reader was measured on 64-bit kernels only.
    if cfg!(target_pointer_width = "32") {
        return false;
    }
    let shape = MapShape {
        map_type: kernel_headers::bpf::map_type::RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: sys::page_size() as u32,
        map_flags: 0,
    };
    create_map("ring_probe", shape, false, 1).is_ok()
}

/// Whether this kernel attaches one kprobe program to many functions
/// through a kprobe_multi link (5.18+, CONFIG_FPROBE), by trying: the
/// trivial program loaded for it, linked to one address read from page
/// zero. A kernel that has such links fails copying it (EFAULT) before it
/// looks anything up; one without them refuses the attach type or the link
/// (EINVAL, EOPNOTSUPP) first. Nothing is attached either way. (A function
/// name no kernel has, looked up instead, cost a scan of all kallsyms:
/// 89 ms of a start under emulation.)
pub fn probe_kprobe_multi(kern_version: u32) -> Result<(), String> {
    /// Never mapped: below every kernel's mmap_min_addr default.
    const UNMAPPED: u64 = 8;
    let insns = trivial_program();
    let mut attr = attrs::prog_load_kprobe(kern_version, None, log_level::OFF);
    attr.expected_attach_type = kernel_headers::bpf::attach_type::TRACE_KPROBE_MULTI;
    let prog = sys::prog_load(&attr, &insns, GPL, None).map_err(|e| e.to_string())?;
    match sys::link_create_kprobe_multi_at(std::os::fd::AsFd::as_fd(&prog), UNMAPPED) {
        Err(err) if err.errno() == Some(libc::EFAULT) => Ok(()),
        Err(err) => Err(err.to_string()),
        Ok(_) => Err("a link to an address at page zero was made".into()),
    }
}

/// The smallest valid kprobe program: `r0 = 0; exit`.
fn trivial_program() -> Vec<RawInsn> {
    let mut b = Builder::new();
    b.mov(Reg::R0, 0);
    b.exit();
    b.finish()
        .and_then(|insns| insns.encode(|_| None))
        .expect("a mov and an exit always assemble")
}

/// What loading the trivial program says about this kernel.
#[derive(Debug, Clone, Copy)]
pub struct BasicLoad {
    /// Whether object names are accepted (4.15+).
    pub names: bool,
}

/// Loads `r0 = 0; exit` with a name, then without: tells whether bpf(2)
/// works at all (ENOSYS, EPERM), whether kern_version is right, and names.
pub fn probe_basic(kern_version: u32) -> Result<BasicLoad, SysError> {
    let insns = trivial_program();
    let named = attrs::prog_load_kprobe(kern_version, Some("nobtf_probe"), log_level::OFF);
    match sys::prog_load(&named, &insns, GPL, None) {
        Ok(_) => Ok(BasicLoad { names: true }),
        Err(err) if matches!(err.errno(), Some(libc::EINVAL | libc::E2BIG)) => {
            let plain = attrs::prog_load_kprobe(kern_version, None, log_level::OFF);
            sys::prog_load(&plain, &insns, GPL, None)?;
            Ok(BasicLoad { names: false })
        }
        Err(err) => Err(err),
    }
}

/// What global data needs of the kernel (5.2+ in mainline), asked by
/// trying it rather than by version: backports and distro kernels differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalData {
    /// A program may address an array map's value with `ld_imm64`
    /// (`BPF_PSEUDO_MAP_VALUE`): global data as maps.
    pub map_values: bool,
    /// Maps take `BPF_F_RDONLY_PROG` (programs cannot write them).
    pub rdonly_prog: bool,
}

/// The one-entry array map the global data probes use.
fn probe_array(flags: u32) -> Result<MapFd, LoadError> {
    let shape = MapShape {
        map_type: map_type::ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        map_flags: flags,
    };
    create_map("nobtf_probe", shape, false, 1)
}

/// `r1 = &map[0] + 0; *(u64 *)(r1 + 0) = 0; r0 = 0; exit`, as libbpf probes
/// global data: only a kernel with map-value relocations accepts it.
fn map_value_probe(fd: i32) -> Vec<RawInsn> {
    let mut b = Builder::new();
    b.ld_map(Reg::R1, "probe");
    b.store(Size::DW, Reg::R1, 0, 0);
    b.mov(Reg::R0, 0);
    b.exit();
    let mut insns = b
        .finish()
        .and_then(|insns| insns.encode(|_| Some(fd)))
        .expect("a map load, a store, a mov and an exit always assemble");
    // The map load's first slot: a value address instead of the map itself
    // (the second slot's imm, the offset, is already 0).
    insns[0] = RawInsn::new(insns[0].code, insns[0].dst(), PSEUDO_MAP_VALUE, 0, fd);
    insns
}

pub fn probe_global_data(kern_version: u32) -> GlobalData {
    let map_values = probe_array(0).is_ok_and(|map| {
        let attr = attrs::prog_load_kprobe(kern_version, None, log_level::OFF);
        sys::prog_load(&attr, &map_value_probe(map.raw()), GPL, None).is_ok()
    });
    GlobalData {
        map_values,
        rdonly_prog: probe_array(map_flags::F_RDONLY_PROG).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_data_probe_stores_through_a_map_value() {
        let insns = map_value_probe(7);
        assert_eq!(insns.len(), 5, "ld_imm64 is two slots");
        assert_eq!((insns[0].code, insns[0].src(), insns[0].imm), (0x18, 2, 7));
        assert_eq!(insns[1].imm, 0, "value offset 0");
        assert_eq!((insns[2].code, insns[2].dst(), insns[2].off), (0x7a, 1, 0));
    }

    #[test]
    fn probe_programs_are_tiny() {
        let insns = helper_probe(Helper::ProbeReadKernel);
        assert_eq!(insns.len(), 3);
        assert_eq!(insns[0].imm, 113);
        assert_eq!(trivial_program().len(), 2);
    }

    #[test]
    fn rejection_shows_log_and_program() {
        let rejection = Rejection {
            name: "unlink_entry".into(),
            err: SysError {
                call: "bpf(BPF_PROG_LOAD)",
                err: std::io::Error::from_raw_os_error(libc::EACCES),
            },
            license: "GPL".into(),
            log: "0: (85) call bpf_probe_read_kernel#113\nunknown func\n".into(),
            disassembly: "0: (85) call bpf_probe_read_kernel#113\n".into(),
        };
        let text = rejection.to_string();
        assert!(text.starts_with("the kernel's verifier rejected program `unlink_entry` (bpf(BPF_PROG_LOAD): Permission denied"));
        assert!(text.contains("--- verifier log ---\n0: (85)"));
        assert!(text.contains("--- program ---\n0: (85)"));
        assert!(!text.contains("license"));
        let not_gpl = Rejection {
            license: "Proprietary".into(),
            log: "0: (85) call bpf_trace_printk#6\ncannot call GPL-restricted function from non-GPL compatible program\n".into(),
            ..rejection
        };
        let hint =
            "): the license is \"Proprietary\": GPL-only helpers need a GPL-compatible license\n";
        assert!(not_gpl.to_string().contains(hint), "{not_gpl}");
        // Before 4.15 the verifier words it differently.
        let old_kernel = Rejection {
            log: "0: (85) call bpf_trace_printk#6\ncannot call GPL only function from proprietary program\n".into(),
            ..not_gpl
        };
        assert!(old_kernel.to_string().contains(hint), "{old_kernel}");
        assert!(old_kernel.to_string().starts_with("the kernel's verifier rejected program `unlink_entry` (bpf(BPF_PROG_LOAD): Permission denied (os error 13)): the license is \"Proprietary\": GPL-only helpers need a GPL-compatible license\n"), "{old_kernel}");
    }

    #[test]
    fn helpers_called_are_named_once() {
        let call = |id: i32, src: u8| RawInsn::new(CALL, 0, src, 0, id);
        let insns = [
            call(Helper::ProbeRead.id() as i32, 0),
            call(Helper::PerfEventOutput.id() as i32, 0),
            call(Helper::ProbeRead.id() as i32, 0),
            call(5, 1),
            call(9999, 0),
        ];
        assert_eq!(
            called_helpers(&insns),
            [Helper::ProbeRead, Helper::PerfEventOutput]
        );
    }
}
