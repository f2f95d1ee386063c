#!/usr/bin/env bash
# The project's Python virtual environment (.venv, git-ignored) with the validators the test
# command uses: kubernetes-validate (manifests), helm-sdkpy (the real Helm library, for
# scripts/lint-charts; its metadata asks for a newer Python than Debian's 3.11, which its cffi
# bindings do not need, hence --ignore-requires-python). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/kubernetes-validate ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check kubernetes-validate
fi
if ! .venv/bin/python -c 'import helm_sdkpy, jsonschema, yaml' 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check --ignore-requires-python \
    helm-sdkpy cffi jsonschema pyyaml
fi
