//! Stale tracefs kprobe events: a SIGKILL'd nobtf cannot remove its own,
//! so the next run (and `nobtf cleanup`) removes those whose owner is gone,
//! recognized by the name `event_name` gives them.

use std::fs;
use std::path::Path;

use super::{GROUP, KPROBE_EVENTS, UPROBE_EVENTS, write_probe_events};

/// Parses a `kprobe_events` listing into (group/name) of nobtf's events.
pub fn our_events(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|def| def.split_once(':').map(|(_, name)| name))
        .filter(|name| name.starts_with(&format!("{GROUP}/")))
        .map(str::to_string)
        .collect()
}

/// The pid in a nobtf event name (`nobtf/nobtf_<pid>_...`), if it is one.
pub fn owner_pid(event: &str) -> Option<u32> {
    let rest = event.strip_prefix(&format!("{GROUP}/{GROUP}_"))?;
    let (pid, kind_and_more) = rest.split_once('_')?;
    if !kind_and_more.starts_with("p_") && !kind_and_more.starts_with("r_") {
        return None;
    }
    // Exactly as `event_name` writes it: digits, no sign, no leading zero.
    pid.parse::<u32>().ok().filter(|p| p.to_string() == pid)
}

/// The pid in a tracing instance's name (`nobtf_<pid>`, as the tracefs
/// back end names it), if it is one.
pub fn instance_owner(name: &str) -> Option<u32> {
    let pid = name.strip_prefix(&format!("{GROUP}_"))?;
    pid.parse::<u32>().ok().filter(|p| p.to_string() == pid)
}

/// What a stale-event sweep found.
#[derive(Debug, Default)]
pub struct Sweep {
    /// (event, owner pid) removed: their owner is gone.
    pub removed: Vec<(String, u32)>,
    /// (event, owner pid) left alone: their owner still runs.
    pub kept: Vec<(String, u32)>,
    /// (event, why) that could not be removed.
    pub failed: Vec<(String, String)>,
}

/// Removes nobtf's tracefs kprobe events whose owning process is gone (a
/// tracefs event outlives a SIGKILL'd owner). Only names nobtf makes are
/// considered; other groups, and nobtf events of live processes, are never
/// touched. The kernel itself refuses to remove an event still in use.
pub fn remove_stale(tracefs: &Path, alive: &dyn Fn(u32) -> bool) -> std::io::Result<Sweep> {
    let listing = fs::read_to_string(tracefs.join(KPROBE_EVENTS))?;
    let mut sweep = Sweep::default();
    // First the tracing instances of the tracefs back end: removing one
    // disables the events enabled in it, which can then be removed.
    if let Ok(dirs) = fs::read_dir(tracefs.join("instances")) {
        for dir in dirs.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            let Some(pid) = instance_owner(&name) else {
                continue;
            };
            let shown = format!("instances/{name}");
            if alive(pid) {
                sweep.kept.push((shown, pid));
                continue;
            }
            match fs::remove_dir(dir.path()) {
                Ok(()) => sweep.removed.push((shown, pid)),
                Err(err) => sweep.failed.push((shown, err.to_string())),
            }
        }
    }
    sweep_file(tracefs, KPROBE_EVENTS, &listing, alive, &mut sweep);
    // Uprobe events, where the kernel has them.
    if let Ok(listing) = fs::read_to_string(tracefs.join(UPROBE_EVENTS)) {
        sweep_file(tracefs, UPROBE_EVENTS, &listing, alive, &mut sweep);
    }
    Ok(sweep)
}

/// Removes the events of `listing` (tracefs's `file`) whose owner is gone.
fn sweep_file(
    tracefs: &Path,
    file: &str,
    listing: &str,
    alive: &dyn Fn(u32) -> bool,
    sweep: &mut Sweep,
) {
    for event in our_events(listing) {
        let Some(pid) = owner_pid(&event) else {
            continue;
        };
        if alive(pid) {
            sweep.kept.push((event, pid));
            continue;
        }
        match write_probe_events(tracefs, file, &format!("-:{event}")) {
            Ok(()) => sweep.removed.push((event, pid)),
            Err(err) => sweep.failed.push((event, err.to_string())),
        }
    }
}

fn kind_of(event: &str) -> &'static str {
    if event.starts_with("instances/") {
        "tracing instance"
    } else {
        "kprobe event"
    }
}

/// Whether a process of this pid exists (in this pid namespace).
pub fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes stale nobtf kprobe events (their process is gone) and says so on
/// stderr; `verbose` also reports what was kept and when nothing was found.
pub fn sweep(tracefs: &Path, verbose: bool) -> Sweep {
    let sweep = match remove_stale(tracefs, &process_exists) {
        Ok(sweep) => sweep,
        Err(err) => {
            eprintln!(
                "warning: reading {}: {err}",
                tracefs.join("kprobe_events").display()
            );
            return Sweep::default();
        }
    };
    for (event, pid) in &sweep.removed {
        eprintln!(
            "nobtf: removed stale {} {event} (process {pid} is gone)",
            kind_of(event)
        );
    }
    for (event, why) in &sweep.failed {
        eprintln!(
            "warning: could not remove stale {} {event}: {why}",
            kind_of(event)
        );
    }
    if verbose {
        for (event, pid) in &sweep.kept {
            eprintln!(
                "nobtf: kept {} {event} (process {pid} is running)",
                kind_of(event)
            );
        }
        if sweep.removed.is_empty() && sweep.failed.is_empty() {
            eprintln!("nobtf: no stale kprobe events");
        }
    }
    sweep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(owner_pid("nobtf/nobtf_123_p_do_unlinkat_0"), Some(123));
        assert_eq!(owner_pid("nobtf/nobtf_9_r_do_unlinkat_isra_0_4"), Some(9));
        // Not nobtf's naming: never claimed.
        assert_eq!(owner_pid("nobtf/custom"), None);
        assert_eq!(owner_pid("nobtf/nobtf_x_p_f_0"), None);
        assert_eq!(owner_pid("nobtf/nobtf_12_q_f_0"), None);
        assert_eq!(owner_pid("nobtf/nobtf_+12_p_f_0"), None);
        assert_eq!(owner_pid("nobtf/nobtf_012_p_f_0"), None);
        assert_eq!(owner_pid("foreign/nobtf_12_p_f_0"), None);
        assert_eq!(instance_owner("nobtf_12"), Some(12));
        assert_eq!(instance_owner("nobtf_012"), None);
        assert_eq!(instance_owner("nobtf_12_x"), None);
        assert_eq!(instance_owner("other"), None);
    }

    #[test]
    fn stale_sweep_touches_only_dead_owners_events() {
        // A plain file stands in for kprobe_events: removals are appended.
        let dir = std::env::temp_dir().join(format!("nobtf-sweep-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let listing = "p:foreign/x do_unlinkat\n\
                       p:nobtf/nobtf_10_p_do_unlinkat_0 do_unlinkat\n\
                       r16:nobtf/nobtf_10_r_do_unlinkat_1 do_unlinkat\n\
                       p:nobtf/nobtf_20_p_do_unlinkat_0 do_unlinkat\n\
                       p:nobtf/handmade do_unlinkat\n";
        fs::write(dir.join("kprobe_events"), listing).unwrap();
        for instance in ["nobtf_10", "nobtf_20", "foreign"] {
            fs::create_dir_all(dir.join("instances").join(instance)).unwrap();
        }
        let sweep = remove_stale(&dir, &|pid| pid == 20).unwrap();
        let instances: Vec<bool> = ["nobtf_10", "nobtf_20", "foreign"]
            .iter()
            .map(|i| dir.join("instances").join(i).exists())
            .collect();
        let written = fs::read_to_string(dir.join("kprobe_events")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            written.strip_prefix(listing).unwrap(),
            "-:nobtf/nobtf_10_p_do_unlinkat_0\n-:nobtf/nobtf_10_r_do_unlinkat_1\n"
        );
        assert_eq!(instances, [false, true, true]);
        assert_eq!(sweep.removed.len(), 3);
        assert_eq!(
            sweep.kept,
            vec![
                ("instances/nobtf_20".to_string(), 20),
                ("nobtf/nobtf_20_p_do_unlinkat_0".to_string(), 20)
            ]
        );
        assert!(sweep.failed.is_empty());
    }

    #[test]
    fn listing_filter() {
        let listing = "p:kprobes/other do_sys_open\np:nobtf/nobtf_1_p_do_unlinkat_0 do_unlinkat\nr4:nobtf/nobtf_1_r_do_unlinkat_1 do_unlinkat\n";
        assert_eq!(
            our_events(listing),
            vec![
                "nobtf/nobtf_1_p_do_unlinkat_0",
                "nobtf/nobtf_1_r_do_unlinkat_1"
            ]
        );
    }
}
