//! `offsets gen --kernel-src`: drive the kernel's own build to prepare an
//! out-of-tree output dir with only what the offsets file needs, compile the
//! generated C file there to assembly, and read the markers back.
//!
//! Targets used, all present from 4.x to 6.x:
//! - `olddefconfig` to complete the given config for this tree (it also
//!   writes `include/generated/autoconf.h`);
//! - `prepare0` with kbuild's `$(build)` pointed at [`PREPARE_FILTER`]: the
//!   top Makefile's own steps (asm-generic wrappers, version.h,
//!   utsrelease.h), the x86 unistd headers and, of the root Kbuild, only
//!   `bounds.h` and `timeconst.h`, then the offsets file, compiled in the
//!   root with the kernel's flags as `kernel/bounds.c` is; the host programs
//!   in scripts/, the syscall tables, modpost and asm-offsets, most of a
//!   plain `prepare0`'s time, are skipped. If that is not enough, the plain
//!   `prepare0` runs (still without objtool and resolve_btfids, which old
//!   trees cannot build with a new gcc);
//! - only when `do_unlinkat` is `static` (4.x): `fs/namei.s`, to see whether
//!   the compiler kept it as a function.

use kernel_headers::pt_regs::{self, Abi};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::cgen::{self, CRequest};
use crate::elf::Elf;
use crate::error::GenError;
use crate::generate::{Generated, Request};
use crate::model::{self, FnSig};
use crate::tree::{self, Recorded};
use profile::{DO_UNLINKAT, Provenance};

/// Headers that may declare `do_unlinkat`, relative to the tree.
const DECL_HEADERS: &[&str] = &[
    "fs/internal.h",
    "include/linux/syscalls.h",
    "include/linux/fs.h",
    "include/linux/namei.h",
];
const NAMEI: &str = "fs/namei.c";
/// Variables that keep host tools offsets does not need out of the build
/// (4.x..5.x `prepare`, used by single-file targets).
const SKIP_TOOLS: &[&str] = &["objtool_target=", "resolve_btfids_target="];
/// Extra host flags for old trees with a new gcc (e.g. `-fcommon` for the
/// duplicate `yylloc` in 4.x's dtc), tried only when the plain build fails.
const OLD_TREE_HOSTCFLAGS: &str = "HOSTCFLAGS=-fcommon -Wno-error";
/// For `olddefconfig`, whose host programs (fixdep, kconfig's conf) are the
/// only ones the headers-only preparation needs: they run once here, and
/// unoptimized they build in half the time.
const QUICK_HOSTCFLAGS: &str = "HOSTCFLAGS=-O0";
/// The private dir inside O= holding the generated file and the filter.
const OFFSETS_DIR: &str = "nobtf-offsets";
const OFFSETS_C: &str = "nobtf_offsets.c";
/// Stands in for kbuild's `scripts/Makefile.build` through `build=-f FILE
/// obj` on the command line, which every `$(build)=DIR` of the kernel's
/// Makefiles from 4.x to 6.x expands. It descends only into the dirs whose
/// outputs the offsets file needs: fixdep, kconfig, the x86 unistd headers
/// (not the syscall tables beside them: a fork per syscall on 4.x/5.x, for
/// the entry code only), and the root Kbuild, where it makes only the
/// generated headers kernel headers include and compiles the offsets file
/// as the kernel compiles its own `kernel/bounds.c` and `asm-offsets.c`.
/// `nobtf-all=y` lets everything through: the plain `prepare0`, plus the
/// offsets file.
const PREPARE_FILTER: &str = "\
# Written by nobtf `offsets gen --kernel-src`: kbuild's Makefile.build, only
# for what the offsets file needs (everything with nobtf-all=y). The root and
# the syscall headers' dir are entered twice: first to replace the goals the
# kernel's Makefile asks for (4.x/5.x none, 6.x `prepare`) with ours.
nobtf-headers := include/generated/bounds.h include/generated/timeconst.h
ifeq ($(obj)$(nobtf-inner),.)
__build $(MAKECMDGOALS):
\t$(Q)$(MAKE) $(build)=. nobtf-inner=y \\
\t\t$(if $(nobtf-all),nobtf-after=$(or $(MAKECMDGOALS),__build)) nobtf-offsets/nobtf_offsets.o
else ifeq ($(obj),.)
nobtf-offsets/nobtf_offsets.s: $(nobtf-headers) $(nobtf-after)
# The fields' types leave in the DWARF: -g2, as the `.s` rule drops the
# kernel's own -g (DEBUG_CFLAGS). 4.x names a file's flags by its base
# name, 5.x and later by its path.
CFLAGS_nobtf_offsets.o += -g2
CFLAGS_nobtf-offsets/nobtf_offsets.o += -g2
nobtf-offsets/nobtf_offsets.o: nobtf-offsets/nobtf_offsets.s
\t$(Q)$(CC) $(CLANG_FLAGS) -c -o $@ $<
include $(srctree)/scripts/Makefile.build
else ifneq ($(nobtf-all)$(filter $(obj),scripts/basic scripts/kconfig),)
include $(srctree)/scripts/Makefile.build
else ifeq ($(obj)$(nobtf-inner),arch/x86/entry/syscalls)
__build $(MAKECMDGOALS):
\t$(Q)$(MAKE) $(build)=$(obj) nobtf-inner=y nobtf-unistd
else ifeq ($(obj),arch/x86/entry/syscalls)
include $(srctree)/scripts/Makefile.build
nobtf-unistd: $(addprefix $(uapi)/,$(notdir $(uapisyshdr-y))) \\
\t$(addprefix $(out)/,$(filter unistd%,$(notdir $(syshdr-y))))
\t@:
else
__build $(MAKECMDGOALS): ; @:
endif
";
const PREPARE_FILTER_FILE: &str = "prepare-filter.mk";
/// What kbuild (4.x to 6.x) takes for a tree configured in place when it
/// is asked to build it into a separate dir (`.config` aside).
const CONFIGURED_MARKS: &[&str] = &[
    "include/config",
    "arch/x86/include/generated",
    "arch/arm/include/generated",
    "arch/arm64/include/generated",
];
/// Generated headers whose presence marks a dir as prepared, by this tool
/// or by a kernel build (progress only: make decides what is up to date).
const PREPARED_MARKS: &[&str] = &[
    "include/generated/autoconf.h",
    "include/generated/bounds.h",
    "include/generated/timeconst.h",
];

#[derive(Debug, Clone)]
pub struct SrcOptions {
    pub tree: PathBuf,
    pub config: Option<PathBuf>,
    /// The O= dir; default: a cache dir keyed by tree and config.
    pub build_dir: Option<PathBuf>,
    /// `--arch`; None: the config's own (`CONFIG_X86_64`, `CONFIG_ARM64`,
    /// `CONFIG_ARM`), else this machine's.
    pub arch: Option<String>,
    pub jobs: u32,
    /// `make` plus any extra variables (`CC=...`, `KCFLAGS=...`).
    pub make_vars: Vec<String>,
    /// Extra headers to include (`<...>` names).
    pub headers: Vec<String>,
    pub request: Request,
}

fn read(path: &Path) -> Result<Vec<u8>, GenError> {
    fs::read(path).map_err(|e| GenError::io(path, e))
}

fn hex(data: &[u8]) -> String {
    Sha256::digest(data)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Make<'a> {
    opts: &'a SrcOptions,
    /// `O=`, `ARCH=` and the compiler, before the user's own variables.
    vars: Vec<String>,
    /// In a tree used in place, host programs are not rebuilt with flags
    /// of ours (the user's next make would rebuild them again).
    in_place: bool,
    progress: &'a mut dyn FnMut(&str),
}

/// The prefix of Debian's cross gcc for each architecture nobtf knows.
fn cross_prefix(abi: &Abi) -> &'static str {
    match abi.arch {
        "aarch64" => "aarch64-linux-gnu-",
        "arm" => "arm-linux-gnueabihf-",
        _ => "x86_64-linux-gnu-",
    }
}

/// Whether the user named the compiler themselves.
fn names_compiler(make_vars: &[String]) -> bool {
    make_vars.iter().any(|v| {
        ["CC=", "CROSS_COMPILE=", "LLVM="]
            .iter()
            .any(|p| v.starts_with(p))
    })
}

/// The variables of a build into a separate output dir: the kernel's own
/// `CROSS_COMPILE` for another architecture than this machine's, unless the
/// user named a compiler.
fn out_of_tree_vars(build: &Path, abi: &'static Abi, make_vars: &[String]) -> Vec<String> {
    let mut vars = vec![
        format!("O={}", build.display()),
        format!("ARCH={}", abi.kbuild_arch),
    ];
    if abi != pt_regs::NATIVE && !names_compiler(make_vars) {
        vars.push(format!("CROSS_COMPILE={}", cross_prefix(abi)));
    }
    vars
}

/// The variables of a build in a tree configured in place (no `O=`: with
/// it, 4.x kbuild takes the tree for the source of a separate build and
/// refuses it as not clean): the `ARCH` and compiler the tree was
/// configured or built with, so that kbuild finds its configuration
/// current and reconfigures nothing a later `make` of the user's would
/// redo; or why the tree cannot be used so.
fn in_place_vars(
    tree: &Path,
    abi: &'static Abi,
    config: &str,
    make_vars: &[String],
) -> Result<Vec<String>, GenError> {
    let recorded = Recorded::read(tree);
    let arch = recorded
        .var("ARCH")
        .filter(|a| model::check_arch(a).is_ok_and(|found| found == abi))
        .unwrap_or(abi.kbuild_arch);
    let mut vars = vec![format!("ARCH={arch}")];
    // What the configuration was made with: the compiler's version text
    // (4.18+), and the compiler, also from a build's command lines.
    let version_text = recorded
        .var("CC_VERSION_TEXT")
        .map(|t| (t, tree::AUTO_CONF_CMD))
        .or_else(|| tree::config_compiler_text(config).map(|t| (t, ".config")));
    let recorded_cc = recorded.compiler().or_else(|| {
        let (text, file) = version_text?;
        Some((text.split_whitespace().next()?, file))
    });
    let mut cc = None;
    if !names_compiler(make_vars) {
        match recorded_cc {
            Some((recorded_cc, file)) => {
                if tree::find_program(recorded_cc).is_none() {
                    return Err(GenError::NotATree(format!(
                        "{} was configured for the compiler `{recorded_cc}` ({file}), which is not \
                         on PATH: add its directory to PATH, or {}",
                        tree.display(),
                        other_compiler(tree)
                    )));
                }
                match tree::gcc_prefix(recorded_cc) {
                    // The native gcc of the tree's own (ARM) machine: here
                    // its cross twin, whose other name kbuild will see.
                    Some("") if abi != pt_regs::NATIVE => {
                        vars.push(format!("CROSS_COMPILE={}", cross_prefix(abi)));
                    }
                    Some("") => cc = Some(recorded_cc.to_string()),
                    Some(prefix) if !prefix.contains(' ') => {
                        vars.push(format!("CROSS_COMPILE={prefix}"));
                        cc = Some(recorded_cc.to_string());
                    }
                    // `clang`, `ccache gcc`: as it is.
                    _ => {
                        vars.push(format!("CC={recorded_cc}"));
                        cc = Some(recorded_cc.to_string());
                    }
                }
            }
            None if abi != pt_regs::NATIVE => {
                vars.push(format!("CROSS_COMPILE={}", cross_prefix(abi)));
            }
            None => {}
        }
    }
    // A compiler of another version makes 4.18+ kbuild reconfigure the tree
    // (its `.config` records the version), and so rebuild it.
    if let Some((wanted, file)) = version_text {
        let cc = cc.unwrap_or_else(|| effective_cc(&vars, make_vars));
        let found = compiler_version_text(&cc);
        if found.as_deref() != Some(wanted) {
            return Err(GenError::NotATree(format!(
                "{} was configured with `{wanted}` ({file}), but `{cc}` here is {}: kbuild would \
                 reconfigure the tree for it (and a later make rebuild it); name that compiler \
                 with --make-var CROSS_COMPILE=PREFIX (or CC=), or {}",
                tree.display(),
                found.map_or("not found".into(), |f| format!("`{f}`")),
                other_compiler(tree)
            )));
        }
    }
    Ok(vars)
}

/// The way out when the tree's own compiler is not at hand.
fn other_compiler(tree: &Path) -> String {
    format!(
        "make offsets from a copy with this machine's compiler (`make mrproper` in it, then \
         --config {}/.config)",
        tree.display()
    )
}

/// The C compiler make will run: the user's `CC=`, else clang for `LLVM=`,
/// else `$(CROSS_COMPILE)gcc`.
fn effective_cc(vars: &[String], make_vars: &[String]) -> String {
    let all: Vec<&String> = vars.iter().chain(make_vars).collect();
    let last = |name: &str| {
        all.iter()
            .rev()
            .find_map(|v| v.strip_prefix(name))
            .map(str::to_string)
    };
    if let Some(cc) = last("CC=") {
        return cc;
    }
    if let Some(llvm) = last("LLVM=") {
        // `LLVM=1`, or a prefix dir (`LLVM=/opt/llvm/`) or suffix (`LLVM=-14`).
        return match llvm.as_str() {
            "1" => "clang".into(),
            l if l.ends_with('/') => format!("{l}clang"),
            l => format!("clang{l}"),
        };
    }
    format!("{}gcc", last("CROSS_COMPILE=").unwrap_or_default())
}

/// The first line of `CC --version`, as kbuild's `CC_VERSION_TEXT`
/// (without `#`).
fn compiler_version_text(cc: &str) -> Option<String> {
    let mut words = cc.split_whitespace();
    let out = Command::new(words.next()?)
        .args(words)
        .arg("--version")
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?.replace('#', "");
    out.status.success().then(|| first.trim().to_string())
}

impl Make<'_> {
    fn run(&mut self, step: &str, args: &[&str], extra: &[&str]) -> Result<String, GenError> {
        let start = Instant::now();
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(&self.opts.tree)
            .args(&self.vars)
            .arg(format!("-j{}", self.opts.jobs.max(1)))
            .args(&self.opts.make_vars)
            .args(extra)
            .args(args)
            .env("LC_ALL", "C");
        let out = cmd.output().map_err(|e| GenError::Build {
            step: step.into(),
            status: "not run".into(),
            output: format!("cannot run make: {e}"),
        })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (self.progress)(&format!("{step}: {:.1} s", start.elapsed().as_secs_f64()));
        if out.status.success() {
            Ok(text)
        } else {
            Err(GenError::Build {
                step: step.into(),
                status: out.status.code().map_or("signal".into(), |c| c.to_string()),
                output: tail(&text, 40),
            })
        }
    }

    /// Host flags for a step, unless the user gave their own.
    fn host_flags(&self, flags: &'static str) -> Option<&'static str> {
        let own = self
            .opts
            .make_vars
            .iter()
            .any(|v| v.starts_with("HOSTCFLAGS="));
        (!own).then_some(flags)
    }

    /// A step that may need the old-tree host flags: plain first, then once
    /// with them.
    fn run_tolerant(&mut self, step: &str, args: &[&str]) -> Result<String, GenError> {
        match self.run(step, args, SKIP_TOOLS) {
            Ok(t) => Ok(t),
            Err(first) if self.in_place => Err(first),
            Err(first) => {
                (self.progress)(&format!(
                    "{step} failed; retrying with {OLD_TREE_HOSTCFLAGS} (old tree, new compiler)"
                ));
                let mut old: Vec<&str> = SKIP_TOOLS.to_vec();
                old.push(OLD_TREE_HOSTCFLAGS);
                self.run(step, args, &old).map_err(|_| first)
            }
        }
    }

    /// `prepare0` through [`PREPARE_FILTER`], which also compiles the
    /// offsets file; when the compile misses a file the headers-only
    /// preparation did not make (a header of this config, a gcc plugin), the
    /// whole `prepare0` (`nobtf-all=y`). A compiler error in the offsets file
    /// is returned as it is; other failures are retried once with the
    /// old-tree host flags.
    fn prepare_and_compile(&mut self, filter: &str) -> Result<(), GenError> {
        let (mut all, mut old_flags, mut first) = (false, false, None);
        loop {
            let step = if all {
                "prepare0"
            } else {
                "prepare0 (headers only) and compile"
            };
            let mut extra: Vec<&str> = SKIP_TOOLS.to_vec();
            extra.push(filter);
            if all {
                extra.push("nobtf-all=y");
            }
            if old_flags {
                extra.push(OLD_TREE_HOSTCFLAGS);
            }
            let err = match self.run(step, &["prepare0"], &extra) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let output = match &err {
                GenError::Build { output, .. } => output.clone(),
                _ => return Err(err),
            };
            let missing = output.contains("No such file or directory");
            if output.contains(&format!("{OFFSETS_C}:")) && !missing {
                return Err(GenError::Compile(compiler_messages(&output)));
            } else if !all {
                // A header (or gcc plugin) this config needs beyond those
                // made, or a tree the filter does not fit: the whole prepare0.
                (self.progress)(&format!(
                    "the headers-only preparation was not enough ({}); running the whole prepare0",
                    first_problem(&output)
                ));
                all = true;
            } else if !old_flags && !self.in_place {
                (self.progress)(&format!(
                    "{step} failed; retrying with {OLD_TREE_HOSTCFLAGS} (old tree, new compiler)"
                ));
                old_flags = true;
                first = Some(err);
            } else {
                return Err(first.unwrap_or(err));
            }
        }
    }
}

/// The line of a failed build's output that says what went wrong.
fn first_problem(text: &str) -> &str {
    text.lines()
        .find(|l| {
            ["No such file", "No rule to make target", "error:"]
                .iter()
                .any(|p| l.contains(p))
        })
        .or_else(|| text.lines().last())
        .unwrap_or_default()
        .trim()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The compiler's own messages from a failed build output.
fn compiler_messages(text: &str) -> String {
    let msgs: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("error:") || l.contains("error ") || l.contains("note:"))
        .take(20)
        .collect();
    if msgs.is_empty() {
        tail(text, 20)
    } else {
        msgs.join("\n")
    }
}

/// A tree configured in place is its own build dir, and must be writable.
fn check_in_place(tree: &Path, opts: &SrcOptions) -> Result<(), GenError> {
    let copy = format!(
        "make offsets from a copy (`make mrproper` in it, then --config {}/.config)",
        tree.display()
    );
    let given = match (&opts.config, &opts.build_dir) {
        (Some(_), _) => Some("--config"),
        (_, Some(_)) => Some("--build-dir"),
        _ => None,
    };
    if let Some(option) = given {
        return Err(GenError::NotATree(format!(
            "{} is configured in place (has .config), so it is used as it is, with its own \
             config and build: drop {option}, or {copy}",
            tree.display()
        )));
    }
    let private = tree.join(OFFSETS_DIR);
    let unwritable = match fs::metadata(tree) {
        Ok(m) if m.permissions().readonly() => Some("read-only".to_string()),
        // The dir this run writes to, made and removed again.
        Ok(_) => fs::create_dir_all(&private)
            .and_then(|()| fs::remove_dir(&private))
            .err()
            .map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    };
    match unwritable {
        Some(why) => Err(GenError::NotATree(format!(
            "{} is configured in place but cannot be written ({why}), and kbuild prepares such \
             a tree only in place: use a writable copy as it is (`cp -a`), or {copy}",
            tree.display()
        ))),
        None => Ok(()),
    }
}

/// A build step failing in a tree used in place: the one line says what to
/// do (the tree's own build may be half done, or broken for this machine).
fn in_place_failure(err: GenError, in_place: bool, tree: &Path) -> GenError {
    match err {
        GenError::Build { step, output, .. } if in_place => GenError::NotATree(format!(
            "{} cannot be prepared in place (`{step}`: {}): finish or repair its own build \
             (`make prepare` there), or make offsets from a copy (`make mrproper` in it, then \
             --config {}/.config)\n{output}",
            tree.display(),
            first_problem(&output),
            tree.display()
        )),
        other => other,
    }
}

/// Files this run adds to a tree used in place, removed when it ends.
struct Scratch(Vec<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = if path.is_dir() {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
        }
    }
}

fn default_build_dir(tree: &Path, config_hash: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let tree_hash = hex(tree.as_os_str().as_encoded_bytes());
    base.join("nobtf/offsets-build")
        .join(format!("{tree_hash}-{config_hash}"))
}

pub fn generate(opts: &SrcOptions, progress: &mut dyn FnMut(&str)) -> Result<Generated, GenError> {
    let tree = fs::canonicalize(&opts.tree).map_err(|e| GenError::io(&opts.tree, e))?;
    if !tree.join("Makefile").is_file() || !tree.join(NAMEI).is_file() {
        return Err(GenError::NotATree(format!(
            "{} is not a kernel source tree (no Makefile or {NAMEI})",
            tree.display()
        )));
    }
    // A tree configured in place cannot have a separate output dir (kbuild
    // refuses); then it is its own build dir and is prepared in place.
    let in_place = tree.join(".config").exists();
    if in_place {
        check_in_place(&tree, opts)?;
    } else if let Some(mark) = CONFIGURED_MARKS.iter().find(|m| tree.join(m).exists()) {
        return Err(GenError::NotATree(format!(
            "{} has no .config but is not pristine ({mark} exists), so kbuild refuses to build \
             it into a separate dir: run `make mrproper` in it (or in a copy), or put its \
             config at {}/.config to use it in place",
            tree.display(),
            tree.display()
        )));
    }
    let opts = &SrcOptions {
        tree: tree.clone(),
        ..opts.clone()
    };

    // The config: given, or the one in a given build dir.
    let build_dir = if in_place {
        Some(tree.clone())
    } else {
        opts.build_dir.clone()
    };
    let (config_bytes, config_path) = match (&opts.config, &build_dir) {
        (Some(c), _) => (read(c)?, c.clone()),
        (None, Some(b)) if b.join(".config").is_file() => {
            (read(&b.join(".config"))?, b.join(".config"))
        }
        _ => {
            return Err(GenError::NoConfig(
                "give --config FILE (e.g. /boot/config-$(uname -r)), or --build-dir DIR holding a configured .config".into(),
            ));
        }
    };
    if !config_bytes.windows(7).any(|w| w == b"CONFIG_") {
        return Err(GenError::NoConfig(
            "the config file has no CONFIG_ lines".into(),
        ));
    }
    let abi = tree::choose_arch(opts.arch.as_deref(), &config_bytes, &config_path)?;
    let config_hash = hex(&config_bytes);
    let build = match &build_dir {
        Some(b) => b.clone(),
        None => default_build_dir(&tree, &config_hash),
    };
    fs::create_dir_all(&build).map_err(|e| GenError::io(&build, e))?;
    let build = fs::canonicalize(&build).map_err(|e| GenError::io(&build, e))?;
    let vars = if in_place {
        in_place_vars(
            &tree,
            abi,
            &String::from_utf8_lossy(&config_bytes),
            &opts.make_vars,
        )?
    } else {
        out_of_tree_vars(&build, abi, &opts.make_vars)
    };
    let mut make = Make {
        opts,
        vars,
        in_place,
        progress,
    };

    // Configure: only when the given config is new to this build dir.
    let stamp = build.join(".nobtf-config");
    let stamped = fs::read_to_string(&stamp).ok();
    if opts.config.is_some() && stamped.as_deref() != Some(config_hash.as_str()) {
        fs::write(build.join(".config"), &config_bytes).map_err(|e| GenError::io(&build, e))?;
        (make.progress)(&format!("configuring {} (olddefconfig)", build.display()));
        let quick = make.host_flags(QUICK_HOSTCFLAGS);
        if let Err(e) = make.run("olddefconfig", &["olddefconfig"], quick.as_slice()) {
            if quick.is_none() {
                return Err(e);
            }
            // On 4.x a command-line HOSTCFLAGS replaces the Makefile's
            // (-std=gnu89 included) rather than adding to it.
            (make.progress)(&format!(
                "olddefconfig failed; retrying without {QUICK_HOSTCFLAGS}"
            ));
            make.run("olddefconfig", &["olddefconfig"], &[])
                .map_err(|_| e)?;
        }
        fs::write(&stamp, &config_hash).map_err(|e| GenError::io(&stamp, e))?;
    }

    // Where is do_unlinkat declared, and is it defined?
    let namei = String::from_utf8_lossy(&read(&tree.join(NAMEI))?).into_owned();
    let def =
        cgen::find_definition(&namei, DO_UNLINKAT).ok_or_else(|| GenError::SymbolMissing {
            name: DO_UNLINKAT.into(),
            why: format!("is not defined in {}", tree.join(NAMEI).display()),
        })?;
    let mut decl = None;
    for h in DECL_HEADERS {
        let path = tree.join(h);
        if let Ok(text) = fs::read_to_string(&path)
            && cgen::header_declares(&text, DO_UNLINKAT).is_some()
        {
            decl = Some(path.display().to_string());
            break;
        }
    }

    // The generated file, in a private dir inside O= (in a tree used in
    // place, only while this runs).
    let fields = model::wanted_fields(&opts.request.fields)?;
    let mut headers: Vec<String> = cgen::BASE_HEADERS.iter().map(|s| s.to_string()).collect();
    let r = &opts.request;
    if !(r.fields.is_empty() && r.structs.is_empty() && r.enums.is_empty()) {
        // Only those this tree has: the set moved over the years.
        headers.extend(
            cgen::EXTRA_HEADERS
                .iter()
                .filter(|h| tree.join("include").join(h).is_file())
                .map(|s| s.to_string()),
        );
    }
    headers.extend(opts.headers.iter().cloned());
    let creq = CRequest {
        fields: fields.clone(),
        structs: opts.request.structs.clone(),
        enums: opts.request.enums.clone(),
        headers,
        unlinkat_decl: decl.clone(),
    };
    let ext = build.join(OFFSETS_DIR);
    fs::create_dir_all(&ext).map_err(|e| GenError::io(&ext, e))?;
    let mut scratch = Scratch(Vec::new());
    if in_place {
        scratch.0.push(ext.clone());
    }
    let write = |name: &str, text: &str| {
        let p = ext.join(name);
        fs::write(&p, text).map_err(|e| GenError::io(&p, e))
    };
    write(OFFSETS_C, &cgen::c_source(&creq))?;
    write(PREPARE_FILTER_FILE, PREPARE_FILTER)?;
    let _ = fs::remove_file(ext.join("nobtf_offsets.s"));
    let _ = fs::remove_file(ext.join("nobtf_offsets.o"));
    let prepared = PREPARED_MARKS.iter().all(|m| build.join(m).exists());
    if in_place {
        let state = if build.join("vmlinux").exists() {
            "built"
        } else if prepared {
            "prepared"
        } else {
            "configured"
        };
        (make.progress)(&format!(
            "using {} in place ({state}: its .config, {}), adding only what its own build \
             would make",
            build.display(),
            make.vars.join(" ")
        ));
    } else if prepared {
        (make.progress)(&format!("reusing prepared {}", build.display()));
    } else {
        (make.progress)(&format!(
            "preparing {} with the kernel's build (prepare0, only the generated headers the \
             offsets file includes)",
            build.display()
        ));
    }
    let filter = format!("build=-f {} obj", ext.join(PREPARE_FILTER_FILE).display());
    make.prepare_and_compile(&filter)
        .map_err(|e| in_place_failure(e, in_place, &tree))?;
    let release = fs::read_to_string(build.join("include/config/kernel.release"))
        .map(|s| s.trim().to_string())
        .ok();
    let asm_path = ext.join("nobtf_offsets.s");
    let asm = String::from_utf8_lossy(&read(&asm_path)?).into_owned();
    let markers = cgen::parse_markers(&asm);
    let object = read(&ext.join("nobtf_offsets.o"))?;
    let types = crate::dwarf::variable_types(&Elf::parse(&object)?, cgen::TYPE_VARIABLE)?;
    let field_map = cgen::fields_from_markers(&markers, &types, &fields)?;

    // The signature: the compiler's type check if declared, else the text.
    let (sig, decided_by) = match &decl {
        Some(_) => {
            let ty = cgen::sig_from_markers(&markers)?.ok_or_else(|| GenError::Signature {
                name: DO_UNLINKAT.into(),
                signature: format!("{} (matches no known prototype)", def.text),
            })?;
            let mut sig = def.sig.clone();
            // The compiler's verdict wins over the text's parameter types.
            if let Some(p) = sig.params.iter_mut().find(|(_, t)| {
                matches!(
                    t,
                    model::ParamType::StructPtr(_) | model::ParamType::CharPtr
                )
            }) {
                p.1 = ty;
            }
            (sig, "type-check")
        }
        None => (def.sig.clone(), "source"),
    };
    let symbol = if def.is_static {
        (make.progress)(
            "compiling fs/namei.s to see whether the static do_unlinkat stays a function",
        );
        if in_place {
            // Not part of the kernel's build: gone when this run ends.
            for leftover in ["fs/namei.s", "fs/.namei.s.cmd"] {
                if !build.join(leftover).exists() {
                    scratch.0.push(build.join(leftover));
                }
            }
        }
        make.run_tolerant("fs/namei.s", &["fs/namei.s"])
            .map_err(|e| in_place_failure(e, in_place, &tree))?;
        let text = fs::read_to_string(build.join("fs/namei.s"))
            .map_err(|e| GenError::io(build.join("fs/namei.s"), e))?;
        cgen::asm_defines(&text, DO_UNLINKAT)
    } else {
        true
    };
    let unlink = model::unlink_function(&FnSig { symbol, ..sig }, decided_by)?;
    let mut warnings = Vec::new();
    if !symbol {
        warnings.push(format!(
            "{DO_UNLINKAT} is static and inlined in this build: no symbol for a kprobe"
        ));
    }
    let config_label = opts
        .config
        .as_ref()
        .map_or_else(|| build.join(".config"), |c| c.clone());
    let mut profile = model::assemble(
        abi,
        opts.request
            .release
            .clone()
            .or(release)
            .unwrap_or_else(|| "unknown".into()),
        Provenance {
            method: "kernel-src".into(),
            detail: format!(
                "tree {} config {} sha256 {config_hash}",
                tree.display(),
                config_label.display()
            ),
            generator: String::new(),
        },
        field_map,
        unlink,
    )?;
    // A tree that was built (not only prepared) knows its `uname -v`.
    profile.kernel.version = [
        "include/generated/utsversion.h",
        "include/generated/compile.h",
    ]
    .iter()
    .find_map(|h| crate::identity::header_version(&fs::read_to_string(build.join(h)).ok()?));
    // The config as olddefconfig completed it, defaults included.
    let completed = fs::read(build.join(".config")).unwrap_or(config_bytes);
    profile.kernel.layout_config = Some(crate::identity::layout_digest(&completed));
    let named = cgen::named_from_markers(&markers, &opts.request.structs, &opts.request.enums)?;
    crate::generate::record_named(&mut profile, &opts.request, named, &mut warnings)?;
    Ok(Generated { profile, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_problem_line_of_a_failed_build() {
        let out = "  CC      kernel/bounds.s\n\
                   In file included from nobtf-offsets/nobtf_offsets.c:3:\n\
                   ./include/linux/x.h:6:10: fatal error: generated/y.h: No such file or directory\n\
                   make[2]: *** [scripts/Makefile.build:117: nobtf-offsets/nobtf_offsets.s] Error 1\n";
        assert_eq!(
            first_problem(out),
            "./include/linux/x.h:6:10: fatal error: generated/y.h: No such file or directory"
        );
        let out = "make[3]: *** No rule to make target 'a/b.h', needed by 'nobtf-unistd'.  Stop.\n";
        assert!(first_problem(out).contains("No rule to make target 'a/b.h'"));
        assert_eq!(first_problem("one\nlast line\n"), "last line");
    }

    #[test]
    fn a_tree_in_place_is_built_with_what_it_records() {
        let tree = std::env::temp_dir().join(format!("nobtf-in-place-vars-{}", std::process::id()));
        fs::create_dir_all(tree.join("include/config")).unwrap();
        fs::create_dir_all(tree.join("kernel")).unwrap();
        let x86 = pt_regs::abi("x86_64").unwrap();
        let vars = |make_vars: &[&str]| {
            let make_vars: Vec<String> = make_vars.iter().map(|v| v.to_string()).collect();
            in_place_vars(&tree, x86, "CONFIG_X86_64=y\n", &make_vars)
        };
        // Configured only, nothing recorded: this machine's compiler.
        assert_eq!(vars(&[]).unwrap(), ["ARCH=x86"]);
        // Built natively on an ARM machine (4.x before 4.18 records no
        // version): the cross gcc here, not this machine's own gcc.
        fs::write(
            tree.join(tree::BOUNDS_CMD),
            "cmd_kernel/bounds.s := gcc -Wp,-MD,kernel/.bounds.s.d -nostdinc\n",
        )
        .unwrap();
        let arm = pt_regs::abi("arm").unwrap();
        assert_eq!(
            in_place_vars(&tree, arm, "CONFIG_ARM=y\n", &[]).unwrap(),
            ["ARCH=arm", "CROSS_COMPILE=arm-linux-gnueabihf-"]
        );
        assert_eq!(vars(&[]).unwrap(), ["ARCH=x86"]);
        // Built with a cross gcc named by its prefix, configured as x86_64.
        fs::write(
            tree.join(tree::BOUNDS_CMD),
            "cmd_kernel/bounds.s := x86_64-linux-gnu-gcc -Wp,-MD,kernel/.bounds.s.d -nostdinc\n",
        )
        .unwrap();
        let version = compiler_version_text("x86_64-linux-gnu-gcc").unwrap();
        fs::write(
            tree.join(tree::AUTO_CONF_CMD),
            format!(
                "ifneq \"$(ARCH)\" \"x86_64\"\ninclude/config/auto.conf: FORCE\nendif\n\
                 ifneq \"$(CC_VERSION_TEXT)\" \"{version}\"\n"
            ),
        )
        .unwrap();
        assert_eq!(
            vars(&[]).unwrap(),
            ["ARCH=x86_64", "CROSS_COMPILE=x86_64-linux-gnu-"]
        );
        // The user's compiler wins, and is held to the recorded version.
        assert_eq!(vars(&["CC=x86_64-linux-gnu-gcc"]).unwrap(), ["ARCH=x86_64"]);
        let e = vars(&["LLVM=1"]).unwrap_err().to_string();
        assert!(e.contains("but `clang` here is"), "{e}");
        fs::remove_dir_all(&tree).unwrap();
    }

    #[test]
    fn the_compiler_make_runs() {
        let v = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(effective_cc(&v(&["ARCH=arm"]), &[]), "gcc");
        assert_eq!(
            effective_cc(&v(&["CROSS_COMPILE=arm-linux-gnueabihf-"]), &[]),
            "arm-linux-gnueabihf-gcc"
        );
        assert_eq!(
            effective_cc(&v(&["CROSS_COMPILE=a-"]), &v(&["CROSS_COMPILE=b-"])),
            "b-gcc"
        );
        assert_eq!(effective_cc(&[], &v(&["LLVM=1", "CC=cc"])), "cc");
        assert_eq!(effective_cc(&[], &v(&["LLVM=-14"])), "clang-14");
        assert_eq!(
            effective_cc(&[], &v(&["LLVM=/opt/llvm/bin/"])),
            "/opt/llvm/bin/clang"
        );
    }

    #[test]
    fn the_filter_names_what_kbuild_expands() {
        // `$(build)=DIR` expands to `-f FILE obj=DIR`: the filter must be
        // usable as that FILE and must compile the file the generator writes.
        assert!(PREPARE_FILTER.contains("include $(srctree)/scripts/Makefile.build"));
        assert!(PREPARE_FILTER.contains(&format!("{OFFSETS_DIR}/nobtf_offsets.s")));
        assert!(PREPARE_FILTER.contains(&format!("{OFFSETS_DIR}/nobtf_offsets.o:")));
        assert!(
            PREPARE_FILTER.lines().all(|l| !l.starts_with("    ")),
            "recipes need tabs"
        );
    }
}
