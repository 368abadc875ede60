//! The C definitions a script carries (`struct`, `union`, `enum`,
//! `typedef`), parsed and laid out for the target's C ABI, as a field
//! source under the loader's: a member comes from the profile or BTF when
//! they know it, else from the script. Enumerators become constants.
//!
//! Hand-written rather than a C parser crate: the declarations bpftrace
//! tools carry are plain members (scalars, pointers, arrays, nested and
//! anonymous records, function pointers), while the C parser crates parse
//! whole translation units, need a preprocessor run first and would add
//! far more code to the binary than this.
//!
//! Layout follows the C ABIs of the three targets, which agree but for the
//! size of `long` and pointers (the kernel's pointer width): integers and
//! pointers are aligned to their size (`long long` and `double` to 8 on
//! 32-bit ARM too), arrays to their element, records to their widest
//! member, and a struct's size is rounded up to its alignment.

use std::cell::RefCell;
use std::rc::Rc;

use crate::diag::{Error, Span};
use crate::fields::{FieldInfo, FieldSource, Lookup};
use crate::lexer::{Lexer, Substitutions, Tok, Tokens};

/// Nested type definitions a declaration may use.
const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ty {
    Int {
        bytes: u32,
        signed: bool,
        /// As written (`unsigned int`, `u32`), for the checker.
        name: String,
    },
    Float(u32),
    Void,
    /// Any pointer (function pointers too); `text` is the C type.
    Ptr {
        text: String,
    },
    Array(Box<Ty>, u32),
    Record {
        union: bool,
        name: Option<String>,
        /// The members, where this declaration defines them.
        body: Option<Rc<Vec<Member>>>,
    },
    Enum(Option<String>),
    /// A typedef name: the script's, or one of the kernel's well known.
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    /// `None` for an anonymous struct or union member.
    name: Option<String>,
    ty: Ty,
    bitfield: bool,
}

/// The types and constants a script defines.
#[derive(Debug, Default)]
pub struct ScriptTypes {
    /// Named structs and unions: `("struct x", members)`.
    records: Vec<(String, Rc<Vec<Member>>)>,
    typedefs: Vec<(String, Ty)>,
    enumerators: Vec<(String, i64)>,
}

impl ScriptTypes {
    /// Parse each definition (text and place in the program); macros are
    /// expanded in them as in the probes.
    pub fn parse(
        definitions: &[(String, Span)],
        subs: Substitutions,
        pointer_bytes: u8,
    ) -> Result<ScriptTypes, Error> {
        let mut types = ScriptTypes::default();
        for (text, span) in definitions {
            let mut parser = DeclParser {
                toks: Tokens::new(Lexer::with(text, subs)),
                pointer_bytes: u32::from(pointer_bytes),
                types: &mut types,
                depth: 0,
            };
            parser.definitions().map_err(|mut e| {
                // Spans inside a definition are relative to its text.
                e.span = e
                    .span
                    .map(|s| Span::new(s.start + span.start, s.end + span.start));
                e
            })?;
        }
        Ok(types)
    }

    /// Whether the script defines `struct NAME` (or `union NAME`).
    pub fn defines(&self, strukt: &str) -> bool {
        self.record(strukt).is_some()
    }

    /// The struct or union `name`: whether a union, and its members.
    fn record(&self, name: &str) -> Option<(bool, &Rc<Vec<Member>>)> {
        self.records.iter().find_map(|(key, members)| {
            let (kind, n) = key.split_once(' ')?;
            (n == name).then_some((kind == "union", members))
        })
    }

    pub fn enumerator(&self, name: &str) -> Option<i64> {
        self.enumerators
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// A record's size and alignment, and the offset and type of the member
/// looked for when found.
type RecordLayout = (u32, u32, Option<(u32, Ty)>);

/// The loader's field source first, then the script's types, then (for
/// constants) the kernel's well-known uapi constants.
pub struct Layered<'a> {
    pub outer: &'a dyn FieldSource,
    pub script: &'a ScriptTypes,
    pub pointer_bytes: u32,
    /// Why the last lookup of a script type's member failed, for the error.
    pub problem: RefCell<Option<(String, String)>>,
    /// Ask the script first for the types it defines (`fields_used`: their
    /// members are not the profile's to supply).
    pub script_first: bool,
}

impl<'a> Layered<'a> {
    pub fn new(outer: &'a dyn FieldSource, script: &'a ScriptTypes, pointer_bytes: u8) -> Self {
        Layered {
            outer,
            script,
            pointer_bytes: u32::from(pointer_bytes),
            problem: RefCell::new(None),
            script_first: false,
        }
    }

    /// `(size, alignment)` of `ty`, or why it is unknown.
    fn size_align(&self, ty: &Ty, depth: usize) -> Result<(u32, u32), String> {
        if depth > MAX_NESTING {
            return Err("types nested too deep".into());
        }
        match ty {
            Ty::Int { bytes, .. } | Ty::Float(bytes) => Ok((*bytes, *bytes)),
            Ty::Void => Err("`void` has no size".into()),
            Ty::Ptr { .. } => Ok((self.pointer_bytes, self.pointer_bytes)),
            Ty::Array(elem, n) => {
                let (size, align) = self.size_align(elem, depth + 1)?;
                let total = size
                    .checked_mul(*n)
                    .ok_or_else(|| "an array too large".to_string())?;
                Ok((total, align))
            }
            Ty::Enum(_) => Ok((4, 4)),
            Ty::Record { union, name, body } => {
                let members = match (body, name) {
                    (Some(body), _) => body.clone(),
                    (None, Some(name)) => match self.script.record(name) {
                        Some((_, body)) => body.clone(),
                        None => {
                            return self.outer.struct_layout(name).ok_or_else(|| {
                                let kind = if *union { "union" } else { "struct" };
                                format!(
                                    "the size of `{kind} {name}` is unknown: neither the script, the offsets profile nor BTF defines it; define it in the script"
                                )
                            });
                        }
                    },
                    (None, None) => return Err("an anonymous record without members".into()),
                };
                self.record_layout(&members, *union, None, depth + 1)
                    .map(|(size, align, _)| (size, align))
            }
            Ty::Named(name) => match self.script.typedefs.iter().find(|(n, _)| n == name) {
                Some((_, ty)) => self.size_align(ty, depth + 1),
                None => Err(format!(
                    "unknown type `{name}`: define it in the script (`typedef ... {name};`)"
                )),
            },
        }
    }

    /// Size and alignment of a record; with `find`, also the offset and
    /// type of that member (searched in anonymous members too, as C does).
    fn record_layout(
        &self,
        members: &[Member],
        union: bool,
        find: Option<&str>,
        depth: usize,
    ) -> Result<RecordLayout, String> {
        let (mut offset, mut size, mut align) = (0u32, 0u32, 1u32);
        let mut found = None;
        for member in members {
            if member.bitfield {
                if find.is_some() && found.is_none() {
                    return Err(format!(
                        "the bit-field `{}` comes first: nobtf does not lay out bit-fields",
                        member.name.as_deref().unwrap_or("")
                    ));
                }
                continue;
            }
            let (msize, malign) = match self.size_align(&member.ty, depth + 1) {
                Ok(sa) => sa,
                // What follows an unknown member cannot be placed; what
                // precedes it can.
                Err(_) if found.is_some() => return Ok((0, 1, found)),
                Err(why) => return Err(why),
            };
            let at = if union {
                0
            } else {
                offset.next_multiple_of(malign)
            };
            if found.is_none()
                && let Some(want) = find
            {
                match &member.name {
                    Some(name) if name == want => found = Some((at, member.ty.clone())),
                    None => {
                        if let Ty::Record {
                            union,
                            body: Some(body),
                            ..
                        } = &member.ty
                            && let Ok((_, _, Some((inner, ty)))) =
                                self.record_layout(body, *union, Some(want), depth + 1)
                        {
                            found = Some((at + inner, ty));
                        }
                    }
                    _ => {}
                }
            }
            offset = at + msize;
            size = size.max(offset);
            align = align.max(malign);
        }
        Ok((size.next_multiple_of(align), align, found))
    }

    /// `member` (a dotted path) of the script's `strukt`.
    fn script_field(&self, strukt: &str, member: &str, depth: usize) -> Result<FieldInfo, String> {
        match self.script.record(strukt) {
            Some((union, members)) => self.member_in(members, union, member, depth),
            None => Err(String::new()),
        }
    }

    /// `path` (dotted) in a record with `members`; an empty error when
    /// there is no such member, else why it cannot be placed.
    fn member_in(
        &self,
        members: &[Member],
        union: bool,
        path: &str,
        depth: usize,
    ) -> Result<FieldInfo, String> {
        if depth > MAX_NESTING {
            return Err("types nested too deep".into());
        }
        let (first, rest) = path
            .split_once('.')
            .map_or((path, None), |(a, b)| (a, Some(b)));
        let (_, _, found) = self.record_layout(members, union, Some(first), depth)?;
        let Some((offset, mut ty)) = found else {
            return Err(String::new());
        };
        // Through the script's typedefs to the record they may name.
        for _ in 0..MAX_NESTING {
            let Ty::Named(name) = &ty else { break };
            match self.script.typedefs.iter().find(|(n, _)| n == name) {
                Some((_, named)) if !matches!(named, Ty::Int { .. }) => ty = named.clone(),
                _ => break,
            }
        }
        let inner = match (rest, &ty) {
            (None, _) => {
                let (size, _) = self.size_align(&ty, depth + 1)?;
                return Ok(FieldInfo {
                    offset,
                    size,
                    c_type: c_type(&ty),
                });
            }
            (
                Some(rest),
                Ty::Record {
                    union,
                    body: Some(body),
                    ..
                },
            ) => self.member_in(body, *union, rest, depth + 1)?,
            (
                Some(rest),
                Ty::Record {
                    name: Some(name), ..
                },
            ) => self.lookup(name, rest, depth + 1)?,
            _ => return Err(String::new()),
        };
        Ok(FieldInfo {
            offset: offset + inner.offset,
            ..inner
        })
    }

    fn lookup(&self, strukt: &str, member: &str, depth: usize) -> Result<FieldInfo, String> {
        if depth > MAX_NESTING {
            return Err("types nested too deep".into());
        }
        let script_first = self.script_first && self.script.defines(strukt);
        if !script_first && let Some(f) = self.outer.field(strukt, member) {
            return Ok(f);
        }
        self.script_field(strukt, member, depth)
    }
}

/// The member's C type as the checker reads it; `None` (an integer of its
/// size, followed by path) for unions and records without a name.
fn c_type(ty: &Ty) -> Option<String> {
    match ty {
        Ty::Int { name, .. } => Some(name.clone()),
        Ty::Float(_) | Ty::Void => None,
        Ty::Ptr { text } => Some(text.clone()),
        Ty::Array(elem, n) => match &**elem {
            Ty::Int { bytes: 1, .. } => Some(format!("char[{n}]")),
            _ => None,
        },
        Ty::Record {
            union: false,
            name: Some(name),
            ..
        } => Some(format!("struct {name}")),
        Ty::Record { .. } => None,
        Ty::Enum(_) => Some("int".into()),
        Ty::Named(name) => Some(name.clone()),
    }
}

impl FieldSource for Layered<'_> {
    fn lookup(&self, strukt: &str, member: &str) -> Lookup {
        let script_first = self.script_first && self.script.defines(strukt);
        if !script_first && let Some(f) = self.outer.field(strukt, member) {
            return Lookup::Found(f);
        }
        match self.script_field(strukt, member, 0) {
            Ok(f) => Lookup::Found(f),
            Err(why) => {
                if !why.is_empty() {
                    *self.problem.borrow_mut() = Some((format!("{strukt}.{member}"), why));
                }
                Lookup::Unknown
            }
        }
    }

    fn struct_layout(&self, strukt: &str) -> Option<(u32, u32)> {
        self.outer.struct_layout(strukt).or_else(|| {
            self.size_align(
                &Ty::Record {
                    union: false,
                    name: Some(strukt.to_string()),
                    body: None,
                },
                0,
            )
            .ok()
        })
    }

    fn enum_value(&self, name: &str) -> Option<i64> {
        self.script
            .enumerator(name)
            .or_else(|| self.outer.enum_value(name))
            .or_else(|| kernel_headers::uapi::constant(name))
    }

    fn has_kernel_btf(&self) -> bool {
        self.outer.has_kernel_btf()
    }
}

/// The kernel's common typedefs, by width and sign (`long`-wide ones are
/// resolved against the target's pointer size).
fn kernel_typedef(name: &str, pointer_bytes: u32) -> Option<(u32, bool)> {
    let long = pointer_bytes;
    Some(match name {
        "u8" | "__u8" | "uint8_t" | "bool" | "_Bool" => (1, false),
        "s8" | "__s8" | "int8_t" => (1, true),
        "u16" | "__u16" | "uint16_t" | "__be16" | "__le16" | "umode_t" | "__sum16" => (2, false),
        "s16" | "__s16" | "int16_t" => (2, true),
        "u32" | "__u32" | "uint32_t" | "__be32" | "__le32" | "uid_t" | "gid_t" | "kuid_t"
        | "kgid_t" | "dev_t" | "gfp_t" | "fmode_t" | "__wsum" | "__kernel_dev_t" => (4, false),
        "s32" | "__s32" | "int32_t" | "pid_t" | "atomic_t" | "clockid_t" => (4, true),
        "u64" | "__u64" | "uint64_t" | "__be64" | "__le64" | "sector_t" | "blkcnt_t"
        | "__kernel_ino_t" => (8, false),
        "s64" | "__s64" | "int64_t" | "loff_t" | "time64_t" | "ktime_t" | "atomic64_t" => (8, true),
        "size_t" | "uintptr_t" | "__kernel_size_t" | "__kernel_ulong_t" => (long, false),
        "ssize_t" | "ptrdiff_t" | "intptr_t" | "__kernel_ssize_t" | "__kernel_long_t"
        | "atomic_long_t" => (long, true),
        _ => return None,
    })
}

struct DeclParser<'l, 't> {
    toks: Tokens<'l>,
    pointer_bytes: u32,
    types: &'t mut ScriptTypes,
    depth: usize,
}

/// Words that qualify a type without changing its layout.
const QUALIFIERS: &[&str] = &[
    "const",
    "volatile",
    "restrict",
    "__restrict",
    "__user",
    "__kernel",
    "__rcu",
    "__iomem",
    "__percpu",
    "__force",
    "__randomize_layout",
    "static",
    "extern",
    "register",
    "inline",
];

impl DeclParser<'_, '_> {
    fn fail<T>(&mut self, expected: &str) -> Result<T, Error> {
        Err(self.toks.unexpected(expected)?)
    }

    fn eat(&mut self, p: &str) -> Result<bool, Error> {
        Ok(self.toks.eat(p)?.is_some())
    }

    fn ident(&mut self) -> Result<Option<String>, Error> {
        if let Tok::Ident(name) = &self.toks.peek()?.0 {
            let name = name.clone();
            self.toks.take()?;
            return Ok(Some(name));
        }
        Ok(None)
    }

    /// Top-level definitions to the end of the text.
    fn definitions(&mut self) -> Result<(), Error> {
        while self.toks.peek()?.0 != Tok::Eof {
            self.definition()?;
        }
        Ok(())
    }

    /// One top-level definition.
    fn definition(&mut self) -> Result<(), Error> {
        let typedef = matches!(&self.toks.peek()?.0, Tok::Ident(w) if w == "typedef");
        if typedef {
            self.toks.take()?;
        }
        let base = self.base_type()?;
        if typedef {
            loop {
                let (name, ty) = self.declarator(base.clone())?;
                let Some(name) = name else {
                    return self.fail("the typedef's name");
                };
                self.types.typedefs.push((name, ty));
                if !self.eat(",")? {
                    break;
                }
            }
        }
        self.skip_qualifiers()?;
        if self.eat(";")? || self.toks.peek()?.0 == Tok::Eof {
            return Ok(());
        }
        self.fail("`;` to end the definition")
    }

    fn skip_qualifiers(&mut self) -> Result<(), Error> {
        loop {
            let word = match &self.toks.peek()?.0 {
                Tok::Ident(w) => w.clone(),
                _ => return Ok(()),
            };
            if QUALIFIERS.contains(&word.as_str()) {
                self.toks.take()?;
            } else if word == "__attribute__" || word == "__aligned" || word == "__packed" {
                let (_, span) = self.toks.take()?;
                return Err(Error::at(
                    span,
                    format!(
                        "`{word}` changes the layout; nobtf lays out only plain C declarations"
                    ),
                ));
            } else {
                return Ok(());
            }
        }
    }

    /// The type before the declarators: a record or enum (defined here or
    /// named), integer keywords, or a typedef name.
    fn base_type(&mut self) -> Result<Ty, Error> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let span = self.toks.peek()?.1;
            return Err(Error::at(span, "type definitions nested too deep"));
        }
        let ty = self.base_type_inner();
        self.depth -= 1;
        ty
    }

    fn base_type_inner(&mut self) -> Result<Ty, Error> {
        self.skip_qualifiers()?;
        let Tok::Ident(word) = self.toks.peek()?.0.clone() else {
            return self.fail("a type");
        };
        if word == "struct" || word == "union" {
            self.toks.take()?;
            let union = word == "union";
            let name = self.ident()?;
            let body = if self.eat("{")? {
                let members = Rc::new(self.members()?);
                if let Some(name) = &name {
                    let key = format!("{word} {name}");
                    self.types.records.retain(|(n, _)| n != &key);
                    self.types.records.push((key, members.clone()));
                }
                Some(members)
            } else {
                None
            };
            if name.is_none() && body.is_none() {
                return self.fail(&format!("a name or `{{` after `{word}`"));
            }
            self.skip_qualifiers()?;
            return Ok(Ty::Record { union, name, body });
        }
        if word == "enum" {
            self.toks.take()?;
            let name = self.ident()?;
            if self.eat("{")? {
                self.enumerators()?;
            }
            return Ok(Ty::Enum(name));
        }
        // Integer keywords in any order (`unsigned long long int`).
        let mut words = Vec::new();
        while let Tok::Ident(w) = &self.toks.peek()?.0 {
            if ![
                "unsigned", "signed", "char", "short", "int", "long", "float", "double", "void",
                "_Bool",
            ]
            .contains(&w.as_str())
            {
                break;
            }
            words.push(w.clone());
            self.toks.take()?;
            self.skip_qualifiers()?;
        }
        if words.is_empty() {
            self.toks.take()?;
            self.skip_qualifiers()?;
            if self.types.typedefs.iter().any(|(n, _)| n == &word) {
                return Ok(Ty::Named(word));
            }
            return Ok(match kernel_typedef(&word, self.pointer_bytes) {
                Some((bytes, signed)) => Ty::Int {
                    bytes,
                    signed,
                    name: word,
                },
                None => Ty::Named(word),
            });
        }
        let has = |w: &str| words.iter().any(|x| x == w);
        let longs = words.iter().filter(|w| *w == "long").count();
        let name = words.join(" ");
        let signed = !has("unsigned");
        Ok(if has("void") {
            Ty::Void
        } else if has("float") {
            Ty::Float(4)
        } else if has("double") {
            Ty::Float(8)
        } else if has("_Bool") {
            Ty::Int {
                bytes: 1,
                signed: false,
                name,
            }
        } else if has("char") {
            Ty::Int {
                bytes: 1,
                signed,
                name,
            }
        } else if has("short") {
            Ty::Int {
                bytes: 2,
                signed,
                name,
            }
        } else if longs >= 2 {
            Ty::Int {
                bytes: 8,
                signed,
                name,
            }
        } else if longs == 1 {
            // `long` is as wide as the kernel's pointers.
            Ty::Int {
                bytes: self.pointer_bytes,
                signed,
                name,
            }
        } else {
            Ty::Int {
                bytes: 4,
                signed,
                name,
            }
        })
    }

    /// `{ member; ... }` after the `{`.
    fn members(&mut self) -> Result<Vec<Member>, Error> {
        let mut members = Vec::new();
        loop {
            if self.eat("}")? {
                return Ok(members);
            }
            if self.eat(";")? {
                continue;
            }
            let base = self.base_type()?;
            if self.eat(";")? {
                // An anonymous struct or union member (C11), or a nested
                // definition that declares no member.
                if let Ty::Record { name: None, .. } = base {
                    members.push(Member {
                        name: None,
                        ty: base,
                        bitfield: false,
                    });
                }
                continue;
            }
            loop {
                let (name, ty) = self.declarator(base.clone())?;
                let bitfield = if self.eat(":")? {
                    match self.toks.take()? {
                        (Tok::Int(_), _) => true,
                        (tok, span) => {
                            return Err(Error::at(
                                span,
                                format!("expected a bit-field width, found {}", tok.describe()),
                            ));
                        }
                    }
                } else {
                    false
                };
                members.push(Member { name, ty, bitfield });
                if !self.eat(",")? {
                    break;
                }
            }
            self.toks.expect(";", "after a member")?;
        }
    }

    /// `{ A, B = 2, ... }` after the `{`.
    fn enumerators(&mut self) -> Result<(), Error> {
        let mut next = 0i64;
        loop {
            if self.eat("}")? {
                return Ok(());
            }
            let Some(name) = self.ident()? else {
                return self.fail("an enumerator");
            };
            if self.eat("=")? {
                next = self.const_expr(0)?;
            }
            self.types.enumerators.retain(|(n, _)| n != &name);
            self.types.enumerators.push((name, next));
            next = next.wrapping_add(1);
            if !self.eat(",")? {
                self.toks.expect("}", "to end the enum")?;
                return Ok(());
            }
        }
    }

    /// `'*'* NAME ('[' N ']')*`, or a function pointer `(*NAME)(...)`.
    fn declarator(&mut self, base: Ty) -> Result<(Option<String>, Ty), Error> {
        let mut pointers = 0;
        loop {
            self.skip_qualifiers()?;
            if !self.eat("*")? {
                break;
            }
            pointers += 1;
        }
        if self.eat("(")? {
            // A function pointer: `(*name)(params)`; only its width matters.
            self.toks.expect("*", "in a function pointer")?;
            let name = self.ident()?;
            self.toks.expect(")", "after the function pointer's name")?;
            self.toks.expect("(", "before the function's parameters")?;
            self.skip_balanced(")")?;
            return Ok((
                name,
                Ty::Ptr {
                    text: "void (*)()".into(),
                },
            ));
        }
        let name = self.ident()?;
        let mut dims = Vec::new();
        while self.eat("[")? {
            let n = if self.eat("]")? {
                0
            } else {
                let n = self.const_expr(0)?;
                self.toks.expect("]", "to end the array's length")?;
                u32::try_from(n).map_err(|_| {
                    Error::at(
                        self.toks.peeked_span().unwrap_or_default(),
                        format!("array length {n} is out of range"),
                    )
                })?
            };
            dims.push(n);
        }
        let mut ty = base;
        for _ in 0..pointers {
            ty = Ty::Ptr {
                text: format!("{} *", pointee_text(&ty)),
            };
        }
        for n in dims.into_iter().rev() {
            ty = Ty::Array(Box::new(ty), n);
        }
        Ok((name, ty))
    }

    /// Skip to the `close` that balances, nesting parentheses.
    fn skip_balanced(&mut self, close: &str) -> Result<(), Error> {
        let mut depth = 0usize;
        loop {
            match self.toks.take()? {
                (Tok::Punct("("), _) => depth += 1,
                (Tok::Punct(p), _) if p == close && depth == 0 => return Ok(()),
                (Tok::Punct(")"), _) => depth = depth.saturating_sub(1),
                (Tok::Eof, span) => return Err(Error::at(span, format!("expected `{close}`"))),
                _ => {}
            }
        }
    }

    /// A constant: integers, earlier enumerators, `( )`, unary `- ~`, and
    /// `* + - << >> & ^ |` with C's precedence.
    fn const_expr(&mut self, level: usize) -> Result<i64, Error> {
        const LEVELS: &[&[&str]] = &[
            &["|"],
            &["^"],
            &["&"],
            &["<<", ">>"],
            &["+", "-"],
            &["*", "/"],
        ];
        let Some(ops) = LEVELS.get(level) else {
            return self.const_unary();
        };
        let mut left = self.const_expr(level + 1)?;
        'outer: loop {
            for op in *ops {
                if self.eat(op)? {
                    let right = self.const_expr(level + 1)?;
                    left = match *op {
                        "|" => left | right,
                        "^" => left ^ right,
                        "&" => left & right,
                        "<<" => left.wrapping_shl(right as u32),
                        ">>" => left.wrapping_shr(right as u32),
                        "+" => left.wrapping_add(right),
                        "-" => left.wrapping_sub(right),
                        "*" => left.wrapping_mul(right),
                        _ => left.checked_div(right).unwrap_or(0),
                    };
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn const_unary(&mut self) -> Result<i64, Error> {
        if self.eat("-")? {
            return Ok(self.const_unary()?.wrapping_neg());
        }
        if self.eat("~")? {
            return Ok(!self.const_unary()?);
        }
        if self.eat("(")? {
            let v = self.const_expr(0)?;
            self.toks.expect(")", "to close `(`")?;
            return Ok(v);
        }
        match self.toks.take()? {
            (Tok::Int(n), _) => {
                // C's integer suffixes (`1UL`) reach here as the next word.
                if let Tok::Ident(w) = &self.toks.peek()?.0
                    && w.chars().all(|c| "uUlL".contains(c))
                {
                    self.toks.take()?;
                }
                Ok(n as i64)
            }
            (Tok::Ident(name), span) => self.types.enumerator(&name).ok_or_else(|| {
                Error::at(
                    span,
                    format!("`{name}` is not a constant defined before this point"),
                )
            }),
            (tok, span) => Err(Error::at(
                span,
                format!("expected a constant, found {}", tok.describe()),
            )),
        }
    }
}

/// The C text of `ty` as a pointee (`struct qstr`, `const char`).
fn pointee_text(ty: &Ty) -> String {
    match ty {
        Ty::Int { name, .. } => name.clone(),
        Ty::Float(4) => "float".into(),
        Ty::Float(_) => "double".into(),
        Ty::Void => "void".into(),
        Ty::Ptr { text } => text.clone(),
        Ty::Array(elem, _) => pointee_text(elem),
        Ty::Record { union, name, .. } => format!(
            "{} {}",
            if *union { "union" } else { "struct" },
            name.as_deref().unwrap_or("<anonymous>")
        ),
        Ty::Enum(_) => "int".into(),
        Ty::Named(name) => name.clone(),
    }
}
