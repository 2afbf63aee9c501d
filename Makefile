# The README's two commands are `make demo` and `make test`; both install what
# they need on a fresh Debian 12 machine (as root).
SWIFT ?= swift
SWIFT_FLAGS ?=

.PHONY: all deps build release goreplay-static test demo demo-down bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS)

# goreplay for real hosts, which have no Swift runtime: the Swift libraries linked in statically,
# built apart from .build so the dynamic release build stays as it is. Deploy it with
#   govuk-fab ENV puppet_class:gor deploy-goreplay:binary=.build-static/release/goreplay
goreplay-static: deps
	$(SWIFT) build -c release --product goreplay --static-swift-stdlib --scratch-path .build-static $(SWIFT_FLAGS)
	@ldd .build-static/release/goreplay | grep -q libswiftCore && { echo "goreplay still links libswiftCore dynamically" >&2; exit 1; } || true
	@echo "built .build-static/release/goreplay"

# Four runs, every test in exactly one (the patterns match '<target>.<suite>/<test>'): the SSH
# transport's timing checks alone; the binary end-to-end suites; goreplay's (many subprocesses
# and sockets); everything else. All at once, dozens of sshd fleets and goreplay processes on
# 2 cores starved SSH handshakes past their timeouts.
GOREPLAY_SUITES = '^(ReplayTests|CaptureTests|ReplayReportTests)\.'
test: deps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) test --skip-build $(SWIFT_FLAGS) --filter '^SSHTransportTests\.'
	$(SWIFT) test --skip-build $(SWIFT_FLAGS) --filter '^EndToEndTests\.'
	$(SWIFT) test --skip-build $(SWIFT_FLAGS) --filter $(GOREPLAY_SUITES)
	$(SWIFT) test --skip-build $(SWIFT_FLAGS) --skip '^SSHTransportTests\.' --skip '^EndToEndTests\.' --skip $(GOREPLAY_SUITES)

demo: deps release
	@scripts/demo.sh

demo-down:
	@scripts/demo.sh down

bench: deps release
	@bench/run.sh

# libFuzzer harnesses (docs/fuzzing.md), built with the fuzzer and AddressSanitizer in their own
# .build-fuzz and run one after another, each for FUZZ_SECONDS (or FUZZ_RUNS inputs):
#   make fuzz FUZZ_SECONDS=60
#   make fuzz FUZZ_TARGETS="GorReader HTTPFramer" FUZZ_RUNS=1000000
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_TARGETS ?=
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) SWIFT=$(SWIFT) scripts/fuzz.sh $(FUZZ_TARGETS)

clean:
	rm -rf .build .build-static .build-fuzz .build-fuzz-runs
