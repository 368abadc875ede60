//! A program's `config = { ... }` settings, with bpftrace 0.23's keys: the
//! ones that change what nobtf does are honoured, the others are accepted
//! with one warning line each, and a key bpftrace does not know is an
//! error, as there.

use crate::check::STR_MAX;
use crate::diag::Error;
use crate::preamble::{Setting, SettingValue};

/// What to do about a probe whose function or tracepoint the kernel lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingProbes {
    /// Leave it out silently.
    Ignore,
    /// Leave it out, saying so on stderr (bpftrace's default).
    #[default]
    Warn,
    /// Refuse the program.
    Error,
}

/// The settings nobtf acts on; `None` where the program left the default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `str()`'s length when none is given (NUL included).
    pub max_strlen: Option<u32>,
    pub missing_probes: MissingProbes,
    /// `print_maps_on_exit = 0`: no map dump at the end.
    pub print_maps_on_exit: bool,
    /// Data pages per CPU perf ring (as `--buffer-pages`).
    pub perf_rb_pages: Option<usize>,
    /// One line each for the settings accepted but without effect here.
    pub warnings: Vec<String>,
}

/// bpftrace 0.23's config keys that nobtf accepts without acting on them.
const WITHOUT_EFFECT: &[&str] = &[
    "cache_user_symbols",
    "cpp_demangle",
    "lazy_symbolication",
    "log_size",
    "max_bpf_progs",
    "max_cat_bytes",
    "max_map_keys",
    "max_probes",
    "max_type_res_iterations",
    "on_stack_limit",
    "probe_inline",
    "stack_mode",
    "str_trunc_trailer",
    "symbol_source",
    "use_blazesym",
];

/// Only settable through the environment in bpftrace.
const ENV_ONLY: &[&str] = &[
    "btf",
    "debug_output",
    "kernel_build",
    "kernel_source",
    "max_ast_nodes",
    "verify_llvm_ir",
    "vmlinux",
];

impl Config {
    pub fn from_settings(settings: &[Setting]) -> Result<Config, Error> {
        let mut config = Config {
            print_maps_on_exit: true,
            ..Config::default()
        };
        for setting in settings {
            // bpftrace takes keys in any case, with or without its prefix.
            let key = setting.key.to_ascii_lowercase();
            let key = key.strip_prefix("bpftrace_").unwrap_or(&key);
            let fail = |message: String| Error::at(setting.span, message);
            let int = || match setting.value {
                SettingValue::Int(n) => Ok(n),
                _ => Err(fail(format!(
                    "config `{key}` takes an integer, not {}",
                    setting.value.describe()
                ))),
            };
            match key {
                "max_strlen" => {
                    let n = int()?;
                    if !(1..=u64::from(STR_MAX)).contains(&n) {
                        return Err(fail(format!(
                            "config max_strlen = {n}: nobtf reads strings into a buffer on the 512-byte BPF stack; give 1..={STR_MAX}"
                        )));
                    }
                    config.max_strlen = Some(n as u32);
                }
                "missing_probes" => {
                    config.missing_probes = match &setting.value {
                        SettingValue::Str(s) if s == "ignore" => MissingProbes::Ignore,
                        SettingValue::Str(s) if s == "warn" => MissingProbes::Warn,
                        SettingValue::Str(s) if s == "error" => MissingProbes::Error,
                        other => {
                            return Err(fail(format!(
                                "config missing_probes = {}: valid values are \"ignore\", \"warn\" and \"error\"",
                                other.describe()
                            )));
                        }
                    }
                }
                "print_maps_on_exit" => {
                    config.print_maps_on_exit = match int()? {
                        0 => false,
                        1 => true,
                        n => {
                            return Err(fail(format!(
                                "config print_maps_on_exit = {n}: give 0 or 1"
                            )));
                        }
                    }
                }
                "perf_rb_pages" => {
                    let n = int()?;
                    match usize::try_from(n) {
                        Ok(n) if n.is_power_of_two() => config.perf_rb_pages = Some(n),
                        _ => {
                            return Err(fail(format!(
                                "config perf_rb_pages = {n}: the kernel needs a power of two"
                            )));
                        }
                    }
                }
                _ if WITHOUT_EFFECT.contains(&key) => config.warnings.push(format!(
                    "warning: config {key} = {} has no effect in nobtf trace",
                    setting.value.describe()
                )),
                _ if ENV_ONLY.contains(&key) => {
                    return Err(fail(format!(
                        "{key} can only be set as an environment variable"
                    )));
                }
                _ => {
                    return Err(fail(format!(
                        "unrecognized config variable: {}",
                        setting.key
                    )));
                }
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;

    fn setting(key: &str, value: SettingValue) -> Setting {
        Setting {
            key: key.into(),
            value,
            span: Span::new(0, 1),
        }
    }

    #[test]
    fn honoured_warned_and_refused() {
        let config = Config::from_settings(&[
            setting("max_strlen", SettingValue::Int(100)),
            setting(
                "BPFTRACE_MISSING_PROBES",
                SettingValue::Str("ignore".into()),
            ),
            setting("print_maps_on_exit", SettingValue::Int(0)),
            setting("perf_rb_pages", SettingValue::Int(16)),
            setting("stack_mode", SettingValue::Word("perf".into())),
        ])
        .unwrap();
        assert_eq!(config.max_strlen, Some(100));
        assert_eq!(config.missing_probes, MissingProbes::Ignore);
        assert!(!config.print_maps_on_exit);
        assert_eq!(config.perf_rb_pages, Some(16));
        assert_eq!(
            config.warnings,
            ["warning: config stack_mode = perf has no effect in nobtf trace"]
        );
        assert_eq!(
            Config::from_settings(&[]).unwrap().missing_probes,
            MissingProbes::Warn
        );

        let error = |key: &str, value| {
            Config::from_settings(&[setting(key, value)])
                .unwrap_err()
                .message
        };
        assert!(error("max_strlen", SettingValue::Int(1024)).contains("give 1..=200"));
        assert!(error("max_strlen", SettingValue::Str("x".into())).contains("takes an integer"));
        assert!(
            error("missing_probes", SettingValue::Str("maybe".into())).contains("valid values")
        );
        assert!(error("perf_rb_pages", SettingValue::Int(3)).contains("power of two"));
        assert!(error("vmlinux", SettingValue::Int(1)).contains("environment variable"));
        assert_eq!(
            error("frobs", SettingValue::Int(1)),
            "unrecognized config variable: frobs"
        );
    }
}
