//! BTF, the kernel's type format (`include/uapi/linux/btf.h`).

/// The first two bytes of `.BTF` and of `.BTF.ext`, in the writer's byte order.
pub const BTF_MAGIC: u16 = 0xeb9f;
