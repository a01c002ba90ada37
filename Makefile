.PHONY: help setup up test lint bench
help:            ## list the commands
	@grep -E '^[a-z]+:.*##' Makefile | sed 's/:.*##/\t/'
setup:           ## create .venv with faktry and the dev tools
	bash scripts/setup
up:              ## run faktry on the zero-setup default
	bash scripts/up
test:            ## lint, types and the whole test suite
	bash scripts/test
lint:            ## ruff and mypy only
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
bench:           ## the benchmarks (see bench/README.md)
	.venv/bin/python -m bench.pickup_latency
