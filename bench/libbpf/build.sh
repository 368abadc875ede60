#!/usr/bin/env bash
# Build the libbpf peer into OUT_DIR as one static binary, with its BPF
# object embedded (so it runs on a bare box, like nobtf).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_DIR}
mkdir -p "$out"
clang -target bpf -O2 -g -D__TARGET_ARCH_x86 -I"$here" -I/usr/include/x86_64-linux-gnu -c "$here/unlink.bpf.c" -o "$out/unlink.bpf.o"
cat >"$out/embed.S" <<EOS
    .section .rodata
    .global unlink_bpf_start, unlink_bpf_end
unlink_bpf_start:
    .incbin "$out/unlink.bpf.o"
unlink_bpf_end:
    .section .note.GNU-stack,"",@progbits
EOS
gcc -O2 -static -I"$here" -o "$out/libbpf-unlink" "$here/unlink.c" "$out/embed.S" \
    -lbpf -lelf -lz -lzstd
