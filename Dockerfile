# kbroker in a container: the single-node broker, data in a volume, listening on 0.0.0.0:9092.
#   docker build -t kbroker .
#   docker run -p 9092:9092 -v kbroker-data:/var/lib/kbroker kbroker
# Clients outside the container reach it at the advertised address; set it to what they use:
#   docker run -p 19092:9092 -e KBROKER_ADVERTISED_LISTENERS=PLAINTEXT://myhost:19092 kbroker
# Any setting can be given as KBROKER_<KEY>, the Kafka key upper-cased with '.' -> '_', or as
# `--override key=value` arguments after the image name.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system kbroker && useradd --system --gid kbroker --home-dir /var/lib/kbroker kbroker \
    && mkdir -p /var/lib/kbroker && chown kbroker:kbroker /var/lib/kbroker

WORKDIR /opt/kbroker
# Pinned dependencies first (a layer that survives source changes), then kbroker itself with the
# command-line tools (`docker run ... kbroker topics --bootstrap-server ...`), metrics.listener and
# console.listener (the web console).
COPY docker/requirements.txt ./docker/requirements.txt
RUN pip install -r docker/requirements.txt
COPY pyproject.toml README.md LICENSE ./
COPY kbroker ./kbroker
RUN pip install --no-deps '.[fast,tools,metrics,console]'

ENV KBROKER_LISTENERS=PLAINTEXT://0.0.0.0:9092 \
    KBROKER_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092 \
    KBROKER_LOG_DIRS=/var/lib/kbroker

USER kbroker
VOLUME ["/var/lib/kbroker"]
EXPOSE 9092
# Asks the first of KBROKER_LISTENERS, so it follows a port changed at `docker run -e ...`.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["python", "-m", "kbroker.healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["kbroker"]
