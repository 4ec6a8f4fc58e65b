# The two commands: `make demo` runs the local demo end to end; `make test` runs every test.
# Each installs what it needs (node modules, the Temporal CLI) first.
.PHONY: demo test build deps tools bench chaos clean

deps: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	# The lock lists every platform's optional binaries, so `npm ci` installs exactly it and never rewrites it.
	npm ci --no-audit --no-fund
	@touch $@

tools:
	./scripts/setup-tools.sh

build: deps
	npm run build

demo: build tools
	./bin/objinfer demo

test: build tools
	./scripts/setup-test-deps.sh
	# The Temporal time-skipping test server (Java, from Maven Central) for test/workflow.test.ts.
	./scripts/setup-test-server.sh
	# The BigQuery emulator the gcp tests run every statement on: built once into ~/.cache/objinfer.
	./scripts/setup-bigquery-emulator.sh >/dev/null
	npm run typecheck
	# ESLint (workflow code kept deterministic, no floating promises) and Prettier.
	npm run lint
	# The Google clients load a module dynamically, which jest's VM contexts allow only with this flag.
	NODE_OPTIONS=--experimental-vm-modules npx jest

bench: build tools
	npx tsx bench/run.ts

# 50+ worker kills and one dev-server kill, then exactly-once checks (README "Reliability under faults").
chaos: build tools
	npx tsx test/chaos/chaos.ts

clean:
	rm -rf dist .objinfer/demo
