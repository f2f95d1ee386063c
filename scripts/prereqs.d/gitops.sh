#!/usr/bin/env bash
# Test prerequisites of the GitOps examples: a Lua interpreter for the Argo CD health checks
# (tests/gitops.rs). Argo CD runs health.lua with gopher-lua, a Lua 5.1 implementation, so the
# checks are tested with Debian's lua5.1 (docs/decisions/0602). Idempotent; quiet when present.
set -euo pipefail

if command -v lua5.1 >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "prereqs/gitops: cannot install lua5.1 (needs root and apt-get); the Lua health-check tests fail under MCP_REQUIRE_TOOLS=1" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends lua5.1 >/dev/null
