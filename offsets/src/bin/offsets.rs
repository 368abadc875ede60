//! `offsets`: make, show and compare per-kernel offsets profiles.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use offsets::Profile;
use offsets::generate::{self, Generated, Request};
use offsets::kbuild::{self, SrcOptions};

#[derive(Parser)]
#[command(
    name = "offsets",
    version,
    about = "Per-kernel offsets profiles for nobtf"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a profile from a kernel source tree, a vmlinux (DWARF) or BTF.
    Gen(Box<GenArgs>),
    /// Check a profile and print it.
    Show { file: PathBuf },
    /// Compare two profiles; exit 1 when what a probe reads differs.
    Diff { a: PathBuf, b: PathBuf },
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["kernel_src", "vmlinux", "btf"]))]
struct GenArgs {
    /// A kernel source tree: pristine (with --config), or configured or
    /// built in place (used as it is, with its own .config and compiler).
    #[arg(long, value_name = "DIR")]
    kernel_src: Option<PathBuf>,
    /// A vmlinux or module (.ko) with DWARF.
    #[arg(long, value_name = "FILE")]
    vmlinux: Option<PathBuf>,
    /// Raw BTF (e.g. /sys/kernel/btf/vmlinux) or an ELF with a .BTF section.
    #[arg(long, value_name = "FILE")]
    btf: Option<PathBuf>,
    /// The kernel's .config (with --kernel-src).
    #[arg(long, value_name = "FILE", requires = "kernel_src")]
    config: Option<PathBuf>,
    /// The kernel build's output dir (O=) to create or reuse (with --kernel-src).
    #[arg(long, value_name = "DIR", requires = "kernel_src")]
    build_dir: Option<PathBuf>,
    /// The kernel's architecture: x86_64, aarch64 (arm64) or arm (armhf).
    /// Default: a vmlinux's or a kernel config's own, else this machine's. A source tree for
    /// another architecture is built with its cross gcc (CROSS_COMPILE).
    #[arg(long)]
    arch: Option<String>,
    /// Parallel make jobs for preparing the tree.
    #[arg(long, short = 'j', default_value_t = 2)]
    jobs: u32,
    /// Extra make variable for the kernel build, e.g. CC=gcc-10 (repeatable).
    #[arg(long = "make-var", value_name = "VAR=VALUE", requires = "kernel_src")]
    make_vars: Vec<String>,
    /// Extra header to include for --field structs, e.g. linux/netdevice.h (repeatable).
    #[arg(long = "include", value_name = "HEADER", requires = "kernel_src")]
    headers: Vec<String>,
    /// Extra field `struct.member` to record (repeatable).
    #[arg(long = "field", value_name = "STRUCT.MEMBER")]
    fields: Vec<String>,
    /// Record every field a `nobtf trace` program uses (its text, or a file
    /// holding it) or a CO-RE BPF object (`clang -g`) reads, as `nobtf load
    /// --offsets` will ask for them (repeatable).
    #[arg(long = "fields-from", value_name = "PROGRAM|OBJECT")]
    fields_from: Vec<String>,
    /// The kernel release to record when the input lacks one (raw BTF).
    #[arg(long)]
    release: Option<String>,
    /// Write the profile here instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn load(path: &Path) -> Result<Profile> {
    let text = String::from_utf8(read(path)?)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    Profile::from_toml_str(&text).with_context(|| format!("{}", path.display()))
}

/// What `--fields-from` names: the fields a BPF object (an ELF file)
/// reads, known at once, or a trace program's text (given, or a file
/// holding it), whose fields are found against each profile made.
enum FieldsFrom {
    Object(Vec<String>),
    Program(String),
}

fn fields_from(source: &str) -> Result<FieldsFrom> {
    let path = Path::new(source);
    if !path.is_file() {
        return Ok(FieldsFrom::Program(source.to_string()));
    }
    let bytes = read(path)?;
    if bytes.starts_with(b"\x7fELF") {
        let object =
            bpf_object::Object::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        return Ok(FieldsFrom::Object(object.needed_fields()));
    }
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    Ok(FieldsFrom::Program(text))
}

/// What the profile must hold: fields, and for `--fields-from` programs
/// the structs their own types embed and the enumerators they name.
#[derive(Default)]
struct Wanted {
    fields: Vec<String>,
    structs: Vec<String>,
    enums: Vec<String>,
}

/// Push each of `names` not yet in `list`; whether any was new.
fn add_new(list: &mut Vec<String>, names: Vec<String>) -> bool {
    let mut added = false;
    for name in names {
        if !list.contains(&name) {
            list.push(name);
            added = true;
        }
    }
    added
}

/// Add to `wanted` what the programs use against `profile`; whether any
/// is new. A program that stops on a member of unknown type (one `profile`
/// lacks) gets it next time, typed; a program that stops with nothing new
/// to add does not compile, and says why.
fn add_program_needs(programs: &[String], profile: &Profile, wanted: &mut Wanted) -> Result<bool> {
    // Which fields a program reads does not depend on the kernel's BPF
    // features; any kernel the language supports will do.
    let kernel = lang::kernel::Kernel::for_release(
        kernel_headers::KernelVersion::new(6, 1, 0),
        kernel_headers::pt_regs::NATIVE,
    );
    let mut added = false;
    let mut stopped = None;
    for source in programs {
        let not_compiled = |e: lang::Error| {
            anyhow::anyhow!(
                "--fields-from: the program does not compile:\n{}",
                e.render(source)
            )
        };
        let used = lang::fields_used_with(source, kernel, profile).map_err(not_compiled)?;
        added |= add_new(&mut wanted.fields, used.fields);
        added |= add_new(&mut wanted.structs, used.structs);
        added |= add_new(&mut wanted.enums, used.enums);
        if stopped.is_none() {
            stopped = used.stopped.map(not_compiled);
        }
    }
    match stopped {
        Some(e) if !added => Err(e),
        _ => Ok(added),
    }
}

fn gen_cmd(args: GenArgs) -> Result<()> {
    let mut wanted = Wanted {
        fields: args.fields,
        ..Wanted::default()
    };
    let mut programs = Vec::new();
    for source in &args.fields_from {
        match fields_from(source)? {
            FieldsFrom::Object(needed) => {
                add_new(&mut wanted.fields, needed);
            }
            FieldsFrom::Program(text) => programs.push(text),
        }
    }
    let arch = args
        .arch
        .as_deref()
        .map(offsets::model::check_arch)
        .transpose()?;
    let mut release = args.release;
    let mut version = None;
    // The running kernel's BTF carries no release; the running kernel does
    // (and its build string, when the release is its own).
    if release.is_none() && args.btf.as_deref() == Some(Path::new("/sys/kernel/btf/vmlinux")) {
        let proc_sys = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
                .ok()
                .map(|s| s.trim().to_string())
        };
        release = proc_sys("osrelease");
        version = proc_sys("version");
    }
    let input = match (&args.vmlinux, &args.btf) {
        (Some(path), _) | (None, Some(path)) => Some((read(path)?, path.display().to_string())),
        (None, None) => None,
    };
    let progress = &mut |msg: &str| eprintln!("offsets: {msg}");
    // Once per round of `--fields-from` programs: a chain of members is
    // followed one typed member further each round.
    let mut generate_for = |wanted: &Wanted| -> Result<Generated> {
        let request = Request {
            fields: wanted.fields.clone(),
            structs: wanted.structs.clone(),
            enums: wanted.enums.clone(),
            release: release.clone(),
            version: version.clone(),
            arch,
        };
        Ok(if let Some(tree) = &args.kernel_src {
            let opts = SrcOptions {
                tree: tree.clone(),
                config: args.config.clone(),
                build_dir: args.build_dir.clone(),
                arch: arch.map(|a| a.arch.to_string()),
                jobs: args.jobs,
                make_vars: args.make_vars.clone(),
                headers: args.headers.clone(),
                request,
            };
            kbuild::generate(&opts, progress)?
        } else if let Some((bytes, label)) = &input {
            if args.vmlinux.is_some() {
                progress(&format!("reading DWARF from {label}"));
                generate::from_vmlinux(bytes, label, &request)?
            } else {
                generate::from_btf(bytes, label, &request)?
            }
        } else {
            bail!("give one of --kernel-src, --vmlinux, --btf");
        })
    };
    let mut generated = generate_for(&wanted)?;
    while add_program_needs(&programs, &generated.profile, &mut wanted)? {
        generated = generate_for(&wanted)?;
    }
    for w in &generated.warnings {
        eprintln!("offsets: warning: {w}");
    }
    let text = generated.profile.to_toml_string();
    match args.output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

fn run() -> Result<ExitCode> {
    match Cli::parse().command {
        Cmd::Gen(args) => gen_cmd(*args)?,
        Cmd::Show { file } => {
            let profile = load(&file)?;
            print!("{}", profile.to_toml_string());
            match profile.unlink() {
                Ok(facts) => eprintln!("offsets: unlink probes: {facts:?}"),
                Err(e) => eprintln!("offsets: unlink probes cannot use this profile: {e}"),
            }
        }
        Cmd::Diff { a, b } => {
            let d = offsets::diff::diff(&load(&a)?, &load(&b)?);
            for n in &d.notes {
                println!("note: {n}");
            }
            for x in &d.differences {
                println!("differs: {x}");
            }
            if !d.differences.is_empty() {
                println!(
                    "{} difference(s) between {} and {}",
                    d.differences.len(),
                    a.display(),
                    b.display()
                );
                return Ok(ExitCode::from(1));
            }
            println!("same offsets: {} and {}", a.display(), b.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("offsets: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
