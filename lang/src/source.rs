//! A program's text to what the checker needs: preprocessor lines handled
//! ([`crate::preprocess`]), the preamble cut ([`crate::preamble`]), the
//! probes parsed with macros and positional parameters substituted, the
//! config settings read ([`crate::config`]) and the script's C types laid
//! out ([`crate::ctypes`]).

use crate::ast::Program;
use crate::config::Config;
use crate::ctypes::ScriptTypes;
use crate::diag::Error;
use crate::lexer::Substitutions;
use crate::preprocess::{HAVE_BTF, preprocess};

pub struct Source {
    pub program: Program,
    pub config: Config,
    pub types: ScriptTypes,
}

/// What the text is read with.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions<'a> {
    /// The kernel's BTF is the field source: `BPFTRACE_HAVE_BTF` is defined.
    pub have_btf: bool,
    /// `$1`, `$2`, ... as given after the program.
    pub params: &'a [String],
    /// The target's pointer width, for the script's C types.
    pub pointer_bytes: u8,
}

pub fn read(src: &str, options: ReadOptions) -> Result<Source, Error> {
    let defined: &[&str] = if options.have_btf { &[HAVE_BTF] } else { &[] };
    let pre = preprocess(src, defined)?;
    let mut text = pre.text;
    let subs = Substitutions {
        macros: &pre.macros,
        params: options.params,
    };
    let preamble = crate::preamble::take(&mut text, subs)?;
    let program = crate::parser::parse_with(&text, subs)?;
    let config = Config::from_settings(&preamble.config)?;
    let types = ScriptTypes::parse(&preamble.definitions, subs, options.pointer_bytes)?;
    Ok(Source {
        program,
        config,
        types,
    })
}

/// The probes of `src` as written, its preamble and preprocessor lines
/// read as without BTF and without parameters: for counting attach points.
pub fn parse(src: &str) -> Result<Program, Error> {
    let options = ReadOptions {
        have_btf: false,
        params: &[],
        pointer_bytes: 8,
    };
    Ok(read(src, options)?.program)
}
