# Set-up and everyday commands. `make run` and `make test` work on a fresh machine:
# each creates the virtual environment and installs what it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint locales system-deps clean

run: $(STAMP)
	$(BIN)/bansos-bot serve

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bot handlers registry_client tests bench
	$(BIN)/mypy

# Re-extract the messages and merge them into every catalog (bot/locales/, shipped in the
# wheel); then translate what is new.
locales: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output \
		--project bansos-bot --copyright-holder bansos-bot -o bot/locales/messages.pot .
	$(BIN)/pybabel update -i bot/locales/messages.pot -d bot/locales \
		--no-fuzzy-matching --ignore-obsolete

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The tests start a throwaway PostgreSQL and drive the simulator page in Chromium.
system-deps:
	@scripts/system-deps

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
