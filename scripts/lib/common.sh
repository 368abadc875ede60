# Shared by the nobtf scripts: cache layout, Debian package fetching, kernels.
# shellcheck shell=bash

NOBTF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NOBTF_CACHE=${NOBTF_CACHE:-$HOME/.cache/nobtf}
KERNELS_DIR=$NOBTF_CACHE/kernels

log() { printf '[nobtf] %s\n' "$*" >&2; }

# How scripts/vm's messages start when the VM itself failed (no boot, a
# guest oops, a timeout), as opposed to the command in it: the test runner
# retries on it.
VM_FAILURE_PREFIX='scripts/vm: VM failure:'

# Whether Debian package $1 is installed. No `cmd | grep -q` in these
# scripts: under pipefail, grep -q exiting at its first match can kill the
# writer with SIGPIPE and fail the pipeline (seen: 2 in 3000 runs).
installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == *"ok installed"* ]]
}

# install_packages [--no-recommends] PKG...: installs those not installed
# yet, in one apt run.
install_packages() {
    local flags=() missing=() p
    if [ "${1:-}" = --no-recommends ]; then
        flags=(--no-install-recommends)
        shift
    fi
    for p in "$@"; do
        installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    log "installing ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: run as root or install them"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${flags[@]+"${flags[@]}"} "${missing[@]}" >/dev/null
}

# The release binaries, static and not position-independent: no .rela.dyn
# (65 KB of the 2 MB budget) and no self-relocation at start. Under TCG a
# non-PIE text also sits at the same address every run, so the emulator
# reuses its translations: attach took 40-57 ms warm against 84-95 ms for
# static-pie, an emulator effect more than a hardware one. What PIE would
# add, ASLR of nobtf's own image, matters less for a short-lived tool
# written in a memory-safe language.
# No .eh_frame_hdr (33 KB on x86-64): with panic=abort nothing unwinds.
# x86-64 and arm64 drop the unwind tables themselves too (arch_rustflags in
# scripts/lib/cross.sh).
STATIC_RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static -C link-arg=-Wl,--no-eh-frame-hdr'
# x86-64 links against musl, which rustup ships for that target: static
# glibc alone was ~0.74 MB of a 2.16 MB nobtf (its start-up code pulls in
# gettext, iconv and dlopen), the musl build is 1.53 MB, and starts no
# slower. The ARM builds stay on glibc: Debian ships their std for it only.
X86_64_TRIPLE=x86_64-unknown-linux-musl
# x86_64_target: rustup adds the musl standard library once (a download of
# a few tens of MB), or says why it cannot.
x86_64_target() {
    grep -qx "$X86_64_TRIPLE" <<<"$(rustup target list --installed 2>/dev/null)" && return
    log "adding Rust's $X86_64_TRIPLE standard library (rustup target add)"
    rustup target add "$X86_64_TRIPLE" >&2 \
        || die "rustup could not add $X86_64_TRIPLE, which the static x86-64 build needs: run 'rustup target add $X86_64_TRIPLE' where the network reaches rustup's server"
}
# build_static BIN...: release builds of the named binaries.
build_static() {
    local args=() bin
    for bin in "$@"; do args+=(--bin "$bin"); done
    x86_64_target
    (cd "$NOBTF_ROOT" && RUSTFLAGS="$STATIC_RUSTFLAGS $(arch_rustflags x86_64)" \
        cargo build --quiet --release --target "$X86_64_TRIPLE" "${args[@]}")
}
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

# with_progress LABEL CMD...: runs CMD; while it runs, says every
# NOBTF_PROGRESS_SECS (60) seconds on stderr that LABEL is still going, so
# a long build or download is never a silent wait.
with_progress() {
    local label=$1 start=$SECONDS every=${NOBTF_PROGRESS_SECS:-60} ticker rc=0
    shift
    # On stderr only, and taking its sleep with it when stopped: nothing
    # keeps a caller's $(...) pipe open.
    (
        trap 'kill "$nap" 2>/dev/null; exit 0' TERM
        while :; do
            sleep "$every" &
            nap=$!
            wait "$nap"
            log "still $label ($((SECONDS - start)) s)"
        done
    ) >&2 </dev/null &
    ticker=$!
    "$@" || rc=$?
    kill "$ticker" 2>/dev/null
    wait "$ticker" 2>/dev/null || true
    return $rc
}

# The machine's own Debian mirror, read from its apt configuration, so no
# registry host name lives in this repository.
debian_mirror() {
    local uri
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    if [ -z "$uri" ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\// && $i !~ /security/) { print $i; exit } }' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
    fi
    [ -n "$uri" ] || die "no Debian mirror in this machine's apt configuration (/etc/apt/sources.list*)"
    printf '%s\n' "$uri"
}

# apt-get/apt-cache against a private state for one suite; the machine's
# own apt sources and state are never touched.
suite_apt() {
    local suite=$1 tool=$2; shift 2
    local dir=$NOBTF_CACHE/apt/$suite
    "$tool" -q -o Dir::State="$dir" -o Dir::State::Lists="$dir/lists" \
        -o Dir::State::status="$dir/status" -o Dir::Cache="$dir/cache" \
        -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"
}

suite_update() {
    local suite=$1 dir=$NOBTF_CACHE/apt/$1
    # Lists younger than a day are good enough: package names, not freshness, matter.
    if [ -n "$(find "$dir/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)" ]; then
        return 0
    fi
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    touch "$dir/status"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
        "$(debian_mirror)" "$suite" >"$dir/sources.list"
    log "updating the private package list for Debian $suite"
    suite_apt "$suite" apt-get update >/dev/null || die "apt-get update for Debian $suite failed"
}

# Download one package of a suite into DEST_DIR; prints the .deb path.
suite_download() {
    local suite=$1 pkg=$2 dest=$3
    suite_update "$suite"
    mkdir -p "$dest"
    (cd "$dest" && suite_apt "$suite" apt-get download "$pkg" >/dev/null) \
        || die "could not download $pkg from Debian $suite"
    ls -t "$dest"/"${pkg}"_*.deb | head -n1
}

# The versioned image package a suite's linux-image-amd64 points to.
suite_image_package() {
    local suite=$1
    suite_update "$suite"
    suite_apt "$suite" apt-cache show --no-all-versions linux-image-amd64 \
        | sed -n 's/^Depends: *\(linux-image-[^ ,]*\).*/\1/p' | head -n1
}

# name -> Debian suite for the prebuilt images.
kernel_suite() {
    case $1 in
        debian-5.10) echo bullseye ;;
        debian-6.1) echo bookworm ;;
        debian-6.12) echo trixie ;;
        *) return 1 ;;
    esac
}

KNOWN_KERNELS="debian-6.1 debian-5.10 debian-6.12 nobtf-5.10 nobpf-5.10 linux-4.14 linux-5.4"

# The upstream 4.14 and 5.4 images (no BTF) live beside the repository in
# shared/kernels/ and are used in place: they are built once by hand (its
# README.md says how), not by these scripts.
SHARED_KERNELS_DIR=${NOBTF_SHARED_KERNELS:-$NOBTF_ROOT/../shared/kernels}

# name -> the image file in $SHARED_KERNELS_DIR, for the upstream kernels.
shared_kernel_file() {
    case $1 in
        linux-4.14) echo linux-4.14.177 ;;
        linux-5.4) echo linux-5.4.286 ;;
        *) return 1 ;;
    esac
}

# kernel_bzimage NAME: the image scripts/vm boots for a kernel name.
kernel_bzimage() {
    local file
    if file=$(shared_kernel_file "$1"); then
        printf '%s\n' "$SHARED_KERNELS_DIR/$file.bzImage"
    else
        printf '%s\n' "$KERNELS_DIR/$1/bzImage"
    fi
}

# kernel_release NAME: `uname -r` of a ready kernel.
kernel_release() {
    local file
    if file=$(shared_kernel_file "$1"); then
        printf '%s\n' "${file#linux-}"
    else
        cat "$KERNELS_DIR/$1/release"
    fi
}

# kernel_config NAME: the .config a ready kernel was built with.
kernel_config() {
    local file
    if file=$(shared_kernel_file "$1"); then
        printf '%s\n' "$SHARED_KERNELS_DIR/$file.config"
    else
        printf '%s\n' "$KERNELS_DIR/$1/config"
    fi
}

# The built kernel is ready only if it was built from today's config fragment.
fragment_hash() { sha256sum "$NOBTF_ROOT/scripts/lib/$1.config" | cut -c1-16; }

kernel_ready() {
    [ -f "$(kernel_bzimage "$1")" ] || return 1
    case $1 in
        nobtf-5.10|nobpf-5.10) [ "$(cat "$KERNELS_DIR/$1/fragment" 2>/dev/null)" = "$(fragment_hash "$1")" ] ;;
    esac
}

# Atomically publish a prepared directory: nothing half-done ever looks ready.
publish_dir() {
    local tmp=$1 final=$2
    rm -rf "$final.old"
    [ -e "$final" ] && mv "$final" "$final.old"
    mv "$tmp" "$final"
    rm -rf "$final.old"
}

fetch_debian_image() {
    local name=$1 suite pkg deb tmp
    suite=$(kernel_suite "$name") || die "unknown kernel $name"
    pkg=$(suite_image_package "$suite")
    [ -n "$pkg" ] || die "Debian $suite has no linux-image-amd64 dependency to follow"
    tmp=$(mktemp -d "$KERNELS_DIR/.$name.XXXXXX")
    log "fetching $pkg from Debian $suite"
    deb=$(with_progress "fetching $pkg" suite_download "$suite" "$pkg" "$tmp/deb")
    dpkg-deb -x "$deb" "$tmp/root"
    cp "$tmp"/root/boot/vmlinuz-* "$tmp/bzImage"
    cp "$tmp"/root/boot/config-* "$tmp/config"
    basename "$tmp"/root/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$tmp/release"
    echo "$pkg" >"$tmp/package"
    rm -rf "$tmp/root" "$tmp/deb"
    publish_dir "$tmp" "$KERNELS_DIR/$name"
}

# Debian's linux-source-X tarball, unpacked once under the cache; prints the tree.
fetch_linux_source() {
    local version=$1 suite=$2 dir=$NOBTF_CACHE/src/linux-source-$1 tmp deb
    if [ ! -f "$dir/Makefile" ]; then
        mkdir -p "$NOBTF_CACHE/src"
        tmp=$(mktemp -d "$NOBTF_CACHE/src/.linux-source-$version.XXXXXX")
        log "fetching linux-source-$version from Debian $suite"
        deb=$(with_progress "fetching linux-source-$version" suite_download "$suite" "linux-source-$version" "$tmp/deb")
        dpkg-deb -x "$deb" "$tmp/root"
        log "unpacking linux-source-$version"
        with_progress "unpacking linux-source-$version" \
            tar -C "$tmp" -xf "$tmp"/root/usr/src/linux-source-"$version".tar.*
        mv "$tmp/linux-source-$version" "$tmp/tree"
        rm -rf "$tmp/root" "$tmp/deb"
        rm -rf "$dir"
        mv "$tmp/tree" "$dir"
        rmdir "$tmp"
    fi
    printf '%s\n' "$dir"
}

# The 5.10s the harness builds itself, out of tree from tinyconfig plus
# scripts/lib/NAME.config, cached as NAME once per fragment: nobtf-5.10
# (BTF-less, what nobtf needs) with --keep-objects, whose DWARF is kept for
# the offsets work; nobpf-5.10 (CONFIG_BPF_SYSCALL off, kprobe events on,
# for the tracefs back end) keeps its image only. Every `CONFIG_X=y` of the
# fragment is checked to stay on, every `# CONFIG_X is not set` to stay off.
build_tiny_5_10() {
    local name=$1 keep=${2:-} fragment=$NOBTF_ROOT/scripts/lib/$1.config src tmp jobs opt
    src=$(fetch_linux_source 5.10 bullseye)
    rm -rf "$KERNELS_DIR"/.$name.*  # leftovers of an interrupted build
    tmp=$(mktemp -d "$KERNELS_DIR/.$name.XXXXXX")
    jobs=$(nproc)
    log "configuring $name (out of tree, in $tmp/build)"
    make -s -C "$src" O="$tmp/build" tinyconfig >/dev/null
    "$src/scripts/kconfig/merge_config.sh" -m -O "$tmp/build" "$tmp/build/.config" "$fragment" >/dev/null
    make -s -C "$src" O="$tmp/build" olddefconfig >/dev/null
    for opt in $(sed -n 's/^\(CONFIG_[A-Z0-9_]*\)=y$/\1/p' "$fragment"); do
        grep -q "^$opt=y" "$tmp/build/.config" || die "$name config lost $opt (a dependency is missing from $fragment)"
    done
    for opt in $(sed -n 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1/p' "$fragment"); do
        ! grep -q "^$opt=y" "$tmp/build/.config" || die "$name config has $opt (something in $fragment selects it)"
    done
    log "building $name with $jobs jobs (several minutes, once; log: $tmp/build.log)"
    local start=$SECONDS
    if ! with_progress "building $name" make -C "$src" O="$tmp/build" -j"$jobs" bzImage >"$tmp/build.log" 2>&1; then
        tail -n 30 "$tmp/build.log" >&2
        die "building $name failed; full log in $tmp/build.log"
    fi
    log "built $name in $((SECONDS - start)) s"
    cp "$tmp/build/arch/x86/boot/bzImage" "$tmp/bzImage"
    cp "$tmp/build/.config" "$tmp/config"
    cat "$tmp/build/include/config/kernel.release" >"$tmp/release"
    fragment_hash "$name" >"$tmp/fragment"
    if [ "$keep" = --keep-objects ]; then
        ln -s build/vmlinux "$tmp/vmlinux"
        echo "$src" >"$tmp/source"
    else
        rm -rf "$tmp/build"
    fi
    publish_dir "$tmp" "$KERNELS_DIR/$name"
}

fetch_kernel() {
    mkdir -p "$KERNELS_DIR"
    case $1 in
        debian-*-arm*) fetch_debian_arm_image "$1" ;;
        debian-*) fetch_debian_image "$1" ;;
        nobtf-5.10) build_tiny_5_10 nobtf-5.10 --keep-objects ;;
        nobpf-5.10) build_tiny_5_10 nobpf-5.10 ;;
        linux-*) shared_kernel_file "$1" >/dev/null || die "unknown kernel '$1' (known: $KNOWN_KERNELS)"
                 kernel_ready "$1" \
                     || die "$1 is not built here: $(kernel_bzimage "$1") is missing (see shared/kernels/README.md beside the repository)"
                 log "$1: used in place from $(kernel_bzimage "$1")" ;;
        *) die "unknown kernel '$1' (known: $KNOWN_KERNELS)" ;;
    esac
}

ensure_kernel() {
    kernel_ready "$1" || fetch_kernel "$1"
}

# The bench's root filesystem: a Debian 13 userland with the peers
# (bpftrace 0.23, ply 2.4), packed once for `scripts/vm --rootfs`. Used by
# scripts/bench and the conformance test against bpftrace.
BENCH_ROOTFS=$NOBTF_CACHE/bench/rootfs-trixie.cpio
bench_rootfs_ready() { [ -f "$BENCH_ROOTFS" ]; }
# debootstrap_trixie DIR MIRROR: its log in DIR/debootstrap.log, so
# with_progress's lines still show.
debootstrap_trixie() {
    debootstrap --variant=minbase --include=bpftrace,ply trixie "$1/root" "$2" >"$1/debootstrap.log" 2>&1
}
ensure_bench_rootfs() {
    bench_rootfs_ready && return 0
    install_packages debootstrap
    local dir tmp mirror
    mirror=$(debian_mirror) || exit 2
    dir=$(dirname "$BENCH_ROOTFS")
    mkdir -p "$dir"
    tmp=$(mktemp -d "$dir/.rootfs.XXXXXX")
    log "debootstrapping Debian trixie with bpftrace and ply (about a minute, once)"
    with_progress "debootstrapping Debian trixie" debootstrap_trixie "$tmp" "$mirror" \
        || { tail -n 20 "$tmp/debootstrap.log" >&2; rm -rf "$tmp"; die "debootstrap failed"; }
    rm -rf "$tmp"/root/var/cache/apt/* "$tmp"/root/var/lib/apt/lists/* \
        "$tmp"/root/usr/share/{doc,man,info,locale}
    (cd "$tmp/root" && find . | cpio --quiet -o -H newc) >"$tmp/rootfs.cpio"
    mv "$tmp/rootfs.cpio" "$BENCH_ROOTFS"
    rm -rf "$tmp"
}

# ARM builds and kernels (rust_toolchain, build_static_arch, ...).
source "$NOBTF_ROOT/scripts/lib/cross.sh"
