# The README's two commands are `make demo` and `make test`; both install what
# they need on a fresh Debian 12 machine (as root).
SWIFT ?= swift
SWIFT_FLAGS ?=

.PHONY: all deps build release goreplay-static test demo demo-down bench clean

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

# The SSH transport's timing checks run on their own, so the many subprocess-
# driven suites cannot starve their event loop on a 2-core machine.
test: deps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) test --skip-build $(SWIFT_FLAGS) --filter SSHTransportTests
	$(SWIFT) test --skip-build $(SWIFT_FLAGS) --skip SSHTransportTests

demo: deps release
	@scripts/demo.sh

demo-down:
	@scripts/demo.sh down

bench: deps release
	@bench/run.sh

clean:
	rm -rf .build .build-static
