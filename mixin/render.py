#!/usr/bin/env python3
"""Renders the monitoring mixin into the files the repository ships.

    python3 mixin/render.py              # write alerts/, alerts/tests/, dashboards/
    python3 mixin/render.py --out DIR    # write them under DIR instead (tests/mixin.rs)

It evaluates mixin/render.jsonnet (an object of path -> file content) with go-jsonnet through
its Python binding (`pip install gojsonnet`): Debian's C++ jsonnet 0.18 renders the same files
but takes minutes, go-jsonnet seconds. Any jsonnet works the classic way too:
`jsonnet -S -m . mixin/render.jsonnet`. Generated directories are cleaned of files the mixin
no longer renders.
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Directories whose every file is rendered: stale files there are removed.
GENERATED_DIRS = ["alerts/tests", "alerts/tests/drills", "alerts/tests/overrides", "dashboards"]


def render():
    try:
        import _gojsonnet
    except ImportError:
        sys.exit("mixin/render.py needs go-jsonnet's Python binding: python3 -m pip install gojsonnet==0.22.0")
    out = _gojsonnet.evaluate_file(os.path.join(ROOT, "mixin", "render.jsonnet"), jpathdir=[ROOT])
    files = json.loads(out)
    for path, text in files.items():
        if not isinstance(text, str):
            sys.exit(f"{path}: render.jsonnet must map paths to strings")
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=ROOT, help="root to write the files under (default: the repository)")
    args = ap.parse_args()
    files = render()
    for path, text in sorted(files.items()):
        dest = os.path.join(args.out, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w", encoding="utf-8") as f:
            f.write(text)
    for d in GENERATED_DIRS:
        full = os.path.join(args.out, d)
        for name in sorted(os.listdir(full)) if os.path.isdir(full) else []:
            if f"{d}/{name}" not in files and os.path.isfile(os.path.join(full, name)):
                os.remove(os.path.join(full, name))
                print(f"removed stale {d}/{name}")
    print(f"rendered {len(files)} files under {args.out}")


if __name__ == "__main__":
    main()
