# The README's two commands: `make run` (serve on SQLite) and `make test` (the whole suite but the
# slow fault scenarios).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := authapp

.PHONY: install lock e2e-tools run run-idp test lint fmt e2e bench cost soak clean

# Two locks, both exact: requirements.lock holds what authapp needs to run (`make run` installs
# only that), requirements-dev.lock adds the test and lint tools on top, constrained by the first.
# pyproject.toml says what authapp works with (ranges); the locks say what CI and `make` install.
# authapp itself goes on top, without dependencies.
$(BIN)/activate: pyproject.toml requirements.lock
	@echo "Installing authapp's runtime (requirements.lock) into $(VENV) ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar on -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(BIN)/activate

DEV := $(VENV)/.dev-installed
$(DEV): $(BIN)/activate requirements-dev.lock
	@echo "Installing the test and lint tools (requirements-dev.lock) ..."
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip check
	touch $(DEV)

# Rewrites both locks with pip-tools (in a scratch environment): the newest versions
# pyproject.toml's ranges allow (`make lock LOCK_UPGRADE=` keeps the other pins: a new
# dependency alone). Review the diff, run `make test`, commit the three files together.
# pip-tools 7.7 names the command in the header from CUSTOM_COMPILE_COMMAND (the option is gone).
LOCK_UPGRADE ?= --upgrade
LOCK_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" .lock-venv/bin/pip-compile --quiet \
	--strip-extras --annotation-style=line --no-emit-index-url --no-emit-find-links $(LOCK_UPGRADE)
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip 'pip-tools>=7.6,<8'
	$(LOCK_COMPILE) --output-file requirements.lock pyproject.toml
	$(LOCK_COMPILE) --extra test --extra dev --constraint requirements.lock \
		--output-file requirements-dev.lock pyproject.toml
	rm -rf .lock-venv

install: $(DEV)

# Browser tests (tests/browser) drive Debian's Chromium, never a browser Playwright downloads, and
# inject axe-core from npm (pinned by tests/browser/package-lock.json): each installs when missing
# (and `npm ci` again when the lock file changes).
CHROMIUM := /usr/bin/chromium
E2E_MODULES := tests/browser/node_modules/.package-lock.json

$(CHROMIUM):
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }

$(E2E_MODULES): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund
	touch $@

# The OpenID Connect provider of the federation tests (tests/oidc: oidc-provider, pinned by
# tests/oidc/package-lock.json), run by Node.
OIDC_MODULES := tests/oidc/node_modules/.package-lock.json

$(OIDC_MODULES): tests/oidc/package-lock.json
	npm ci --prefix tests/oidc --no-audit --no-fund
	touch $@

e2e-tools: $(CHROMIUM) $(E2E_MODULES) $(OIDC_MODULES)

# deploy/nginx/ in front of gunicorn (docs/deployment.md "nginx in front"):
# tests/server/test_nginx.py and the
# fault scenarios through it run Debian's nginx, unprivileged, on a port of their own.
NGINX := /usr/sbin/nginx

$(NGINX):
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y nginx || { apt-get update && apt-get install -y nginx; }

# AUTHAPP_ENV unset is production, which refuses to start without real secrets (docs/security.md
# "Production by default"): `make run` is for trying authapp out, so it says development.
run: export AUTHAPP_ENV := development
run: $(BIN)/activate
	$(BIN)/flask db upgrade
	$(BIN)/flask seed
	@echo
	@echo "authapp on http://127.0.0.1:8000 (SQLite: instance/authapp.db); for passkeys open"
	@echo "       http://localhost:8000 (browsers refuse an IP address for them)"
	@echo "admin: $${SEED_ADMIN_EMAIL:-admin@example.com}, password: printed above by the first seed"
	@echo "try:   curl -s -X POST http://127.0.0.1:8000/api/v1/auth/login \\"
	@echo "         -H 'Content-Type: application/json' \\"
	@echo "         -d '{\"login\": \"$${SEED_ADMIN_EMAIL:-admin@example.com}\", \"password\": \"<the password>\"}'"
	@echo
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# `make run` with a local OpenID Connect provider beside it (docs/federation.md "Try it
# locally"): the login page gets "Log in with Local IdP", where any name and password sign in.
# The provider is the tests' (tests/oidc), never a deployment's.
IDP_PORT ?= 9090
LOCAL_IDP := "client_id": "authapp-local", "client_secret": "local-idp-secret-for-trying-out-only"
run-idp: export FEDERATION_PROVIDERS := {"local": {"issuer": "http://127.0.0.1:$(IDP_PORT)", $(LOCAL_IDP), "display_name": "Local IdP"}}
run-idp: $(OIDC_MODULES)
	PORT=$(IDP_PORT) OIDC_CLIENTS='[{$(LOCAL_IDP), "redirect_uris": ["http://localhost:8000/login/with/local/callback", "http://127.0.0.1:8000/login/with/local/callback"]}]' \
		node tests/oidc/provider.mjs & \
	trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	$(MAKE) run

# ruff, mypy, and the import contracts of pyproject.toml (docs/architecture.md "Layers").
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every layer but tests/faults (pyproject's addopts: -m 'not slow'): app, server, browser, fuzz,
# architecture; `-m app` (or server, browser, ...) in PYTEST_ARGS picks one.
test: lint e2e-tools $(NGINX)
	@$(BIN)/python -c "import os, sqlalchemy as sa; sa.create_engine(os.environ.get('TEST_DATABASE_URL', 'postgresql+psycopg2://postgres@127.0.0.1/test')).connect().close()" || { echo "PostgreSQL is not reachable: the tests need it (TEST_DATABASE_URL)" >&2; exit 1; }
	@$(BIN)/python -c "import redis; redis.Redis(host='127.0.0.1', port=6379, socket_connect_timeout=5).ping()" || { echo "Redis is not reachable at 127.0.0.1:6379: the rate-limit and scale-out tests need it" >&2; exit 1; }
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

# The browser tests alone (tests/browser, marker `browser`).
e2e: install e2e-tools
	$(BIN)/pytest -n 2 -m browser $(PYTEST_ARGS)

# The fault scenarios (docs/operations.md "Fault scenarios"): tests/faults, marked slow and left out
# of `make test`, run one at a time on real gunicorn and PostgreSQL; their figures print at the end.
# One restarts the local PostgreSQL server (as root): nothing else may be using it meanwhile.
.PHONY: faults
faults: install $(NGINX)
	$(BIN)/pytest -m slow $(PYTEST_ARGS) tests/faults

# The benchmark (bench/README.md): authapp and a bare baseline on gunicorn and PostgreSQL,
# loaded by wrk (Debian's, installed when missing); BENCH_DURATION=5s for a quick try. `soak` runs
# a mixed load for SOAK_DURATION (10m) and watches worker memory, connections and the outbox.
WRK := /usr/bin/wrk

$(WRK):
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }

bench: install $(WRK)
	$(BIN)/python -m bench.run

# The cost probe (bench/README.md "Cost probe"): CPU µs, PostgreSQL round trips and Redis
# commands per request, in process, and the share of each layer.
cost: install
	$(BIN)/python -m bench.cost

soak: install $(WRK)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
