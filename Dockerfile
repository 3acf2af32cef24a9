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
COPY pyproject.toml README.md ./
COPY kbroker ./kbroker
RUN pip install '.[fast]'

ENV KBROKER_LISTENERS=PLAINTEXT://0.0.0.0:9092 \
    KBROKER_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092 \
    KBROKER_LOG_DIRS=/var/lib/kbroker

USER kbroker
VOLUME ["/var/lib/kbroker"]
EXPOSE 9092
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["python", "-m", "kbroker.healthcheck", "127.0.0.1:9092"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["kbroker"]
