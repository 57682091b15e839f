# mailgate's image: the wheel built from this tree, installed into python:3.11-slim, run as a non-root user.
# One image for every process; the command picks it (`mailgate ingress|processor|egress|admin|topics|sink`).
# Configuration: /etc/mailgate/mailgate.yaml (MAILGATE_CONFIG); writable data (the processor's faust data dir):
# /var/lib/mailgate (MAILGATE_CACHE_DIR). No Kafka broker inside: point kafka.bootstrap_servers at one.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim
COPY --from=wheel /dist/ /tmp/dist/
# The versions the suite passed with (constraints.txt, written by scripts/lock).
COPY constraints.txt /tmp/dist/
RUN pip install --no-cache-dir -c /tmp/dist/constraints.txt /tmp/dist/mailgate-*.whl && rm -rf /tmp/dist \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/mailgate --create-home mailgate \
 && mkdir -p /etc/mailgate
ENV MAILGATE_CONFIG=/etc/mailgate/mailgate.yaml \
    MAILGATE_CACHE_DIR=/var/lib/mailgate \
    MAILGATE_READYZ_URL=http://127.0.0.1:9101/readyz \
    PYTHONUNBUFFERED=1
USER mailgate
WORKDIR /var/lib/mailgate
VOLUME ["/var/lib/mailgate"]
# SMTP (ingress), admin page, and the /metrics /healthz /readyz endpoints of ingress, processor and egress.
EXPOSE 2525 8025 9101 9102 9103
# Ready = the stage can do its job; set MAILGATE_READYZ_URL to the stage's port (9101 ingress, 9102 processor,
# 9103 egress). docker-compose.yml sets one healthcheck per service.
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['MAILGATE_READYZ_URL'], timeout=4)"]
CMD ["mailgate", "ingress"]
