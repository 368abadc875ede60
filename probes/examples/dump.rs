//! Print the disassembly of every unlink probe variant, built from the
//! builtin (4.19..6.x) profile and from a 4.14-style profile where the path
//! is a user pointer.
//!
//! `cargo run -p probes --example dump`
#![forbid(unsafe_code)]

use probes::unlink::{self, Choices, CommRead, Output, Readers};
use profile::NameArgType;

fn main() -> Result<(), probes::BuildError> {
    let filename = profile::builtin::FILENAME.profile("5.4.0");
    let mut user_path = profile::builtin::FILENAME.profile("4.14.0");
    if let Some(f) = user_path.functions.get_mut(profile::DO_UNLINKAT) {
        f.name_arg_type = NameArgType::UserPath;
    }
    for output in [Output::PerfEvents, Output::TracePrintk] {
        for read in [Readers::ProbeReadStr, Readers::Split] {
            let choices = Choices {
                read,
                output,
                comm: CommRead::Helper,
            };
            for (arg, profile) in [
                ("struct filename *", &filename),
                ("const char __user *", &user_path),
            ] {
                let program = unlink::entry(profile, &choices)?;
                print(&program, &format!("{output:?}, {read:?}, {arg}"));
            }
        }
        // The exit probe reads nothing through helpers: one per output.
        let choices = Choices {
            read: Readers::Split,
            output,
            comm: CommRead::Helper,
        };
        print(&unlink::exit(&filename, &choices)?, &format!("{output:?}"));
    }
    Ok(())
}

fn print(program: &probes::Program, variant: &str) {
    let helpers: Vec<String> = program
        .helpers()
        .iter()
        .map(|h| format!("{} ({})", h.name(), h.since().series()))
        .collect();
    println!(
        "; {} ({:?} {}) [{variant}], {} instructions",
        program.name(),
        program.kind(),
        program.function(),
        program.len()
    );
    println!("; helpers: {}", helpers.join(", "));
    for map in program.maps() {
        println!(
            "; map {}: type {}, {:?} entries",
            map.name, map.map_type, map.max_entries
        );
    }
    println!("{program}");
}
