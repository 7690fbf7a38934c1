# ppprune developer tasks. `make install` then `make test` on a fresh machine.
PYTHON ?= python3

.PHONY: install test lint bench demo

install:
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e ".[test]"
	# Fashion-MNIST for the demo data and the classification examples (optional: digits are the fallback)
	-if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi

# --no-loadscope-reorder: keep tests/conftest.py's order (longest modules first) instead of xdist's (most tests first)
test:
	$(PYTHON) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder -m "not timing"
	$(PYTHON) -m pytest -q -p no:cacheprovider -m timing

lint:
	$(PYTHON) -m pip install -q ruff
	$(PYTHON) -m ruff check --select F,E9 ppprune tools tests bench examples

bench:
	$(PYTHON) bench/prune_speed.py
	$(PYTHON) bench/prune_speed.py --ir legacy
	$(PYTHON) bench/sensitivity_speed.py
