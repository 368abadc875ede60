#!/usr/bin/env bash
# Compiles the legacy BPF C test programs into OUTDIR with clang, the way
# such programs were built for kernels without BTF (no -g: no BTF at all).
#   tests/c/build.sh OUTDIR
# Writes OUTDIR/<name>.o for each <name>.bpf.c, and OUTDIR/unlink_kernel.o
# (bpf_probe_read_kernel instead of bpf_probe_read, for 5.5+).
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
