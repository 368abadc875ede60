# ARM builds: a Rust compiler with ARM standard libraries, set up under the
# cache, and static release binaries per architecture. Sourced by common.sh.
# shellcheck shell=bash
#
# rustup's toolchain here has no ARM standard library and cannot fetch one;
# Debian 12's rustc-web with libstd-rust-web-dev:<arch> can. Their .debs are
# downloaded with a private apt state (one per architecture: a mirror
# mid-sync once broke one architecture's index and, with a shared state,
# took the other down too) and extracted under the cache; nothing is
# installed system-wide but the cross linkers.

# The architectures nobtf builds for, as scripts/build --arch spells them.
BUILD_ARCHES="x86_64 aarch64 armv7"

# build_arch -> Rust target triple.
rust_triple() {
    case $1 in
        x86_64) echo "$X86_64_TRIPLE" ;;
        aarch64) echo aarch64-unknown-linux-gnu ;;
        armv7) echo armv7-unknown-linux-gnueabihf ;;
        *) return 1 ;;
    esac
}

# build_arch -> Debian architecture of the standard library package.
debian_arch() {
    case $1 in
        aarch64) echo arm64 ;;
        armv7) echo armhf ;;
        *) return 1 ;;
    esac
}

# build_arch -> GNU triple of the cross gcc that links.
gnu_triple() {
    case $1 in
        aarch64) echo aarch64-linux-gnu ;;
        armv7) echo arm-linux-gnueabihf ;;
        *) return 1 ;;
    esac
}

# Where the release binaries of build_arch land. Cross builds use their own
# target directory: another rustc would otherwise invalidate the native
# build's artifacts on every switch.
static_binary_dir() {
    local triple
    triple=$(rust_triple "$1") || die "unknown architecture '$1' (known: $BUILD_ARCHES)"
    if [ "$1" = x86_64 ]; then
        printf '%s\n' "$NOBTF_ROOT/target/$triple/release"
    else
        printf '%s\n' "$NOBTF_ROOT/target/cross/$triple/release"
    fi
}

# retry N CMD...: CMD, up to N times, 5 s apart (mirrors mid-sync).
retry() {
    local tries=$1 n=1
    shift
    until "$@"; do
        [ "$n" -lt "$tries" ] || return 1
        log "attempt $n of $tries failed: $*; retrying in 5 s"
        n=$((n + 1))
        sleep 5
    done
}

# apt-get/apt-cache on the private state of one Debian architecture, with
# bookworm and bookworm-security (rustc-web is updated only there).
arch_apt() {
    local arch=$1 tool=$2; shift 2
    local dir=$NOBTF_CACHE/apt/bookworm-$arch
    "$tool" -q -o Dir::State="$dir" -o Dir::State::Lists="$dir/lists" \
        -o Dir::State::status="$dir/status" -o Dir::Cache="$dir/cache" \
        -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
        -o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o APT::Architectures::="$arch" \
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"
}

# Whether the private state of Debian architecture $1 has a bookworm-security
# index for it (a mirror mid-sync can serve a wrong-size one for hours).
arch_has_security_index() {
    [ -n "$(find "$NOBTF_CACHE/apt/bookworm-$1/lists" -maxdepth 1 -name "*security*binary-$1_Packages*" 2>/dev/null | head -n1)" ]
}

arch_apt_update() {
    local arch=$1 dir=$NOBTF_CACHE/apt/bookworm-$1 mirror
    if [ -n "$(find "$dir/lists" -maxdepth 1 -name "*binary-${arch}_Packages*" -mmin -1440 2>/dev/null | head -n1)" ]; then
        return 0
    fi
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    touch "$dir/status"
    mirror=$(debian_mirror)
    {
        printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s bookworm main\n' "$mirror"
        printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s-security bookworm-security main\n' "$mirror"
    } >"$dir/sources.list"
    log "updating the private package lists for Debian bookworm ($arch)"
    retry 3 arch_apt "$arch" apt-get update >/dev/null 2>"$dir/update.err" && return 0
    # apt keeps the indexes that did arrive: bookworm alone serves kernels
    # and busybox; rust_packages works around a missing security index.
    [ -n "$(find "$dir/lists" -maxdepth 1 -name "*_bookworm_main_binary-${arch}_Packages*" | head -n1)" ] \
        || { cat "$dir/update.err" >&2; die "apt-get update for Debian bookworm ($arch) failed 3 times"; }
    log "warning: some bookworm ($arch) indexes failed 3 times (see $dir/update.err); going on with those that arrived"
}

# rustc-web is only in bookworm-security; the version every architecture
# must match is the compiler's (amd64) one.
RUSTC_POOL=pool/updates/main/r/rustc-web

# The compiler's packages, from the amd64 state: rustc-web with its own
# Rust and LLVM dependencies, and the amd64 standard library (build scripts,
# proc macros). Versions are resolved now: the security pool keeps only the
# newest, and names like libstd-rust-web-1.96 or libllvm22 move.
rust_host_packages() {
    arch_apt_update amd64
    arch_apt amd64 apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances --no-pre-depends rustc-web \
        | sed -n 's/^\([a-z0-9][^ :<>]*\)$/\1/p' | grep -E '^(rustc-web|libstd-rust|libllvm)' | awk '!seen[$0]++'
}

# The target's standard library, of exactly the compiler's version: names
# for apt-get download, or URLs when this architecture's security index is
# missing (same source version, so the same pool file names).
rust_target_packages() {
    local arch=$1 version std pkg
    version=$(arch_apt amd64 apt-cache show --no-all-versions rustc-web | sed -n 's/^Version: //p' | head -n1)
    std=$(arch_apt amd64 apt-cache depends libstd-rust-web-dev | sed -n 's/^ *Depends: \(libstd-rust-web-[0-9.]*\)$/\1/p' | head -n1)
    [ -n "$version" ] && [ -n "$std" ] || return 0
    arch_apt_update "$arch"
    for pkg in libstd-rust-web-dev "$std"; do
        if arch_has_security_index "$arch"; then
            echo "$pkg:$arch=$version"
        else
            printf '%s/%s/%s_%s_%s.deb\n' "$(debian_mirror | sed 's:/*$::')-security" "$RUSTC_POOL" \
                "$pkg" "${version/:/%3a}" "$arch"
        fi
    done
    arch_has_security_index "$arch" \
        || log "warning: no bookworm-security index for $arch; taking its standard library $version from the pool by name"
}

# download_url URL DIR: one .deb by URL, checked to be the version and
# architecture its name says (no index to hold its hash).
download_url() {
    local url=$1 dir=$2 file name version arch
    file=$dir/$(basename "$url")
    /usr/lib/apt/apt-helper download-file "$url" "$file" >/dev/null 2>&1 || return 1
    name=$(basename "$url" .deb)
    arch=${name##*_}
    version=${name#*_}; version=${version%_*}; version=${version/\%3a/:}
    [ "$(dpkg-deb -f "$file" Version)" = "$version" ] && [ "$(dpkg-deb -f "$file" Architecture)" = "$arch" ]
}

# rust_toolchain build_arch: sets up (once) and prints the directory whose
# usr/bin/rustc compiles for build_arch.
rust_toolchain() {
    local build_arch=$1 arch dir tmp pkgs deb start=$SECONDS
    arch=$(debian_arch "$build_arch") || die "no cross toolchain for '$build_arch' (known: aarch64 armv7)"
    dir=$NOBTF_CACHE/rust/$arch
    if [ -x "$dir/usr/bin/rustc" ] && [ -d "$dir/usr/lib/rustlib/$(rust_triple "$build_arch")/lib" ]; then
        printf '%s\n' "$dir"
        return 0
    fi
    mapfile -t pkgs < <(rust_host_packages; rust_target_packages "$arch")
    [ ${#pkgs[@]} -gt 4 ] || die "Debian bookworm has no rustc-web / libstd-rust-web-dev:$arch to set up"
    mkdir -p "$NOBTF_CACHE/rust"
    tmp=$(mktemp -d "$NOBTF_CACHE/rust/.$arch.XXXXXX")
    log "downloading the Rust toolchain for $build_arch: ${pkgs[*]}"
    local host=() target=() urls=() p
    for p in "${pkgs[@]}"; do
        case $p in */*) urls+=("$p") ;; *:*) target+=("$p") ;; *) host+=("$p") ;; esac
    done
    (cd "$tmp" && with_progress "downloading the Rust toolchain for $build_arch" \
        retry 3 arch_apt amd64 apt-get download "${host[@]}" >/dev/null) \
        || die "downloading ${host[*]} failed 3 times"
    if [ ${#target[@]} -gt 0 ]; then
        (cd "$tmp" && retry 3 arch_apt "$arch" apt-get download "${target[@]}" >/dev/null) \
            || die "downloading ${target[*]} failed 3 times"
    fi
    for p in ${urls[@]+"${urls[@]}"}; do
        retry 3 download_url "$p" "$tmp" || die "downloading $p failed 3 times"
    done
    for deb in "$tmp"/*.deb; do
        dpkg-deb -x "$deb" "$tmp/root"
    done
    [ -x "$tmp/root/usr/bin/rustc" ] || die "rustc-web did not unpack a usr/bin/rustc"
    rm -f "$tmp"/*.deb
    publish_dir "$tmp/root" "$dir"
    rmdir "$tmp"
    log "Rust toolchain for $build_arch set up in $((SECONDS - start)) s: $(LD_LIBRARY_PATH="$dir/usr/lib/x86_64-linux-gnu:$dir/usr/lib" "$dir/usr/bin/rustc" --version 2>/dev/null)"
    printf '%s\n' "$dir"
}

# arch_rustflags build_arch: what build_arch's static build links with
# besides STATIC_RUSTFLAGS. x86-64 and arm64 link without unwind tables
# (scripts/lib/no-eh-frame.ld): 256 KB of arm64's 2,175,872 bytes on static
# glibc, which met the 2 MB goal only so, and 233 KB of x86-64's
# 1,958,392. With panic=abort nothing unwinds; std's and the C library's
# modules bring the tables even with -C force-unwind-tables=no (LTO keeps
# the strictest module's setting). What is lost is the frames of a panic's
# backtrace (RUST_BACKTRACE=1), which in a stripped binary name no
# function anyway. 32-bit ARM's tables are .ARM.exidx and .ARM.extab
# (scripts/lib/no-arm-exidx.ld: 38 KB; 1,994,308 bytes with them).
arch_rustflags() {
    case $1 in
        x86_64 | aarch64) echo "-C link-arg=-Wl,-T,$NOBTF_ROOT/scripts/lib/no-eh-frame.ld" ;;
        armv7) echo "-C link-arg=-Wl,-T,$NOBTF_ROOT/scripts/lib/no-arm-exidx.ld" ;;
    esac
}

# build_static_arch build_arch BIN...: static release builds for build_arch;
# x86_64 goes through build_static.
build_static_arch() {
    local build_arch=$1; shift
    [ "$build_arch" = x86_64 ] && { build_static "$@"; return; }
    local triple gnu rust args=() bin
    triple=$(rust_triple "$build_arch") || die "unknown architecture '$build_arch' (known: $BUILD_ARCHES)"
    gnu=$(gnu_triple "$build_arch")
    install_packages --no-recommends "gcc-$gnu" "libc6-dev-$(debian_arch "$build_arch")-cross"
    rust=$(rust_toolchain "$build_arch")
    for bin in "$@"; do args+=(--bin "$bin"); done
    local env_triple=${triple//-/_}
    (cd "$NOBTF_ROOT" && env \
        RUSTC="$rust/usr/bin/rustc" RUSTDOC="$rust/usr/bin/rustdoc" \
        LD_LIBRARY_PATH="$rust/usr/lib/x86_64-linux-gnu:$rust/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        CARGO_TARGET_DIR="$NOBTF_ROOT/target/cross" \
        "CARGO_TARGET_${env_triple^^}_LINKER=$gnu-gcc" \
        "CARGO_TARGET_${env_triple^^}_RUSTFLAGS=$STATIC_RUSTFLAGS $(arch_rustflags "$build_arch")" \
        cargo build --quiet --release --target "$triple" "${args[@]}")
}

# ARM kernels: Debian 12's own images, booted under QEMU's `virt` machine.
KNOWN_KERNELS+=" debian-6.1-arm64 debian-6.1-armhf"

# kernel name -> the build_arch whose binaries run on it.
kernel_arch() {
    case $1 in
        *-arm64) echo aarch64 ;;
        *-armhf) echo armv7 ;;
        *) echo x86_64 ;;
    esac
}

# ARM kernel name -> the Debian package whose dependency is the image.
arm_image_meta() {
    case $1 in
        debian-6.1-arm64) echo linux-image-arm64 ;;
        debian-6.1-armhf) echo linux-image-armmp ;;
        *) return 1 ;;
    esac
}

# The image, its config and a static busybox of the same architecture: the
# harness cannot use the host's busybox there, and virtio and 9p are
# modules in these kernels, so the initramfs carries everything.
fetch_debian_arm_image() {
    local name=$1 build_arch arch meta pkg tmp deb
    meta=$(arm_image_meta "$name") || die "unknown kernel $name"
    build_arch=$(kernel_arch "$name")
    arch=$(debian_arch "$build_arch")
    arch_apt_update "$arch"
    pkg=$(arch_apt "$arch" apt-cache show --no-all-versions "$meta:$arch" \
        | sed -n 's/^Depends: *\(linux-image-[^ ,]*\).*/\1/p' | head -n1)
    [ -n "$pkg" ] || die "Debian bookworm has no $meta:$arch dependency to follow"
    mkdir -p "$KERNELS_DIR"
    tmp=$(mktemp -d "$KERNELS_DIR/.$name.XXXXXX")
    log "fetching $pkg:$arch and busybox-static:$arch from Debian bookworm"
    (cd "$tmp" && with_progress "fetching $pkg:$arch" \
        retry 3 arch_apt "$arch" apt-get download "$pkg:$arch" "busybox-static:$arch" >/dev/null) \
        || die "could not download $pkg:$arch from Debian bookworm"
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
    # The file the harness boots keeps the x86 name, whatever its format.
    cp "$tmp"/root/boot/vmlinuz-* "$tmp/bzImage"
    cp "$tmp"/root/boot/config-* "$tmp/config"
    cp "$tmp/root/bin/busybox" "$tmp/busybox"
    basename "$tmp"/root/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$tmp/release"
    echo "$pkg:$arch" >"$tmp/package"
    rm -rf "$tmp/root" "$tmp"/*.deb
    publish_dir "$tmp" "$KERNELS_DIR/$name"
}

# arm_qemu NAME IMAGE INITRD WORK TIMEOUT MEM: boots an ARM kernel as
# scripts/vm boots x86 ones. The kernel console is the PL011 (ttyAMA0); a
# four-port PCI UART (8250_pci is built in, unlike virtio) gives the init
# the ttyS1..3 it writes the command's stdout, stderr and status to.
# Multi-threaded TCG: under thread=single the armhf kernel stalled at boot
# with -smp 2 (seen every time here).
arm_qemu() {
    local name=$1 image=$2 initrd=$3 work=$4 timeout=$5 mem=$6 qemu machine=(-machine virt)
    case $(kernel_arch "$name") in
        aarch64)
            qemu=qemu-system-aarch64
            # Emulated pointer authentication (plain -cpu max) triples the boot time.
            machine+=(-cpu max,pauth-impdef=on) ;;
        armv7)
            qemu=qemu-system-arm
            # Without LPAE (armmp is not the -lpae flavour) nothing above 4 GB is reachable.
            machine=(-machine virt,highmem=off -cpu cortex-a15) ;;
        *) die "no ARM machine for kernel $name" ;;
    esac
    command -v "$qemu" >/dev/null || die "$qemu is missing: apt-get install qemu-system-arm"
    timeout --foreground -k 5 "$timeout" "$qemu" \
        -accel "${NOBTF_ACCEL:-tcg}" "${machine[@]}" -smp 2 -m "$mem" \
        -nodefaults -no-user-config -display none -no-reboot \
        -kernel "$image" -initrd "$initrd" \
        -append "console=ttyAMA0 quiet loglevel=4 panic=-1 oops=panic rdinit=/init" \
        -serial "file:$work/console" \
        -chardev null,id=s0 -chardev "file,id=s1,path=$work/stdout" \
        -chardev "file,id=s2,path=$work/stderr" -chardev "file,id=s3,path=$work/status" \
        -device pci-serial-4x,chardev1=s0,chardev2=s1,chardev3=s2,chardev4=s3 \
        </dev/null >"$work/qemu.log" 2>&1
}
