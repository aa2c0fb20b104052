#!/bin/sh
# Installs promtool and prometheus (package prometheus) and amtool and alertmanager
# (prometheus-alertmanager) for tests/rules_lint.rs, tests/drill.rs, tests/alertmanager.rs and
# tests/security_tls.rs (a real Prometheus scraping the agent over TLS with basic auth).
# Idempotent: does nothing when they are already on PATH. Debian/Ubuntu (apt) only.
set -eu

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
    && command -v amtool >/dev/null 2>&1 \
    && { command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; }; then
    echo "prometheus, promtool, amtool and alertmanager already installed"
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
