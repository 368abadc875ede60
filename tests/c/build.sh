#!/usr/bin/env bash
# Compiles the legacy BPF C test programs into OUTDIR with clang, the way
# such programs were built for kernels without BTF (no -g: no BTF at all).
#   tests/c/build.sh OUTDIR
# Writes OUTDIR/<name>.o for each <name>.bpf.c, and OUTDIR/unlink_kernel.o
# (bpf_probe_read_kernel instead of bpf_probe_read, for 5.5+), and the seed's
# programs from bpf-object/testdata built as libbpf-bootstrap builds them
# (libbpf-dev's headers, -g): OUTDIR/seed_kprobe.o (bpf_printk, its formats
# in .rodata) and OUTDIR/seed_core.o (CO-RE).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v clang >/dev/null || { echo "$0: clang not found: apt-get install clang" >&2; exit 1; }
mkdir -p "$out"
cc() { clang -target bpf -O2 -g0 -Wall -Werror -c "$@"; }
for c in "$src"/*.bpf.c; do
    name=$(basename "$c" .bpf.c)
    cc "$c" -o "$out/$name.o"
done
cc -DUSE_PROBE_READ_KERNEL "$src/unlink.bpf.c" -o "$out/unlink_kernel.o"
# As libbpf-bootstrap: its target arch for bpf_tracing.h, BTF (-g), and the
# host's multiarch directory after clang's own for <asm/types.h>.
[ -e /usr/include/bpf/bpf_helpers.h ] || { echo "$0: libbpf's headers not found: apt-get install libbpf-dev" >&2; exit 1; }
seed=$src/../../bpf-object/testdata
for name in seed_kprobe seed_core; do
    clang -target bpf -D__TARGET_ARCH_x86 -O2 -g -Wall -Werror \
        -idirafter "/usr/include/$(clang -print-multiarch)" \
        -c "$seed/$name.bpf.c" -o "$out/$name.o"
done
