//! BTF, the kernel's type format (`include/uapi/linux/btf.h`).

/// The first two bytes of `.BTF` and of `.BTF.ext`, in the writer's byte order.
pub const BTF_MAGIC: u16 = 0xeb9f;

/// `enum bpf_core_relo_kind`: what a CO-RE relocation record asks for
/// (`.BTF.ext`, libbpf's `relo_core.h`).
pub mod core_kind {
    /// A field's byte offset in its root struct.
    pub const FIELD_BYTE_OFFSET: u32 = 0;
    pub const FIELD_BYTE_SIZE: u32 = 1;
    /// 1 if the field exists on the target, else 0.
    pub const FIELD_EXISTS: u32 = 2;
    pub const FIELD_SIGNED: u32 = 3;
    /// Shifts that extract a (bit-)field loaded into a u64.
    pub const FIELD_LSHIFT_U64: u32 = 4;
    pub const FIELD_RSHIFT_U64: u32 = 5;
    pub const TYPE_ID_LOCAL: u32 = 6;
    pub const TYPE_ID_TARGET: u32 = 7;
    pub const TYPE_EXISTS: u32 = 8;
    pub const TYPE_SIZE: u32 = 9;
    pub const ENUMVAL_EXISTS: u32 = 10;
    pub const ENUMVAL_VALUE: u32 = 11;
    pub const TYPE_MATCHES: u32 = 12;
}

/// Size of one `struct bpf_core_relo` record: insn_off, type_id,
/// access_str_off, kind (u32 each).
pub const CORE_RELO_SIZE: usize = 16;
