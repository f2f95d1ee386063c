#!/usr/bin/env bash
# The project's Python virtual environment (.venv, git-ignored) with the validators the test
# command uses. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/kubernetes-validate ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check kubernetes-validate
fi
