# `make bench`: benchmarks against same-run baselines and a million waiting workflows; prints a
# table, writes docs/benchmarks.md, ends with a `BENCH …` line (see bench/run.py). Not part of
# `make test`. BENCH_ARGS="--size small --skip-scale" for a quick run.
BENCH_PY ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: bench
bench:
	command -v wrk >/dev/null || apt-get install -y wrk
	"$(BENCH_PY)" -m bench.run $(BENCH_ARGS)
