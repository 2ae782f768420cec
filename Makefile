# sealmail: build, run, test, bench.
#
#   make run     build and run sealmail on its embedded default (--dev, ./data)
#   make test    install what the tests need, then run every test
#   make check   fmt + clippy -D warnings + tests
#   make bench   benchmarks (encrypted vs plain, and against Dovecot, same run)
#   make fuzz    every parser's fuzz target under AFL, FUZZ_SECONDS each
#   make deb     the Debian package (target/sealmail.deb)

CARGO ?= cargo

.PHONY: run test check bench deps fmt clippy fuzz deb

run: deps
	$(CARGO) run --release --bin sealmail -- serve --dev

# System packages the build and tests need (Debian). Skipped when present.
DEB_PACKAGES = libssl-dev pkg-config curl fetchmail swaks openssl python3 isync fail2ban \
  systemd adduser man-db dovecot-imapd clamav-daemon rspamd \
  unbound nsd ldnsutils 7zip pebble prometheus sieve-connect \
  gnupg gpg-wks-client

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
	$(CARGO) test --all-targets -p sealmail -p sealmail-heap

fmt:
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

check: fmt clippy test

# The binary, the systemd unit, sealmail(1), postinst making the sealmail
# user and /var/lib/sealmail (packaging/deb/).
deb: deps
	$(CARGO) build --release --bin sealmail
	bash packaging/deb/build.sh target/release/sealmail target/sealmail.deb

# The reference servers `make bench` compares against (run from a config in
# a temporary directory, never as the system services).
BENCH_PACKAGES = dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix

bench: deps
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(BENCH_PACKAGES)"
	$(CARGO) build --release -p sealmail -p sealmail-bench --bins
	ulimit -n $$(ulimit -Hn) 2>/dev/null || true; ./target/release/sealmail-bench

# Fuzzing on the stable toolchain with cargo-afl (installed when missing).
# Each target runs FUZZ_SECONDS from its seeds (fuzz/seeds/<target>); a
# crash fails the run and is left in fuzz/target/afl/<target>/default/crashes.
# CI runs a short pass; run longer by hand: make fuzz FUZZ_SECONDS=600.
# FUZZ_PROFILE=dev builds faster (CI's smoke pass); release runs faster.
FUZZ_SECONDS ?= 60
FUZZ_PROFILE ?= release
FUZZ_TARGETS = autoconfig sieve managesieve openpgp imap smtp smtp_data pop3 sasl mutf7 mbox mime address imap_url imap_response scanner http mta_sts dmarc_report x509 archive
FUZZ_BIN = fuzz/target/$(if $(filter dev,$(FUZZ_PROFILE)),debug,$(FUZZ_PROFILE))

fuzz:
	@command -v cargo-afl >/dev/null || $(CARGO) install cargo-afl --locked
	cd fuzz && $(CARGO) afl build --profile $(FUZZ_PROFILE)
	@mkdir -p fuzz/target/afl; passed=0; failed=0; \
	for t in $(FUZZ_TARGETS); do \
	  out=fuzz/target/afl/$$t; rm -rf $$out; \
	  AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
	  AFL_QUIET=1 AFL_NO_AFFINITY=1 \
	    $(CARGO) afl fuzz -i fuzz/seeds/$$t -o $$out -V $(FUZZ_SECONDS) \
	    $(FUZZ_BIN)/$$t > $$out.log 2>&1; \
	  execs=$$(sed -n 's/^execs_done *: *//p' $$out/default/fuzzer_stats 2>/dev/null); \
	  crashes=$$(ls $$out/default/crashes 2>/dev/null | grep -vc README); \
	  if [ -n "$$execs" ] && [ "$$crashes" = 0 ]; then \
	    passed=$$((passed+1)); echo "fuzz $$t: $$execs executions, no crash"; \
	  else \
	    failed=$$((failed+1)); echo "fuzz $$t: FAILED ($$crashes crashes; log $$out.log)"; \
	  fi; \
	done; \
	echo "fuzz: $$passed passed, $$failed failed"; [ $$failed = 0 ]
