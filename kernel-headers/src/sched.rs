//! Task facts from `include/linux/sched.h`.

/// Bytes of a task's `comm`, NUL included (`bpf_get_current_comm` fills this many).
pub const TASK_COMM_LEN: usize = 16;

/// `membarrier(2)`'s `MEMBARRIER_CMD_GLOBAL` (`include/uapi/linux/membarrier.h`,
/// 4.3+ as `MEMBARRIER_CMD_SHARED`): returns once every CPU has passed a
/// point where it ran no preemption-disabled code of before the call, as
/// `synchronize_rcu()` (4.20+) or `synchronize_sched()`.
pub const MEMBARRIER_CMD_GLOBAL: i32 = 1;
