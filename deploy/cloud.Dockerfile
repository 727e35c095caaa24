# syntax=docker/dockerfile:1
# The cloud receiver: docker build -f deploy/cloud.Dockerfile -t dctlink-receiver .
# Wheels only (onnxruntime and scipy included), for linux/amd64 and linux/arm64 alike.
# What is copied is listed in cloud.Dockerfile.dockerignore; the trained network travels inside
# the cloud_receiver package (cloud_receiver/recovery/weights/).
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

# A normal (not editable) install: the trained model is package data, so
# nothing is read from the source tree, which is removed again.
COPY . /src
RUN pip install --no-compile "/src[cloud]" && rm -rf /src
WORKDIR /app

ENV DCTLINK_RECEIVER__STORE__DATA_DIR=/var/lib/dctlink \
    DCTLINK_RECEIVER__LOG_FORMAT=json
VOLUME ["/var/lib/dctlink"]
USER 10001:10001
EXPOSE 8000

# Ready: broker connected and store writable (GET /readyz answers 503 otherwise).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('DCTLINK_RECEIVER__API__PORT', '8000'); urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"]

ENTRYPOINT ["cloud-receiver"]
CMD ["serve", "--host", "0.0.0.0"]
