# Two commands on a fresh Debian machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
#: pytest-xdist workers for `make test`: each has its own test databases (tests/conftest.py).
TEST_WORKERS ?= 3

.PHONY: demo test lint install system browser db bench bench-lookup bench-partition bench-tiles bench-people bench-events bench-abuse bench-scale serve clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,scale]'
	touch $(STAMP)

install: $(STAMP)

system:
	bash scripts/install_system.sh postgis

browser:
	bash scripts/install_system.sh chromium

db: install system
	$(BIN)/gridmap db start

demo: db
	$(BIN)/gridmap demo load --scale guancheng --fresh
	$(BIN)/gridmap serve --host 127.0.0.1 --port 5000

serve: db
	$(BIN)/gridmap serve --host 127.0.0.1 --port 5000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint db browser
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

bench: db
	$(BIN)/python scripts/bench_store.py --scale zhengzhou

bench-lookup: db
	bash scripts/install_system.sh wrk
	$(BIN)/python scripts/bench_lookup.py

bench-partition: db
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python scripts/bench_partition.py --courtyards 60 --spopt-limit 20 --city

bench-tiles: db
	$(BIN)/python scripts/bench_tiles.py

bench-people: db
	$(BIN)/python scripts/bench_people.py

bench-events: db
	$(BIN)/python scripts/bench_events.py

bench-scale: db
	$(BIN)/pip install -q -e '.[test,scale,bench]'
	$(BIN)/python scripts/bench_scale.py --points 20000000 --workers 2 --big 100000000

bench-abuse: db
	bash scripts/install_system.sh wrk
	$(BIN)/python scripts/bench_abuse.py

clean:
	-$(BIN)/gridmap db stop
	rm -rf $(VENV) .gridmap
