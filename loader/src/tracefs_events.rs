//! Kprobe events in a tracing instance of nobtf's own
//! (`instances/nobtf_<pid>`), for `run` and `trace` on the tracefs back end
//! alike: defined, enabled, their losses read, and removed on drop.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use kernel_headers::pt_regs;
use lang::tracefs::{self, ProbeEvent};

use crate::attach::{AttachError, GROUP, diagnose, write_kprobe_events};
use crate::plan::PlanError;
use crate::session::SessionError;

/// The tracing instance's name for process `pid`; `stale` removes those
/// whose process is gone.
pub fn instance_name(pid: u32) -> String {
    format!("{GROUP}_{pid}")
}

fn write(path: &Path, text: &str) -> Result<(), SessionError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|err| SessionError::Io {
            what: format!("opening {}", path.display()),
            err,
        })?;
    file.write_all(text.as_bytes())
        .map_err(|err| SessionError::Io {
            what: format!("writing `{text}` to {}", path.display()),
            err,
        })
}

/// What was created in tracefs, removed on drop in this order: the
/// instance (which disables its events), then the events.
#[derive(Default)]
struct Created {
    instance: Option<PathBuf>,
    events: Vec<(PathBuf, String)>,
}

impl Drop for Created {
    fn drop(&mut self) {
        if let Some(dir) = self.instance.take()
            && let Err(err) = fs::remove_dir(&dir)
        {
            eprintln!(
                "warning: could not remove tracing instance {} ({err}); remove it with: rmdir {}",
                dir.display(),
                dir.display()
            );
        }
        for (tracefs, removal) in self.events.drain(..).rev() {
            if let Err(err) = write_kprobe_events(&tracefs, &removal) {
                eprintln!(
                    "warning: could not remove kprobe event ({err}); remove it with: echo '{removal}' >> {}",
                    tracefs.join("kprobe_events").display()
                );
            }
        }
    }
}

/// nobtf's tracing instance and the kprobe events enabled in it, for
/// `run` and `trace` alike: removed on drop (drop the session, whose trace
/// pipe reads the instance, first: the kernel keeps a read instance).
pub(crate) struct KprobeEvents {
    root: PathBuf,
    instance: PathBuf,
    created: Created,
}

impl KprobeEvents {
    /// Makes the instance `instances/nobtf_<pid>` under tracefs `root`, its
    /// buffer `pages` pages per CPU.
    pub fn new(root: &Path, pages: usize) -> Result<KprobeEvents, SessionError> {
        let mut created = Created::default();
        let instance = root
            .join("instances")
            .join(instance_name(std::process::id()));
        fs::create_dir(&instance).map_err(|err| SessionError::Io {
            what: format!("creating tracing instance {}", instance.display()),
            err,
        })?;
        created.instance = Some(instance.clone());
        let kb = pages * crate::sys::page_size() / 1024;
        write(&instance.join("buffer_size_kb"), &kb.to_string())?;
        Ok(KprobeEvents {
            root: root.to_path_buf(),
            instance,
            created,
        })
    }

    pub fn instance(&self) -> &Path {
        &self.instance
    }

    /// Defines `event` in one write (removed on drop); a function that
    /// cannot be probed is named as `check` names it (`clone_fix` says
    /// how to follow a compiler's clone).
    pub fn define(
        &mut self,
        event: &ProbeEvent,
        syntax: tracefs::Syntax,
        verbose: bool,
        clone_fix: &str,
    ) -> Result<(), SessionError> {
        let definition = event
            .definition(pt_regs::NATIVE, syntax)
            .map_err(|e| PlanError::Attach(e.to_string()))?;
        if verbose {
            eprintln!("nobtf: {definition}");
        }
        write_kprobe_events(&self.root, &definition).map_err(|err| {
            let err = AttachError::Define {
                definition: definition.clone(),
                path: self.root.join("kprobe_events").display().to_string(),
                err,
            };
            match diagnose::explain_attach_failure(
                &event.function,
                &err,
                Some(&self.root),
                clone_fix,
            ) {
                Some(why) => SessionError::Unprobeable {
                    program: event.name.clone(),
                    function: event.function.clone(),
                    why,
                },
                None => err.into(),
            }
        })?;
        self.created
            .events
            .push((self.root.clone(), event.removal()));
        Ok(())
    }

    /// Sets `event`'s filter in the instance (when there is one) and
    /// enables it there.
    pub fn enable(&self, event: &ProbeEvent, filter: Option<&str>) -> Result<(), SessionError> {
        let dir = self.instance.join("events").join(GROUP).join(&event.name);
        if let Some(filter) = filter {
            write(&dir.join("filter"), filter).map_err(|err| match err {
                SessionError::Io { err, .. } => SessionError::Plan(PlanError::Attach(format!(
                    "the kernel refused the event filter `{filter}` of {} ({err})",
                    event.name
                ))),
                other => other,
            })?;
        }
        write(&dir.join("enable"), "1")
    }

    /// Per-CPU losses of the instance's buffer so far.
    pub fn losses(&self) -> Vec<(u32, u64)> {
        losses(&self.instance)
    }
}

/// Per-CPU losses of the instance's buffer: events overwritten before they
/// were read (`overrun`) and events refused when full (`dropped events`).
fn losses(instance: &Path) -> Vec<(u32, u64)> {
    let mut lost = Vec::new();
    let Ok(dirs) = fs::read_dir(instance.join("per_cpu")) else {
        return lost;
    };
    for dir in dirs.flatten() {
        let name = dir.file_name();
        let Some(cpu) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cpu"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let text = fs::read_to_string(dir.path().join("stats")).unwrap_or_default();
        lost.push((cpu, parse_losses(&text)));
    }
    lost.sort_unstable();
    lost
}

/// `overrun` plus `dropped events` of a `per_cpu/cpuN/stats` file.
pub fn parse_losses(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| matches!(k.trim(), "overrun" | "dropped events"))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_add_overruns_and_drops() {
        let stats = "entries: 0\noverrun: 12\ncommit overrun: 0\nbytes: 0\noldest event ts: 0.0\nnow ts: 1.0\ndropped events: 3\nread events: 40\n";
        assert_eq!(parse_losses(stats), 15);
        assert_eq!(parse_losses(""), 0);
    }
}
