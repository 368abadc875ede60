//! `offsets gen --kernel-src`: drive the kernel's own build to prepare an
//! out-of-tree output dir, compile the generated C file there as an external
//! module's assembly, and read the markers back.
//!
//! Targets used, all present from 4.x to 6.x:
//! - `olddefconfig` to complete the given config for this tree;
//! - `prepare0`: everything `prepare` does (generated headers, asm-offsets,
//!   bounds, syscall tables) except building the host tools objtool and
//!   resolve_btfids, which offsets never need and which old trees cannot
//!   build with a new gcc;
//! - `M=DIR nobtf_offsets.s`: kbuild compiles the file with the exact flags,
//!   includes and config it uses for a module, stopping at assembly.
//! - only when `do_unlinkat` is `static` (4.x): `fs/namei.s`, to see whether
//!   the compiler kept it as a function.

use kernel_headers::pt_regs::{self, Abi};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::cgen::{self, CRequest};
use crate::error::GenError;
use crate::generate::{Generated, Request};
use crate::model::{self, FnSig};
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

#[derive(Debug, Clone)]
pub struct SrcOptions {
    pub tree: PathBuf,
    pub config: Option<PathBuf>,
    /// The O= dir; default: a cache dir keyed by tree and config.
    pub build_dir: Option<PathBuf>,
    pub arch: String,
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
    build: PathBuf,
    progress: &'a mut dyn FnMut(&str),
    abi: &'static Abi,
}

/// The prefix of Debian's cross gcc for each architecture nobtf knows.
fn cross_prefix(abi: &Abi) -> &'static str {
    match abi.arch {
        "aarch64" => "aarch64-linux-gnu-",
        "arm" => "arm-linux-gnueabihf-",
        _ => "x86_64-linux-gnu-",
    }
}

impl Make<'_> {
    /// For another architecture than this machine's, the kernel's own
    /// `CROSS_COMPILE`, unless the user set one.
    fn cross_compile(&self) -> Option<String> {
        let given = self
            .opts
            .make_vars
            .iter()
            .any(|v| v.starts_with("CROSS_COMPILE="));
        (self.abi != pt_regs::NATIVE && !given)
            .then(|| format!("CROSS_COMPILE={}", cross_prefix(self.abi)))
    }

    fn run(&mut self, step: &str, args: &[&str], extra: &[&str]) -> Result<String, GenError> {
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(&self.opts.tree)
            .arg(format!("O={}", self.build.display()))
            .arg(format!("ARCH={}", self.abi.kbuild_arch))
            .args(self.cross_compile())
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

    /// A step that may need the old-tree host flags: plain first, then once
    /// with them.
    fn run_tolerant(&mut self, step: &str, args: &[&str]) -> Result<String, GenError> {
        match self.run(step, args, SKIP_TOOLS) {
            Ok(t) => Ok(t),
            Err(first) => {
                (self.progress)(&format!(
                    "{step} failed; retrying with {OLD_TREE_HOSTCFLAGS} (old tree, new compiler)"
                ));
                let mut extra = SKIP_TOOLS.to_vec();
                extra.push(OLD_TREE_HOSTCFLAGS);
                self.run(step, args, &extra).map_err(|_| first)
            }
        }
    }
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
    let abi = model::check_arch(&opts.arch)?;
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
    if in_place && opts.config.is_some() {
        return Err(GenError::NotATree(format!(
            "{} is configured in place (has .config), so it is used as it is: drop --config, \
             or give a pristine tree (`make mrproper` in a copy)",
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
    let config_bytes = match (&opts.config, &build_dir) {
        (Some(c), _) => read(c)?,
        (None, Some(b)) if b.join(".config").is_file() => read(&b.join(".config"))?,
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
    let config_hash = hex(&config_bytes);
    let build = match &build_dir {
        Some(b) => b.clone(),
        None => default_build_dir(&tree, &config_hash),
    };
    fs::create_dir_all(&build).map_err(|e| GenError::io(&build, e))?;
    let build = fs::canonicalize(&build).map_err(|e| GenError::io(&build, e))?;
    let mut make = Make {
        opts,
        abi,
        build: build.clone(),
        progress,
    };

    // Configure: only when the given config is new to this build dir.
    let stamp = build.join(".nobtf-config");
    let stamped = fs::read_to_string(&stamp).ok();
    if opts.config.is_some() && stamped.as_deref() != Some(config_hash.as_str()) {
        fs::write(build.join(".config"), &config_bytes).map_err(|e| GenError::io(&build, e))?;
        (make.progress)(&format!("configuring {} (olddefconfig)", build.display()));
        make.run("olddefconfig", &["olddefconfig"], &[])?;
        fs::write(&stamp, &config_hash).map_err(|e| GenError::io(&stamp, e))?;
    }
    let prepared = build.join("include/generated/autoconf.h");
    let fresh = |p: &Path| {
        let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((m(p), m(&build.join(".config"))), (Some(a), Some(c)) if a >= c)
    };
    if fresh(&prepared) && build.join("include/generated/asm-offsets.h").exists() {
        (make.progress)(&format!("reusing prepared {}", build.display()));
    } else {
        (make.progress)(&format!(
            "preparing {} with the kernel's build (prepare0; about a minute)",
            build.display()
        ));
        make.run_tolerant("prepare0", &["prepare0"])?;
    }
    let release = fs::read_to_string(build.join("include/config/kernel.release"))
        .map(|s| s.trim().to_string())
        .ok();

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

    // The generated file, in a private external-module dir inside O=.
    let fields = model::wanted_fields(&opts.request.fields)?;
    let mut headers: Vec<String> = cgen::BASE_HEADERS.iter().map(|s| s.to_string()).collect();
    if !opts.request.fields.is_empty() {
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
        headers,
        unlinkat_decl: decl.clone(),
    };
    let ext = build.join("nobtf-offsets");
    fs::create_dir_all(&ext).map_err(|e| GenError::io(&ext, e))?;
    let write = |name: &str, text: &str| {
        let p = ext.join(name);
        fs::write(&p, text).map_err(|e| GenError::io(&p, e))
    };
    write("Kbuild", "obj-m := nobtf_offsets.o\n")?;
    write("nobtf_offsets.c", &cgen::c_source(&creq))?;
    let _ = fs::remove_file(ext.join("nobtf_offsets.s"));
    (make.progress)("compiling the offsets file with the kernel's flags");
    let m_arg = format!("M={}", ext.display());
    if let Err(e) = make.run("compile", &[&m_arg, "nobtf_offsets.s"], &[]) {
        let GenError::Build { output, .. } = &e else {
            return Err(e);
        };
        return Err(GenError::Compile(compiler_messages(output)));
    }
    let asm_path = ext.join("nobtf_offsets.s");
    let asm = String::from_utf8_lossy(&read(&asm_path)?).into_owned();
    let markers = cgen::parse_markers(&asm);
    let field_map = cgen::fields_from_markers(&markers, &fields)?;

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
        make.run_tolerant("fs/namei.s", &["fs/namei.s"])?;
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
    let profile = model::assemble(
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
    Ok(Generated { profile, warnings })
}
