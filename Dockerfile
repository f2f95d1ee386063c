# The operator image: the static binary from scripts/build-images, nothing else but CA
# certificates and a passwd entry for uid 65532. FROM scratch because no base image can be
# pulled on the build machines (decision 0605); build it with scripts/build-images, which
# prepares the context (the binaries and rootfs/).
FROM scratch
ARG VERSION=0.0.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mcp-droplet-operator" \
      org.opencontainers.image.description="Runs MCP servers on DigitalOcean droplets from Kubernetes custom resources" \
      org.opencontainers.image.source="https://github.com/agentopia/mcp-droplet-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY rootfs/ /
COPY mcp-droplet-operator /usr/local/bin/mcp-droplet-operator
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mcp-droplet-operator"]
CMD ["run"]
