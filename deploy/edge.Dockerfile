# syntax=docker/dockerfile:1
# The edge sender for ARM boards and PCs: docker buildx build --platform linux/arm64,linux/amd64
#   -f deploy/edge.Dockerfile -t dctlink-edge .
# Only wheels from PyPI (numpy, Pillow, brotli, paho-mqtt, pydantic, ...): no compiler and no
# architecture-specific download. What is copied is listed in edge.Dockerfile.dockerignore.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 dctlink \
    && useradd --system --uid 10001 --gid dctlink --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin dctlink \
    && mkdir -p /var/lib/dctlink \
    && chown dctlink:dctlink /var/lib/dctlink

# A normal (not editable) install: the demo's sample images are package data, so
# nothing is read from the source tree, which is removed again.
COPY . /src
RUN pip install --no-compile "/src[edge]" && rm -rf /src
WORKDIR /app

# The durable spool: a volume, so images not yet acknowledged survive a new container.
ENV DCTLINK_EDGE__SPOOL__PATH=/var/lib/dctlink/spool.sqlite3 \
    DCTLINK_EDGE__LOG_FORMAT=json
VOLUME ["/var/lib/dctlink"]
USER 10001:10001

# Healthy once the sender has opened its spool and the spool reads as a database.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sqlite3; path = os.environ['DCTLINK_EDGE__SPOOL__PATH']; sqlite3.connect(f'file:{path}?mode=ro', uri=True).execute('SELECT COUNT(*) FROM images').fetchone()"]

ENTRYPOINT ["edge-sender"]
CMD ["demo", "--count", "0"]
