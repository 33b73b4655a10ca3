#!/usr/bin/env bash
# livecd-tui set-up: system tools (apt, when there is apt), a virtualenv with the Python
# dependencies, then the job asked for:
#   bash setup.sh run [PROFILE]   open the TUI (default profile: profiles/demo.toml)
#   bash setup.sh test [ARGS]     run the whole test suite (pytest ARGS)
# Safe to run again: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")"

job=${1:-run}
shift || true

RUNTIME_PACKAGES=(
    python3 python3-venv python3-pip
    squashfs-tools xorriso genisoimage mtools
    grub-common grub-pc-bin grub-efi-amd64-bin isolinux syslinux-common syslinux-utils
    busybox-static cpio e2fsprogs kmod gzip xz-utils zstd bzip2 tar
    qemu-system-x86 ovmf linux-image-amd64
    # bootloader.secure_boot: Debian's signed shim and GRUB, sbsign, openssl for the keys
    shim-signed grub-efi-amd64-signed sbsigntool openssl
)
TEST_PACKAGES=(
    shellcheck tmux libarchive-tools
    # real system roots for the integration tests (made once, cached outside the repo)
    debootstrap dosfstools cryptsetup-bin
    # the classic method's test kernel is built from Debian's kernel source
    linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev
)

install_packages() {
    local wanted=("${RUNTIME_PACKAGES[@]}")
    [ "$job" = test ] && wanted+=("${TEST_PACKAGES[@]}")
    local missing=()
    for package in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: installing ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

fetch_stage2_eltorito() {
    # GRUB legacy's El Torito loader, for the article's method. Debian's grub-legacy
    # package would replace GRUB 2, so it is unpacked into a cache instead of installed.
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/livecd-tui/grub-legacy"
    compgen -G "$cache/usr/lib/grub/*-pc/stage2_eltorito" >/dev/null && return 0
    mkdir -p "$cache"
    (cd "$cache" && apt-get download grub-legacy >/dev/null && dpkg-deb -x grub-legacy_*.deb . \
        && rm -f grub-legacy_*.deb)
}

if command -v apt-get >/dev/null && command -v dpkg-query >/dev/null; then
    install_packages
    [ "$job" = test ] && fetch_stage2_eltorito
else
    echo "setup: no apt here (an LFS system?); install the tools listed below yourself."
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
extras=""
[ "$job" = test ] && extras="[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"

# What is still missing (on an LFS box: which LFS/BLFS package provides it).
.venv/bin/python -m livecd_tui.tools || true

case "$job" in
    run)
        exec .venv/bin/livecd-tui "${@:-profiles/demo.toml}"
        ;;
    test)
        exec .venv/bin/python -m pytest "$@"
        ;;
    *)
        echo "usage: bash setup.sh run [PROFILE] | bash setup.sh test [PYTEST ARGS]" >&2
        exit 2
        ;;
esac
