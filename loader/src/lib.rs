//! nobtf's loader: feature detection, the plan, loading, attaching, reading
//! events. The `nobtf` binary (main.rs) is a thin front end over this
//! library; `cli` holds every command-line type.
//!
//! - `detect`: what this kernel offers; `plan`: the path each command takes
//!   (profile, reader, attach, names, kern_version); `check` prints both.
//! - `session`: maps, loading with diagnosis, attaching, the command, the
//!   event stream and teardown, for every front end (`run`, `legacy::load`).
//! - `trace`: `nobtf trace PROGRAM`, a `lang` program compiled for this
//!   kernel (fields from a profile or BTF, tracefs tracepoint formats,
//!   probed readers) and run in a session, printed through `lang::report`.
//! - `attach`: kprobes (PMU, tracefs), tracepoints, CPU clocks; stale events.
//! - `canary`: proving a profile on this kernel (`live_check`: the fields a
//!   trace program reads, and the profile's identity); `output`, `pipe_line`: the
//!   unlink events' text and JSON lines, and the trace-pipe line.
//! - `sys` (the only `unsafe`), `attrs`, `load`, `ring`, `features`: the
//!   kernel interface.
//!
//! `unsafe` is allowed in `sys` alone, each block with its SAFETY line.
#![deny(unsafe_code)]

pub mod attach;
pub mod attrs;
pub mod backend;
pub mod canary;
pub mod check;
pub mod cli;
pub mod detect;
pub mod dump;
pub mod features;
pub mod fields;
pub mod legacy;
pub mod list;
pub mod live_check;
pub mod load;
pub mod output;
pub mod pipe_line;
pub mod plan;
pub mod plan_error;
pub mod ring;
pub mod run;
pub mod session;
#[allow(unsafe_code)]
pub mod sys;
pub mod trace;
pub mod tracefs_events;
