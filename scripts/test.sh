#!/usr/bin/env bash
# Run the test suite (sets up .venv first if needed). Extra arguments go to pytest.
# The suite starts its own redis-server processes (never one it did not start,
# unless PYQUEUE_TEST_REDIS_URL names one), an SMTP server on loopback, and
# BullMQ under Node for the interop tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
