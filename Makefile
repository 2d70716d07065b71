# Every target installs what it needs into .venv first, so `make run` and `make test`
# work on a fresh machine with only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench soak fuzz clean

# The C sources too: pip install -e compiles them, and an edit to one must rebuild it.
$(STAMP): pyproject.toml $(wildcard service/*/*.c)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The loopback FHIR server the integration tests read from (Medplum's FHIR router, in memory).
FHIRSERVER := tests/fhirserver/node_modules/.package-lock.json
$(FHIRSERVER): tests/fhirserver/package-lock.json
	npm ci --prefix tests/fhirserver --no-audit --no-fund --loglevel=error

run: install
	$(BIN)/tdm1-cds serve --dev --host 127.0.0.1 --port 8080

# The storage tests also run on PostgreSQL: a throwaway loopback cluster is started when Debian's
# postgresql package is installed and TDM1_CDS_TEST_POSTGRES_URL does not name one already.
test: install $(FHIRSERVER)
	@if [ -z "$$TDM1_CDS_TEST_POSTGRES_URL" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  TDM1_CDS_TEST_POSTGRES_URL="$$(bash tests/storage/postgres.sh start)"; export TDM1_CDS_TEST_POSTGRES_URL; \
	fi; \
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench

# Load benchmark, not a test: ratios against an echo server measured in the same run (bench/RESULTS.md).
# Needs wrk; bench/run.py installs it with apt-get when run as root, or says what to install.
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# 10 minutes at 70% of the measured maximum: zero errors and flat memory (SOAK_ARGS=--minutes 2 to shorten).
soak: install
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# The long fuzz run: new random cases each time, many more of them, and a per-call deadline
# (`make test` runs a fixed slice of the same fuzzers). FUZZ_EXAMPLES per fuzzer; the count is printed.
FUZZ_EXAMPLES ?= 3000
fuzz: install
	TDM1_CDS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TDM1_CDS_FUZZ_DEADLINE_MS=$${TDM1_CDS_FUZZ_DEADLINE_MS:-5000} \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz

clean:
	rm -rf $(VENV) .pytest_cache
