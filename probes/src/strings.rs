//! Code that finds a string's end in bytes already copied to memory, for
//! the unlink probes and `nobtf trace` alike.

use crate::asm::{AluOp, Builder, Reg, Size};

/// `found` = non-zero when a zero byte is among the `bytes` (a multiple
/// of 8) at `base + off`, else 0. A word w holds a zero byte exactly when
/// (w - 0x01..01) & !w & 0x80..80 is not zero; the words' terms are or-ed,
/// the mask last. `ones` holds the constants; r1 and r2 are clobbered.
pub fn nul_among_words(b: &mut Builder, base: Reg, off: i16, bytes: i16, found: Reg, ones: Reg) {
    b.ld_imm64(ones, 0x0101_0101_0101_0101);
    b.mov(found, 0);
    for word in (0..bytes).step_by(8) {
        b.load(Size::DW, Reg::R1, base, off + word);
        b.mov(Reg::R2, Reg::R1);
        b.alu(AluOp::Sub, Reg::R2, ones);
        b.alu(AluOp::Xor, Reg::R1, -1);
        b.alu(AluOp::And, Reg::R2, Reg::R1);
        b.alu(AluOp::Or, found, Reg::R2);
    }
    b.ld_imm64(ones, 0x8080_8080_8080_8080_u64 as i64);
    b.alu(AluOp::And, found, ones);
}
