.PHONY: help setup up test lint bench loadtest
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
bench:           ## every benchmark, full mode (minutes each; see bench/README.md)
	for b in pickup_latency redelivery throughput latency media_overhead scale submit_load fairness; do \
		.venv/bin/python -m bench.$$b || exit 1; done
loadtest:        ## the main load scenario against a running faktry (HOST=http://127.0.0.1:8000)
	.venv/bin/python -m loadtests.run api --host $${HOST:-http://127.0.0.1:8000} --setup-from-env
