#!/usr/bin/env bash
# Prerequisites for the MCP probe tests: third-party MCP servers from PyPI.
# - .venv: mcp-server-time and the `mcp` SDK (2.x; the fixture server in tests/fixtures uses it).
# - .tools/mcp-proxy-venv: mcp-proxy, in its own venv because it pins mcp<2 while
#   mcp-server-time needs mcp>=2.3 (docs/decisions/0401-probe-test-servers.md).
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/mcp-server-time ] || ! .venv/bin/python -c 'import mcp.server.mcpserver' 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check mcp-server-time 'mcp>=2'
fi
if [ ! -x .tools/mcp-proxy-venv/bin/mcp-proxy ]; then
  mkdir -p .tools
  python3 -m venv .tools/mcp-proxy-venv
  .tools/mcp-proxy-venv/bin/pip install --quiet --disable-pip-version-check mcp-proxy
fi
echo "probe prereqs: .venv/bin/mcp-server-time, mcp SDK, .tools/mcp-proxy-venv/bin/mcp-proxy"
