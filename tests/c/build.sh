#!/usr/bin/env bash
# Compiles the legacy BPF C test programs into OUTDIR with clang, the way
# such programs were built for kernels without BTF (no -g: no BTF at all).
#   tests/c/build.sh [--arch x86_64|aarch64|armv7] OUTDIR [VMLINUX_H]
# --arch (scripts/build's names; x86_64 by default) picks the kernel the
# objects read registers and pointers of: the sources follow libbpf's
# __TARGET_ARCH_* macro, which it defines.
# Writes OUTDIR/<name>.o for each <name>.bpf.c, and OUTDIR/unlink_kernel.o
# (bpf_probe_read_kernel instead of bpf_probe_read, for 5.5+), and the seed's
# programs from bpf-object/testdata built as libbpf-bootstrap builds them
# (libbpf-dev's headers, -g): OUTDIR/seed_kprobe.o (bpf_printk, its formats
# in .rodata) and OUTDIR/seed_core.o (CO-RE). Given VMLINUX_H (a bpftool-made
# vmlinux.h: tests/c/vmlinux-h.sh), also OUTDIR/seed_core_btf.o: the same
# seed_core.bpf.c built against that header instead of the hand-made one.
set -euo pipefail
usage="usage: $0 [--arch x86_64|aarch64|armv7] OUTDIR [VMLINUX_H]"
arch=x86_64
if [ "${1:-}" = --arch ]; then
    [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
    arch=$2
    shift 2
fi
case $arch in
    x86_64) target_arch=x86 ;;
    aarch64) target_arch=arm64 ;;
    armv7) target_arch=arm ;;
    *) echo "$0: unknown architecture '$arch' (known: x86_64 aarch64 armv7)" >&2; exit 2 ;;
esac
[ $# -eq 1 ] || [ $# -eq 2 ] || { echo "$usage" >&2; exit 2; }
out=$1
vmlinux_h=${2:-}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v clang >/dev/null || { echo "$0: clang not found: apt-get install clang" >&2; exit 1; }
mkdir -p "$out"
cc() { clang -target bpf -D__TARGET_ARCH_$target_arch -O2 -g0 -Wall -Werror -c "$@"; }
for c in "$src"/*.bpf.c; do
    name=$(basename "$c" .bpf.c)
    cc "$c" -o "$out/$name.o"
done
cc -DUSE_PROBE_READ_KERNEL "$src/unlink.bpf.c" -o "$out/unlink_kernel.o"
# As libbpf-bootstrap: its target arch for bpf_tracing.h, BTF (-g), and the
# host's multiarch directory after clang's own for <asm/types.h>.
[ -e /usr/include/bpf/bpf_helpers.h ] || { echo "$0: libbpf's headers not found: apt-get install libbpf-dev" >&2; exit 1; }
seed=$src/../../bpf-object/testdata
seed_cc() {
    clang -target bpf -D__TARGET_ARCH_$target_arch -O2 -g -Wall -Werror \
        -idirafter "/usr/include/$(clang -print-multiarch)" -c "$@"
}
for name in seed_kprobe seed_core; do
    seed_cc "$seed/$name.bpf.c" -o "$out/$name.o"
done
if [ -n "$vmlinux_h" ]; then
    [ -f "$vmlinux_h" ] || { echo "$0: $vmlinux_h: no such header" >&2; exit 1; }
    # `#include "vmlinux.h"` finds the file beside the source first, so the
    # source is compiled from a copy beside the bpftool-made header.
    btf=$out/seed_core_btf
    mkdir -p "$btf"
    cp "$seed/seed_core.bpf.c" "$btf/seed_core.bpf.c"
    cp "$vmlinux_h" "$btf/vmlinux.h"
    seed_cc "$btf/seed_core.bpf.c" -o "$out/seed_core_btf.o"
fi
