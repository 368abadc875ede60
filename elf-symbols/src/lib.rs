//! What a uprobe needs from user-space files, as pure functions of their
//! bytes (the loader reads the files): an executable's or shared object's
//! symbols and where each lies in the file (the offset the kernel's uprobe
//! takes), and the dynamic loader's cache (`/etc/ld.so.cache`) to find a
//! library by its bare name, as `uprobe:libc:getaddrinfo` names it.
//!
//! A crate of its own: the loader is the only crate with syscalls, and
//! `lang` (pure too) has no business parsing ELF; symbolising user stacks
//! can share it.

#![forbid(unsafe_code)]

mod binary;
mod ld_cache;

pub use binary::{Binary, ElfError, Symbol};
pub use ld_cache::{LdCacheError, find_library};
