#!/bin/sh
# Installs the language runtimes the integration examples (docs/examples/intake) are run with by
# tests/integration_examples.rs: curl, Python 3, Node.js, Java 11+ and Go. Idempotent: installs
# only what is missing. Debian/Ubuntu (apt) only.
set -eu

missing=""
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v java >/dev/null 2>&1 || missing="$missing default-jdk-headless"
command -v go >/dev/null 2>&1 || missing="$missing golang-go"

if [ -z "$missing" ]; then
    echo "example runtimes already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
