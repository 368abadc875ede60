#!/usr/bin/env bash
# Makes the vmlinux.h a user makes with bpftool for a kernel with BTF, from
# that kernel's bzImage, and prints its path:
#   tests/c/vmlinux-h.sh BZIMAGE
# The header is cached under $NOBTF_CACHE/vmlinux-h by the image's hash.
# The bzImage holds the kernel ELF compressed (xz, zstd or gzip) after its
# setup code; its .BTF section is what `bpftool btf dump` reads.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"
[ $# -eq 1 ] || { echo "usage: $0 BZIMAGE" >&2; exit 2; }
image=$1
[ -f "$image" ] || die "$image: no such kernel image"
install_packages --no-recommends bpftool xz-utils zstd gzip
command -v bpftool >/dev/null || die "bpftool not found after installing it (Debian: /usr/sbin/bpftool)"

dir=$NOBTF_CACHE/vmlinux-h
header=$dir/$(sha256sum "$image" | cut -c1-16).h
if [ -s "$header" ]; then
    printf '%s\n' "$header"
    exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# decompress FORMAT OFFSET: the stream at byte OFFSET to $tmp/vmlinux. The
# stream is followed by more of the image, so only its first stream counts;
# whether the result is the kernel is judged by its ELF magic, not the status.
decompress() {
    local format=$1 offset=$2
    case $format in
        xz) tail -c +"$((offset + 1))" "$image" | xz -dc --single-stream ;;
        zstd) tail -c +"$((offset + 1))" "$image" | zstd -dcq ;;
        gzip) tail -c +"$((offset + 1))" "$image" | gzip -dcq ;;
    esac >"$tmp/vmlinux" 2>/dev/null || true
    [ "$(head -c 4 "$tmp/vmlinux" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]
}

# Each format's magic, as a grep -P pattern over bytes.
found=
for format in xz zstd gzip; do
    case $format in
        xz) magic='\xFD\x37\x7A\x58\x5A\x00' ;;
        zstd) magic='\x28\xB5\x2F\xFD' ;;
        gzip) magic='\x1F\x8B\x08' ;;
    esac
    offsets=$(LC_ALL=C grep -obUaP "$magic" "$image" | cut -d: -f1) || true
    for offset in $offsets; do
        if decompress "$format" "$offset"; then
            found=$format
            break 2
        fi
    done
done
[ -n "$found" ] || die "$image: no xz, zstd or gzip stream in it decompresses to an ELF kernel"
bpftool btf dump file "$tmp/vmlinux" format c >"$tmp/vmlinux.h" \
    || die "$image: bpftool could not dump the BTF of its kernel (built without CONFIG_DEBUG_INFO_BTF?)"
grep -q '^struct pt_regs {' "$tmp/vmlinux.h" || die "$image: the vmlinux.h bpftool made has no struct pt_regs"
mv "$tmp/vmlinux.h" "$header"
printf '%s\n' "$header"
