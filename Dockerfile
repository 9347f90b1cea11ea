# The gateway as a container image. Build: docker build -t gateway .
# Run and configure: docs/operations.md, section Docker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Install the package from the repository, then drop the sources.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
RUN pip install . \
 && cd / && rm -rf /build

# A non-root user; /var/lib/gateway holds the store and the master key (once they are used).
# The example config says ./data/..., relative to /etc/gateway: that is /var/lib/gateway.
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/gateway --no-create-home \
        --shell /usr/sbin/nologin gateway \
 && mkdir -p /etc/gateway /var/lib/gateway \
 && ln -s /var/lib/gateway /etc/gateway/data \
 && chown gateway:gateway /var/lib/gateway

# Defaults; mount your own config.yaml and policies/ over them.
COPY config.example.yaml /etc/gateway/config.yaml
COPY policies/ /etc/gateway/policies/

# Inside a container the listeners must bind all interfaces (these override the config file).
ENV GATEWAY_LISTEN=0.0.0.0:8080 \
    GATEWAY_ADMIN_LISTEN=0.0.0.0:8081

WORKDIR /etc/gateway
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["gateway"]
CMD ["serve", "--config", "/etc/gateway/config.yaml"]
