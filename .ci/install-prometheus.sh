#!/bin/sh
# Installs promtool and prometheus (package prometheus) and amtool (prometheus-alertmanager) for
# tests/rules_lint.rs, the drill, and tests/security_tls.rs (a real Prometheus scraping the agent
# over TLS with basic auth).
# Idempotent: does nothing when both tools are already on PATH. Debian/Ubuntu (apt) only.
set -eu

if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
    echo "promtool and amtool already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends prometheus prometheus-alertmanager

# The packages start services on systems with an init; the tests need only the CLIs.
promtool --version
amtool --version
