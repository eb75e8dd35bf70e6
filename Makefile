# Set-up and everyday commands. `make run` and `make test` work on a fresh machine:
# each creates the virtual environment and installs what it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint locales locales-extract locales-update locales-check system-deps clean

run: $(STAMP)
	$(BIN)/bansos-bot serve

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bot handlers registry_client tests bench scripts
	$(BIN)/mypy
	$(BIN)/mypy --strict scripts/source_catalog.py

# The catalogs (bot/locales/, shipped in the wheel; docs/languages.md). Extract the
# messages from the code, merge them into every catalog (English, the source language,
# is filled from the messages themselves), then translate what is new.
# There is no compile step to remember: the service compiles the .po files in memory at
# start and refuses to start without one; locales-check compiles them to show statistics.
locales: locales-extract locales-update

locales-extract: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output \
		--project bansos-bot --copyright-holder bansos-bot -o bot/locales/messages.pot .

locales-update: $(STAMP)
	$(BIN)/pybabel update -i bot/locales/messages.pot -d bot/locales \
		--no-fuzzy-matching --ignore-obsolete
	$(BIN)/python scripts/source_catalog.py bot/locales/en/LC_MESSAGES/messages.po

locales-check: $(STAMP)
	rm -rf .locales-check && cp -r bot/locales .locales-check
	$(BIN)/pybabel compile -d .locales-check --statistics
	rm -rf .locales-check

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
