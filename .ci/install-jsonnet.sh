#!/bin/sh
# Installs go-jsonnet's Python binding for mixin/render.py and tests/mixin.rs (the check that the
# rendered alerts/ and dashboards/ are up to date with mixin/). Idempotent: does nothing when
# python3 can already import it. Debian's C++ jsonnet (apt) renders the same files but takes
# minutes where go-jsonnet takes seconds.
set -eu

if python3 -c 'import _gojsonnet' >/dev/null 2>&1; then
    echo "gojsonnet already installed"
    exit 0
fi

python3 -m pip install --quiet --disable-pip-version-check gojsonnet==0.22.0
python3 -c 'import _gojsonnet'
echo "gojsonnet installed"
