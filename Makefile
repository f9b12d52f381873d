# The two commands of README.md, and the install target packagers use.
.PHONY: test demo build install install-files deb

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/lvs-director
SYSCONFDIR ?= /etc
PROFILE ?= release
CARGO_TARGET_DIR ?= /var/tmp/lvs-director-target
DAEMONS := directord vrrpd syncd feedbackd
BINARIES := $(DAEMONS) lvsadm
UNITS := directord vrrpd syncd feedbackd feedbackd-agent

test:
	scripts/test-all

demo:
	scripts/demo

build:
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) cargo build --locked --workspace --bins $(if $(filter release,$(PROFILE)),--release,)

# lvs-director_VERSION_ARCH.deb in target/deb: binaries, units, manual pages, completions.
deb:
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) scripts/build-deb --profile $(PROFILE)

# DESTDIR-aware: `make install DESTDIR=/tmp/root PREFIX=/usr`. install-files installs what
# is already built.
install: build install-files

install-files:
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/lvs-director
	for bin in $(BINARIES); do install -m 0755 $(CARGO_TARGET_DIR)/$(if $(filter release,$(PROFILE)),release,debug)/$$bin $(DESTDIR)$(SBINDIR)/$$bin; done
	for unit in $(UNITS); do \
	  sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	    systemd/$$unit.service.in > $(DESTDIR)$(UNITDIR)/$$unit.service; \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$unit.service; \
	done
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 config/examples/director.toml $(DESTDIR)$(DOCDIR)/director.toml.example
	install -d $(DESTDIR)$(DOCDIR)/monitoring
	install -m 0644 monitoring/alerts.yml monitoring/alerts.test.yml monitoring/grafana-dashboard.json $(DESTDIR)$(DOCDIR)/monitoring/
	# Never overwrite an operator's config.
	[ -e $(DESTDIR)$(SYSCONFDIR)/lvs-director/director.toml ] || \
	  install -m 0640 config/examples/director.toml $(DESTDIR)$(SYSCONFDIR)/lvs-director/director.toml
