#!/usr/bin/env bash
# Build the libbpf peer (libbpf-unlink) and the limit (libbpf-limit: empty
# programs on the same probes) into OUT_DIR, each one static binary with its
# BPF object embedded (so it runs on a bare box, like nobtf).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_DIR}
mkdir -p "$out"
# build NAME: NAME.bpf.c and NAME.c into libbpf-NAME.
build() {
    clang -target bpf -O2 -g -D__TARGET_ARCH_x86 -I"$here" -I/usr/include/x86_64-linux-gnu \
        -c "$here/$1.bpf.c" -o "$out/$1.bpf.o"
    cat >"$out/embed-$1.S" <<EOS
    .section .rodata
    .global $1_bpf_start, $1_bpf_end
$1_bpf_start:
    .incbin "$out/$1.bpf.o"
$1_bpf_end:
    .section .note.GNU-stack,"",@progbits
EOS
    gcc -O2 -static -I"$here" -o "$out/libbpf-$1" "$here/$1.c" "$out/embed-$1.S" \
        -lbpf -lelf -lz -lzstd
}
build unlink
build limit
