# The two commands: `make demo` runs the local demo end to end; `make test` runs every test.
# Each installs what it needs (node modules, the Temporal CLI) first.
.PHONY: demo test build deps tools bench chaos clean

# Node.js 22 or 24 (OBJINFER_NODE picks the line): the machine's when it is one, else the
# pinned build from the npm registry, cached outside the clone (scripts/setup-node.sh).
NODE_BIN := $(shell ./scripts/setup-node.sh)
ifeq ($(NODE_BIN),)
$(error no Node.js 22 or 24 could be set up; see the message above)
endif
export PATH := $(NODE_BIN):$(PATH)

deps: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	# The lock lists every platform's optional binaries, so `npm ci` installs exactly it and never rewrites it.
	npm ci --no-audit --no-fund
	@touch $@

tools:
	./scripts/setup-tools.sh

# Built only when a source changed: a second `make demo` goes straight to the pipeline.
SOURCES := $(shell find src -type f) tsconfig.json package.json package-lock.json
build: dist/.built
dist/.built: node_modules/.package-lock.json $(SOURCES)
	npm run build
	@touch $@

demo: build tools
	./bin/objinfer demo

test: build tools
	./scripts/setup-test-deps.sh
	# The Temporal time-skipping test server (Java, from Maven Central) for test/workflow.test.ts.
	./scripts/setup-test-server.sh
	# The BigQuery emulator the gcp tests run their statements on (docs/gcp.md says what a shim carries out instead): built once into ~/.cache/objinfer.
	./scripts/setup-bigquery-emulator.sh >/dev/null
	# Google's ZetaSQL analyser (Java, Maven Central), which the gcp tests run on every statement as written.
	./scripts/setup-zetasql.sh >/dev/null
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
