//! Where a trace program's uprobes go: the file a `uprobe:BINARY:...`
//! names (a path, a command on PATH, or a library by its bare name, found
//! as the dynamic loader finds it), the functions a wildcard matches in it,
//! and the file offset of each probed symbol or address ([`elf_symbols`]
//! reads the files' bytes).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;

use elf_symbols::Binary;
use lang::Compiled;
use lang::config::MissingProbes;
use lang::providers::AttachPoint as LangPoint;

use super::TraceError;
use crate::attach::uprobe::UserProbe;

/// The dynamic loader's cache.
const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// Where libraries are when the cache has no entry (or no cache exists):
/// the multiarch directories first, as Debian's loader searches them.
fn library_dirs() -> Vec<String> {
    let triplet = match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        _ => "",
    };
    let mut dirs = Vec::new();
    if !triplet.is_empty() {
        dirs.push(format!("/lib/{triplet}"));
        dirs.push(format!("/usr/lib/{triplet}"));
    }
    for dir in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
        dirs.push(dir.to_string());
    }
    dirs
}

/// The user-space files the program's uprobes name, each read and parsed
/// once.
#[derive(Default)]
pub struct UserFiles {
    parsed: RefCell<HashMap<String, Option<Rc<Binary>>>>,
}

impl UserFiles {
    /// `path` parsed, when it is an ELF file a uprobe may go in: a shared
    /// object, or an executable the owner may run.
    fn binary(&self, path: &str) -> Option<Rc<Binary>> {
        if let Some(known) = self.parsed.borrow().get(path) {
            return known.clone();
        }
        let parsed = fs::read(path)
            .ok()
            .and_then(|bytes| Binary::parse(&bytes).ok())
            .filter(|b| b.is_program())
            .filter(|b| !b.is_fixed_executable() || owner_may_run(path))
            .map(Rc::new);
        self.parsed
            .borrow_mut()
            .insert(path.to_string(), parsed.clone());
        parsed
    }

    /// The file `binary` names (bpftrace's order): `lib<name>` is first
    /// looked up as a library; then the name itself, and without a `/` each
    /// directory of PATH. `None` when none is an executable or a shared
    /// object.
    pub fn find(&self, binary: &str) -> Option<String> {
        if lang::glob::has_wildcard(binary) {
            return None;
        }
        if let Some(name) = binary.strip_prefix("lib")
            && let Some(path) = find_library(name)
        {
            return Some(path);
        }
        let mut candidates = vec![binary.to_string()];
        if !binary.contains('/') {
            let path = std::env::var("PATH").unwrap_or_default();
            candidates.extend(
                path.split(':')
                    .filter(|d| !d.is_empty())
                    .map(|d| format!("{d}/{binary}")),
            );
        }
        candidates.into_iter().find(|c| self.binary(c).is_some())
    }

    /// `uprobe:PATH:NAME` for each function of `PATH` matching `pattern`
    /// (`uprobe:PATH:PATTERN`), sorted; `None` when PATH cannot be read.
    pub fn matching(&self, pattern: &str) -> Option<Vec<String>> {
        let (path, functions) = pattern.strip_prefix("uprobe:")?.rsplit_once(':')?;
        let binary = self.binary(path)?;
        Some(
            binary
                .functions()
                .into_iter()
                .filter(|name| lang::glob::matches(functions, name))
                .map(|name| format!("uprobe:{path}:{name}"))
                .collect(),
        )
    }
}

/// `-l 'uprobe:FILE:FUNCTIONS'` (or `uretprobe:`, `u:`, `ur:`): the
/// functions of the file FILE names (found as a probe's file is) matching
/// FUNCTIONS, sorted, as bpftrace lists them; `None` for a pattern of
/// another kind. A file that is not a program is refused as a probe's is.
pub fn list(pattern: &str) -> Result<Option<Vec<String>>, TraceError> {
    let Some((kind, rest)) = pattern.split_once(':') else {
        return Ok(None);
    };
    let kind = match kind {
        "uprobe" | "u" => "uprobe",
        "uretprobe" | "ur" => "uretprobe",
        _ => return Ok(None),
    };
    let (file, functions) = rest.rsplit_once(':').unwrap_or((rest, "*"));
    let files = UserFiles::default();
    let missing = || {
        TraceError::Program(format!(
            "uprobe target file '{file}' does not exist or is not executable"
        ))
    };
    let path = files.find(file).ok_or_else(missing)?;
    let listed = files
        .matching(&format!("uprobe:{path}:{functions}"))
        .ok_or_else(missing)?;
    Ok(Some(
        listed
            .into_iter()
            .map(|probe| probe.replacen("uprobe", kind, 1))
            .collect(),
    ))
}

/// Whether the owner of `path` may execute it (bpftrace's test for an
/// executable that is not a shared object).
fn owner_may_run(path: &str) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o100 != 0)
}

/// `lib<name>.so*`: from the loader's cache, else the usual directories.
fn find_library(name: &str) -> Option<String> {
    if let Ok(cache) = fs::read(LD_SO_CACHE) {
        return elf_symbols::find_library(&cache, name, std::env::consts::ARCH)
            .ok()
            .flatten();
    }
    let prefix = format!("lib{name}.so");
    library_dirs().into_iter().find_map(|dir| {
        let mut names: Vec<String> = fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&prefix))
            .collect();
        names.sort();
        names.first().map(|f| format!("{dir}/{f}"))
    })
}

/// The uprobes of a compiled program, placed.
#[derive(Default)]
pub struct Placed(Vec<(LangPoint, UserProbe)>);

impl Placed {
    pub fn get(&self, point: &LangPoint) -> Option<&UserProbe> {
        self.0.iter().find(|(p, _)| p == point).map(|(_, u)| u)
    }
}

/// A written address (`0x1f00`, or decimal as bpftrace reads it).
fn address(func: &str) -> Option<u64> {
    match func.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => func.parse().ok(),
    }
}

/// bpftrace's hint after what it refuses for safety.
const HINT_UNSAFE: &str = "Use --unsafe to force attachment. WARNING: This option could lead to data corruption in the target process.";

/// The file offset of `func` (a symbol, `SYMBOL+OFFSET` or an address) in
/// `binary` (at `path`), or why it has none, checked as bpftrace 0.23
/// checks it; `Ok(None)` for a symbol the file lacks. `unsafe_allowed`
/// (`--unsafe`) turns what bpftrace refuses for safety into a warning.
fn offset(
    binary: &Binary,
    path: &str,
    func: &str,
    ret: bool,
    unsafe_allowed: bool,
) -> Result<Option<u64>, String> {
    let (symbol, into) = match address(func) {
        Some(at) => {
            let sym = binary
                .symbol_at(at)
                .ok_or_else(|| format!("Could not resolve address: {path}:0x{at:x}"))?;
            (sym, at - sym.address)
        }
        None => {
            let (name, into) = lang::providers::split_offset(func).unwrap_or((func, 0));
            match binary.symbol(name) {
                Some(sym) => (sym, into),
                None => return Ok(None),
            }
        }
    };
    if ret && into != 0 {
        return Err(format!(
            "uretprobes cannot be attached at function offset. (address resolved to: {}+{into})",
            symbol.name
        ));
    }
    if symbol.size == 0 && into == 0 {
        if !unsafe_allowed {
            return Err(format!(
                "Could not determine boundary for {} (symbol has size 0). {HINT_UNSAFE}",
                symbol.name
            ));
        }
    } else if into >= symbol.size {
        return Err(format!(
            "Offset outside the function bounds ('{}' size is {})",
            symbol.name, symbol.size
        ));
    }
    if into != 0 {
        check_boundary(
            &format!("{path}:{}+{into}", symbol.name),
            into,
            unsafe_allowed,
        )?;
    }
    binary
        .file_offset(symbol.address + into)
        .map(Some)
        .ok_or_else(|| format!("{path}:{func} is not in an executable segment of the file"))
}

/// Whether `into` bytes into a function is an instruction's start, as far
/// as nobtf can tell without a disassembler: on arm64 every instruction is
/// 4 bytes; elsewhere (x86's variable lengths, 32-bit ARM's Thumb) it
/// cannot, as bpftrace built without its disassembler. `probe` names the
/// place (`PATH:SYMBOL+OFFSET`) in bpftrace's words.
fn check_boundary(probe: &str, into: u64, unsafe_allowed: bool) -> Result<(), String> {
    let fixed_width = std::env::consts::ARCH == "aarch64";
    match (fixed_width, into.is_multiple_of(4), unsafe_allowed) {
        (true, true, _) => Ok(()),
        (true, false, false) => Err(format!(
            "Could not add uprobe into middle of instruction: {probe} {HINT_UNSAFE}"
        )),
        (true, false, true) => {
            eprintln!("WARNING: Unsafe uprobe in the middle of the instruction: {probe}");
            Ok(())
        }
        (false, _, false) => Err(format!(
            "Can't check if uprobe is in proper place (compiled without (k|u)probe offset support): {probe} {HINT_UNSAFE}"
        )),
        (false, _, true) => {
            eprintln!("WARNING: Unchecked uprobe : {probe}");
            Ok(())
        }
    }
}

/// Finds each uprobe's file offset. A symbol the file lacks is handled as
/// bpftrace 0.23 does: in a list with other probes it is skipped (with a
/// warning under `missing_probes = "warn"`), else it is an error.
pub fn place(
    mut compiled: Compiled,
    files: &UserFiles,
    pid: Option<u32>,
    unsafe_allowed: bool,
) -> Result<(Compiled, Placed), TraceError> {
    let policy = compiled.config.missing_probes;
    let mut placed = Vec::new();
    let mut skipped = Vec::new();
    for probe in &compiled.probes {
        let (LangPoint::Uprobe { binary: path, func }
        | LangPoint::Uretprobe { binary: path, func }) = &probe.attach
        else {
            continue;
        };
        let ret = matches!(probe.attach, LangPoint::Uretprobe { .. });
        let binary = files.binary(path).ok_or_else(|| {
            TraceError::Program(format!(
                "uprobe target file '{path}' does not exist or is not executable"
            ))
        })?;
        let offset =
            offset(&binary, path, func, ret, unsafe_allowed).map_err(TraceError::Program)?;
        let Some(offset) = offset else {
            let why = format!("Could not resolve symbol: {path}:{func}");
            if policy == MissingProbes::Error || !compiled.listed.contains(&probe.attach) {
                return Err(TraceError::Program(format!("{why}, cannot attach probe.")));
            }
            if policy == MissingProbes::Warn {
                eprintln!("WARNING: {why}, skipping probe.");
            }
            skipped.push(probe.attach.clone());
            continue;
        };
        placed.push((
            probe.attach.clone(),
            UserProbe {
                path: path.clone(),
                offset,
                ret,
                pid,
                symbol: func.clone(),
            },
        ));
    }
    compiled.probes.retain(|p| !skipped.contains(&p.attach));
    Ok((compiled, Placed(placed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_hex_or_decimal() {
        assert_eq!(address("0x1f00"), Some(0x1f00));
        assert_eq!(address("4096"), Some(4096));
        assert_eq!(address("readline"), None);
    }

    #[test]
    fn this_test_finds_itself_and_refuses_what_is_not_a_program() {
        let files = UserFiles::default();
        let me = std::env::current_exe().unwrap();
        let me = me.to_str().unwrap();
        assert_eq!(files.find(me).as_deref(), Some(me));
        assert!(files.find("/etc/hostname-or-nothing").is_none());
        assert!(files.find("/proc/self/status").is_none());
        let main = files
            .matching(&format!("uprobe:{me}:main"))
            .expect("readable");
        assert_eq!(main, [format!("uprobe:{me}:main")]);
        let binary = files.binary(me).unwrap();
        assert!(offset(&binary, me, "main", false, false).unwrap().is_some());
        assert_eq!(
            offset(&binary, me, "no_such_function_here", false, false),
            Ok(None)
        );
    }

    #[test]
    fn offsets_into_a_function_are_checked_as_bpftrace_checks_them() {
        let me = std::env::current_exe().unwrap();
        let me = me.to_str().unwrap();
        let files = UserFiles::default();
        let binary = files.binary(me).unwrap();
        let main = binary.symbol("main").unwrap();
        let start = offset(&binary, me, "main", false, false).unwrap().unwrap();
        assert_eq!(
            offset(&binary, me, "main+4", true, true),
            Err(
                "uretprobes cannot be attached at function offset. (address resolved to: main+4)"
                    .into()
            )
        );
        assert_eq!(
            offset(&binary, me, &format!("main+{}", main.size), false, true),
            Err(format!(
                "Offset outside the function bounds ('main' size is {})",
                main.size
            ))
        );
        // x86's instructions vary in length: checked only under --unsafe,
        // as by a bpftrace built without its disassembler.
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(
                offset(&binary, me, "main+0x4", false, false),
                Err(format!(
                    "Can't check if uprobe is in proper place (compiled without (k|u)probe offset support): {me}:main+4 {HINT_UNSAFE}"
                ))
            );
        }
        assert_eq!(
            offset(&binary, me, "main+0x4", false, true),
            Ok(Some(start + 4))
        );
    }

    #[test]
    fn uprobe_listings_name_the_file_and_its_functions() {
        let me = std::env::current_exe().unwrap();
        let me = me.to_str().unwrap();
        assert_eq!(
            list(&format!("ur:{me}:mai*")).unwrap(),
            Some(vec![format!("uretprobe:{me}:main")])
        );
        assert!(list("kprobe:vfs_*").unwrap().is_none());
        let err = list("uprobe:/etc/hostname-or-nothing:*").unwrap_err();
        assert_eq!(
            err.to_string(),
            "uprobe target file '/etc/hostname-or-nothing' does not exist or is not executable"
        );
    }
}
