# sealmail: build, run, test, bench.
#
#   make run     build and run sealmail on its embedded default (--dev, ./data)
#   make test    install what the tests need, then run every test
#   make check   fmt + clippy -D warnings + tests
#   make bench   storage benchmarks (encrypted vs plain, same run)

CARGO ?= cargo

.PHONY: run test check bench deps fmt clippy

run: deps
	$(CARGO) run --release --bin sealmail -- serve --dev

# System packages the build and tests need (Debian). Skipped when present.
DEB_PACKAGES = libssl-dev pkg-config curl fetchmail swaks openssl python3 isync

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Python peers for the tests: a DNS server (dnslib), an independent DKIM
# signer (dkimpy), an SMTP server (aiosmtpd), in a virtualenv under target/
# (rebuilt by `cargo clean`, refreshed when the requirements change).
PYENV = target/pyenv
$(PYENV)/.installed: tests/interop/requirements.txt
	python3 -m venv $(PYENV)
	$(PYENV)/bin/pip install -q --disable-pip-version-check -r tests/interop/requirements.txt
	touch $@

test: deps $(PYENV)/.installed
	$(CARGO) test --all-targets

fmt:
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

check: fmt clippy test

bench: deps
	$(CARGO) build --release -p sealmail -p sealmail-bench --bins
	ulimit -n $$(ulimit -Hn) 2>/dev/null || true; ./target/release/sealmail-bench
