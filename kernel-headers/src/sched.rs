//! Task facts from `include/linux/sched.h`.

/// Bytes of a task's `comm`, NUL included (`bpf_get_current_comm` fills this many).
pub const TASK_COMM_LEN: usize = 16;
