#!/usr/bin/env bash
# Test prerequisites of the cloud module: `cloud-init schema` validates the generated
# user_data, `shellcheck` checks its shell parts. Idempotent; quiet when already installed.
set -euo pipefail

missing=()
command -v cloud-init >/dev/null 2>&1 || missing+=(cloud-init)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "prereqs/cloud: cannot install ${missing[*]} (needs root and apt-get); the tests will skip those checks" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# --no-install-recommends keeps cloud-init from pulling in daemons we never start.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
