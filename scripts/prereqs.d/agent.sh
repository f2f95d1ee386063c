#!/usr/bin/env bash
# Test images for the agent's Docker tests (crates/agent/tests/docker.rs). There is no registry,
# so images are built locally, once per machine (cached by tag):
#   mcp-test/time:1  a Debian bookworm minbase root filesystem (debootstrap) with python3 and the
#                    third-party MCP server `mcp-server-time` from PyPI, imported with `docker import`.
# Without a reachable Docker Engine this does nothing (the tests then skip, unless
# MCP_REQUIRE_DOCKER=1, in which case they fail).
set -euo pipefail

IMAGE="mcp-test/time:1"
HTTP_IMAGE="mcp-test/http:2"
SUITE="bookworm"

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "agent prereqs: no Docker Engine reachable; skipping test image build"
  exit 0
fi
# mcp-test/http:2: the same root filesystem plus a tiny MCP server on port 8080 written with the
# `mcp` package that mcp-server-time already brings, speaking streamable HTTP (at /mcp), or the
# legacy SSE transport (at /sse) when its first argument is `sse`.
build_http_image() {
  if docker image inspect "$HTTP_IMAGE" >/dev/null 2>&1; then
    echo "agent prereqs: $HTTP_IMAGE present"
    return
  fi
  local dir cid
  dir=$(mktemp -d)
  cat >"$dir/http_server.py" <<'PY'
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("http-echo")


@server.tool()
def echo(text: str) -> str:
    """Echo the given text back."""
    return text


# Listens on all interfaces: the agent reaches it on the container's bridge address.
transport = sys.argv[1] if len(sys.argv) > 1 else "streamable-http"
server.run(transport=transport, host="0.0.0.0", port=8080)
PY
  cid=$(docker create "$IMAGE")
  docker cp "$dir/http_server.py" "$cid:/opt/http_server.py"
  docker commit \
    --change 'ENTRYPOINT ["/opt/mcp/bin/python3", "/opt/http_server.py"]' \
    --change 'EXPOSE 8080' \
    "$cid" "$HTTP_IMAGE" >/dev/null
  docker rm "$cid" >/dev/null
  rm -rf "$dir"
  echo "agent prereqs: built $HTTP_IMAGE"
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "agent prereqs: $IMAGE present"
  build_http_image
  exit 0
fi

start=$(date +%s)
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# Use the Debian mirror apt is configured with on this machine.
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
elif [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "agent prereqs: building $IMAGE (debootstrap $SUITE minbase + python3 + mcp-server-time)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$rootfs" ${mirror:+"$mirror"} >"$work/debootstrap.log" 2>&1 || {
  tail -30 "$work/debootstrap.log"
  exit 1
}

# Install the server into a venv inside the root filesystem, from PyPI, through the chroot's
# own python (same interpreter the container will run).
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
# Trust the same CAs as the host during the install (its network may re-sign TLS with a local
# CA, and pip also honours SSL_CERT_FILE / REQUESTS_CA_BUNDLE pointing at this path).
bundle="$rootfs/etc/ssl/certs/ca-certificates.crt"
cp "$bundle" "$work/debian-ca.pem"
cp /etc/ssl/certs/ca-certificates.crt "$bundle"
mount --bind /dev "$rootfs/dev"
mount -t proc proc "$rootfs/proc"
cleanup_mounts() { umount "$rootfs/proc" 2>/dev/null || true; umount "$rootfs/dev" 2>/dev/null || true; }
trap 'cleanup_mounts; rm -rf "$work"' EXIT
chroot "$rootfs" /usr/bin/python3 -m venv /opt/mcp
chroot "$rootfs" /usr/bin/env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null \
  /opt/mcp/bin/pip install --quiet --no-cache-dir --disable-pip-version-check \
  --no-compile mcp-server-time
cleanup_mounts
cp "$work/debian-ca.pem" "$bundle"
: >"$rootfs/etc/resolv.conf"

# Slim the image: documentation, caches and apt lists are not needed at run time.
rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/debconf/*-old

tar -C "$rootfs" -c . | docker import \
  --change 'ENTRYPOINT ["/opt/mcp/bin/mcp-server-time"]' \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1' \
  --change 'USER 65534:65534' \
  - "$IMAGE" >/dev/null
echo "agent prereqs: built $IMAGE in $(( $(date +%s) - start ))s ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
build_http_image
