//! What a kernel config and a tree configured in place record about how
//! they were made: the architecture, and the make variables kbuild checks
//! before it reuses a configuration (a different value makes it run
//! `syncconfig`/`silentoldconfig` again and rewrite the user's `.config`).

use std::fs;
use std::path::{Path, PathBuf};

use kernel_headers::pt_regs::Abi;

use crate::error::GenError;
use crate::model;

/// The symbol each architecture's config sets, and the arch it names
/// (`CONFIG_X86_32` is listed to be refused by name).
const ARCH_SYMBOLS: &[(&str, &str)] = &[
    ("CONFIG_X86_64=y", "x86_64"),
    ("CONFIG_ARM64=y", "aarch64"),
    ("CONFIG_ARM=y", "arm"),
    ("CONFIG_X86_32=y", "i386"),
];

/// The architecture a config is for, from the symbol only that
/// architecture's Kconfig sets; None for a fragment that sets none.
pub fn config_arch(config: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(config);
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    ARCH_SYMBOLS
        .iter()
        .find(|(symbol, _)| lines.contains(symbol))
        .map(|&(_, arch)| arch)
}

/// The architecture to build for: `--arch`, which must agree with the
/// config's own, else the config's, else this machine's.
pub fn choose_arch(
    asked: Option<&str>,
    config: &[u8],
    config_path: &Path,
) -> Result<&'static Abi, GenError> {
    let asked = asked.map(model::check_arch).transpose()?;
    let found = config_arch(config)
        .map(|arch| {
            model::check_arch(arch).map_err(|_| {
                GenError::Arch(format!("{arch} (the config {})", config_path.display()))
            })
        })
        .transpose()?;
    match (found, asked) {
        (Some(found), Some(asked)) if found != asked => Err(GenError::ArchMismatch {
            input: format!("the config {}", config_path.display()),
            found: found.arch,
            asked: asked.arch,
        }),
        (Some(abi), _) | (None, Some(abi)) => Ok(abi),
        (None, None) => Ok(kernel_headers::pt_regs::NATIVE),
    }
}

/// The make variables a tree configured in place was configured with, as
/// kbuild (4.18+) lists them in `include/config/auto.conf.cmd`
/// (`ifneq "$(CC)" "gcc"`), and the compiler its objects were built with,
/// from `kernel/.bounds.s.cmd` (every release compiles `kernel/bounds.c`
/// when it prepares a tree).
#[derive(Debug, Default, PartialEq)]
pub struct Recorded {
    pub vars: Vec<(String, String)>,
    pub built_with: Option<String>,
}

pub const AUTO_CONF_CMD: &str = "include/config/auto.conf.cmd";
pub const BOUNDS_CMD: &str = "kernel/.bounds.s.cmd";

impl Recorded {
    pub fn read(tree: &Path) -> Recorded {
        let text = |rel: &str| fs::read_to_string(tree.join(rel)).unwrap_or_default();
        Recorded {
            vars: auto_conf_vars(&text(AUTO_CONF_CMD)),
            built_with: bounds_compiler(&text(BOUNDS_CMD)),
        }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The C compiler the tree was configured or built with, and the file
    /// that says so.
    pub fn compiler(&self) -> Option<(&str, &'static str)> {
        self.var("CC")
            .map(|cc| (cc, AUTO_CONF_CMD))
            .or_else(|| self.built_with.as_deref().map(|cc| (cc, BOUNDS_CMD)))
    }
}

/// `ifneq "$(NAME)" "VALUE"` lines.
fn auto_conf_vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("ifneq \"$(")?;
            let (name, rest) = rest.split_once(")\" \"")?;
            let value = rest.strip_suffix('"')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// The compiler of `cmd_kernel/bounds.s := gcc -Wp,...`: the words before
/// the first option (`ccache gcc` stays whole).
fn bounds_compiler(text: &str) -> Option<String> {
    let cmd = text
        .lines()
        .find_map(|l| l.strip_prefix("cmd_kernel/bounds.s := "))?;
    let words: Vec<&str> = cmd
        .split_whitespace()
        .take_while(|w| !w.starts_with('-'))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The `CROSS_COMPILE` prefix of a gcc command (`arm-linux-gnueabi-gcc` ->
/// `arm-linux-gnueabi-`, `gcc` -> empty); None for another compiler.
pub fn gcc_prefix(cc: &str) -> Option<&str> {
    cc.strip_suffix("gcc")
}

/// The program a compiler command runs (the last word of `ccache gcc`), if
/// it is a path or is found on PATH.
pub fn find_program(cc: &str) -> Option<PathBuf> {
    let program = cc.split_whitespace().last()?;
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The compiler a config was made with, as kbuild's `CC_VERSION_TEXT`
/// (`gcc (Debian 12.2.0-14) 12.2.0`): `CONFIG_CC_VERSION_TEXT` (5.8+), or
/// the `# Compiler: ` comment of the header (4.18+).
pub fn config_compiler_text(config: &str) -> Option<&str> {
    config_value(config, "CONFIG_CC_VERSION_TEXT").or_else(|| {
        config
            .lines()
            .take_while(|l| l.starts_with('#') || l.is_empty())
            .find_map(|l| l.strip_prefix("# Compiler: "))
            .map(str::trim)
    })
}

/// A config value (`CONFIG_NAME=value`, quotes removed).
pub fn config_value<'a>(config: &'a str, name: &str) -> Option<&'a str> {
    config.lines().find_map(|l| {
        let value = l.strip_prefix(name)?.strip_prefix('=')?;
        Some(value.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arch_of_a_config() {
        assert_eq!(
            config_arch(b"CONFIG_64BIT=y\nCONFIG_X86_64=y\nCONFIG_X86=y\n"),
            Some("x86_64")
        );
        assert_eq!(
            config_arch(b"CONFIG_ARM64=y\n# CONFIG_ARM is not set\n"),
            Some("aarch64")
        );
        assert_eq!(
            config_arch(b"CONFIG_ARM=y\nCONFIG_ARM_LPAE=y\n"),
            Some("arm")
        );
        assert_eq!(
            config_arch(b"CONFIG_X86_32=y\nCONFIG_X86=y\n"),
            Some("i386")
        );
        assert_eq!(config_arch(b"CONFIG_SYNTHETIC=y\n"), None);
        let p = Path::new("c");
        let arm = b"CONFIG_ARM=y\n";
        assert_eq!(choose_arch(None, arm, p).unwrap().arch, "arm");
        assert_eq!(choose_arch(Some("armhf"), arm, p).unwrap().arch, "arm");
        let e = choose_arch(Some("x86_64"), arm, p).unwrap_err().to_string();
        assert!(e.contains("is a arm kernel, but --arch says x86_64"), "{e}");
        let e = choose_arch(None, b"CONFIG_X86_32=y\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported arch `i386 (the config c)`"), "{e}");
        assert_eq!(choose_arch(Some("arm64"), b"", p).unwrap().arch, "aarch64");
    }

    #[test]
    fn what_a_tree_records() {
        let auto = "deps_config := \\\n\tKconfig\n\n\
                    ifneq \"$(ARCH)\" \"x86_64\"\ninclude/config/auto.conf: FORCE\nendif\n\
                    ifneq \"$(CC_VERSION_TEXT)\" \"gcc (Debian 12.2.0-14) 12.2.0\"\n\
                    include/config/auto.conf: FORCE\nendif\n\
                    ifneq \"$(CC)\" \"arm-linux-gnueabi-gcc\"\n";
        let vars = auto_conf_vars(auto);
        assert_eq!(vars.len(), 3);
        assert_eq!(vars[1].1, "gcc (Debian 12.2.0-14) 12.2.0");
        let bounds = "cmd_kernel/bounds.s := ccache arm-linux-gcc -Wp,-MD,kernel/.bounds.s.d  \
                      -nostdinc -isystem /x\n\nsource_kernel/bounds.s := kernel/bounds.c\n";
        let r = Recorded {
            vars,
            built_with: bounds_compiler(bounds),
        };
        assert_eq!(r.built_with.as_deref(), Some("ccache arm-linux-gcc"));
        assert_eq!(r.var("ARCH"), Some("x86_64"));
        assert_eq!(r.compiler(), Some(("arm-linux-gnueabi-gcc", AUTO_CONF_CMD)));
        let built_only = Recorded {
            built_with: Some("gcc".into()),
            ..Recorded::default()
        };
        assert_eq!(built_only.compiler(), Some(("gcc", BOUNDS_CMD)));
        assert_eq!(
            gcc_prefix("arm-linux-gnueabi-gcc"),
            Some("arm-linux-gnueabi-")
        );
        assert_eq!(gcc_prefix("gcc"), Some(""));
        assert_eq!(gcc_prefix("clang"), None);
        assert_eq!(
            config_value(
                "CONFIG_A=1\nCONFIG_CC_VERSION_TEXT=\"gcc 12\"\n",
                "CONFIG_CC_VERSION_TEXT"
            ),
            Some("gcc 12")
        );
        assert_eq!(config_value("CONFIG_AB=1\n", "CONFIG_A"), None);
        let vendor = "#\n# Automatically generated file; DO NOT EDIT.\n\
                      # Linux/arm 4.19.78 Kernel Configuration\n#\n\n#\n\
                      # Compiler: arm-linux-gnueabi-gcc (Debian 6.3.0-18) 6.3.0 20170516\n#\n\
                      CONFIG_CC_IS_GCC=y\n# Compiler: not the header\n";
        assert_eq!(
            config_compiler_text(vendor),
            Some("arm-linux-gnueabi-gcc (Debian 6.3.0-18) 6.3.0 20170516")
        );
        assert_eq!(
            config_compiler_text("CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14) 12.2.0\"\n"),
            Some("gcc (Debian 12.2.0-14) 12.2.0")
        );
        assert_eq!(
            config_compiler_text("# Linux/x86 4.9.229 Kernel Configuration\n"),
            None
        );
    }
}
