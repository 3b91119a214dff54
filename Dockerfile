# Sluice's serving process: the collector, the ETL control routes and the ETL scheduler.
#   docker build -t sluice .
#   docker run --network host -e DATABASE_URL=postgresql://... sluice sluice serve --host 127.0.0.1
# nginx (nginx.conf) and PostgreSQL run beside it: see "Running with Docker" in the README.
# `docker stop` (SIGTERM) is a clean stop; without SLUICE_ADMIN_TOKEN the token Sluice makes is in
# $SLUICE_DATA_DIR/admin-token (`docker exec CONTAINER sluice token`).

# Build the wheel: what the image runs is what `pip install` gives a user, SQL included.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sluice/ sluice/
COPY client/ client/
COPY collector/ collector/
COPY etl/ etl/
COPY reports/ reports/
COPY sql/ sql/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SLUICE_DATA_DIR=/var/lib/sluice
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/sluice --create-home sluice

USER sluice
WORKDIR /var/lib/sluice
EXPOSE 8000
# The image has no PostgreSQL of its own: set DATABASE_URL.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SLUICE_PORT', '8000'), timeout=4)"
CMD ["sluice", "serve", "--host", "0.0.0.0"]
