//! `nobtf trace`: a subset of bpftrace's language, with bpftrace's meaning,
//! compiled to BPF through `probes`' builder. Pure: no syscalls.
//!
//! Phases, each its own module: [`source`] reads the text ([`preprocess`]
//! for `#` lines, [`preamble`] for C definitions laid out by [`ctypes`] and
//! [`config`] settings) -> [`lexer`] (macros and `$1` substituted) ->
//! [`parser`] ([`ast`], spans on every node) -> [`check`] against struct
//! [`fields`] (the loader's, then the script's), [`tracepoint`]
//! formats and the [`providers`] table, into the [`typed`] program ->
//! [`codegen`] for the [`kernel`]'s capabilities. [`compile`] runs them all;
//! [`output`] describes and decodes what the programs write.
//!
//! # What the loader does with it
//! 1. Build a [`Target`]: a [`fields::FieldSource`] (a `profile::Profile`
//!    implements it; BTF can too), a [`tracepoint::TracepointSource`] that
//!    reads tracefs `events/CAT/NAME/format` and hands the text to
//!    [`tracepoint::parse_format`], and a [`kernel::Kernel`] (readers,
//!    per-CPU hash, instruction limit, [`kernel_headers::pt_regs::Abi`]),
//!    e.g. [`kernel::Kernel::for_release`] adjusted by feature probes.
//! 2. [`compile`] the text; on error print [`Error::render`] (the source line
//!    and a caret) and stop before touching the kernel.
//! 3. Create each [`output::MapSpec`] (`map_type()`, sizes, `max_entries`)
//!    and, when [`Compiled::events`] is not empty, a perf event array named
//!    [`output::EVENTS_MAP`] with one entry per possible CPU.
//! 4. For each [`CompiledProbe`]: [`CompiledProbe::encode`] with the map
//!    fds and load with `attach.prog_type()` and [`CompiledProbe::name`];
//!    then run [`userspace::start`] (`elapsed`'s start, then BEGIN, in user
//!    space against the maps through a [`userspace::Host`]), so that
//!    BEGIN's map writes are in the kernel before anything fires; then
//!    attach per [`providers::AttachPoint`] (kprobe, kretprobe, tracepoint
//!    by id, or an interval as a `cpu-clock` software event on one CPU), and
//!    run each [`Timer`]'s block on a user-space timer.
//! 5. Decode each perf sample's data with [`output::decode_event`]: printf
//!    (format and typed values), print, clear, exit, time.
//! 6. At exit run [`Compiled::end`] ([`userspace::run_all`]), then print
//!    every map: keys
//!    by [`output::MapSpec::decode_key`], values (all CPUs' slices) by
//!    [`output::MapSpec::combine`], histogram buckets by
//!    [`output::MapSpec::bucket`]; [`report`] turns records and map
//!    entries into bpftrace's text or JSON through the [`format`] printers.
//!
//! [`fields_used`] lists the `struct.member` keys a program needs, for
//! `offsets gen --fields-from PROGRAM`.
//!
//! [`tracefs`] is the form of a probe that needs no BPF: kprobe events with
//! fetch arguments and a pid filter, and the parser of their trace-pipe
//! lines (the loader's tracefs back end, for kernels without bpf(2));
//! [`tracefs_program`] translates a checked program that needs no BPF into
//! such events and turns their lines back into records, refusing with its
//! place each construct that needs BPF.
#![forbid(unsafe_code)]

mod arrays;
pub mod ast;
pub mod check;
pub mod codegen;
mod compile;
pub mod config;
pub mod ctypes;
pub mod diag;
pub mod expand;
pub mod fields;
pub mod flush;
pub mod format;
mod func_keys;
pub mod glob;
pub mod kernel;
pub mod lexer;
pub mod output;
pub mod parser;
pub mod preamble;
pub mod preprocess;
pub mod providers;
pub mod report;
pub mod sampling;
pub mod source;
pub mod symbols;
pub mod syscalls;
pub mod tracefs;
pub mod tracefs_program;
pub mod tracepoint;
pub mod typed;
pub mod userspace;

pub use compile::{
    Compiled, CompiledProbe, FieldsUsed, Options, Target, Timer, compile, compile_with,
    fields_used, fields_used_with, names_used,
};
pub use diag::{Error, Span};
pub use source::parse;
