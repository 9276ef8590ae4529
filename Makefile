# SPDX-License-Identifier: Apache-2.0
# warden — one entry point. `make` builds every daemon and tool; see README.md.

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc

WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings -Wformat=2
HARDEN   = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS  ?= -O2 -g
BASEFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -Ilibshared/include -I$(BUILD)/gen
ifeq ($(SAN),1)
  # Sanitizer build (make asan): FORTIFY is incompatible with ASan's interceptors.
  CFLAGS   = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  HARDEN   = -fPIE
  LDSAN    = -fsanitize=address,undefined
endif
ifneq ($(CI),)
  WERROR = -Werror
endif
ALL_CFLAGS = $(BASEFLAGS) $(HARDEN) $(CPPFLAGS) $(CFLAGS) $(WERROR)
LDFLAGS_ALL = -pie -Wl,-z,relro -Wl,-z,now $(LDSAN) $(LDFLAGS)
LIBS = -lhiredis -lsodium -lssl -lcrypto -ljansson -lsystemd -lpthread -lm

# ---- libshared -------------------------------------------------------------
SHARED_SRC = $(wildcard libshared/src/*.c)
SHARED_OBJ = $(SHARED_SRC:%.c=$(BUILD)/obj/%.o)
LIBSHARED  = $(BUILD)/libshared.a

# ---- embedded Lua: every lua-scripts/*.lua becomes `script_<name>` -----------
LUA_SRC    = $(sort $(wildcard lua-scripts/*.lua))
SCRIPTS_C  = $(BUILD)/gen/scripts.c
SCRIPTS_O  = $(BUILD)/obj/gen/scripts.o
# A daemon links only its own scripts: those whose names start with its prefix.
LUA_PREFIX_ratelimitd = ratelimit
LUA_PREFIX_auditd     = audit
LUA_PREFIX_idemd      = idem
LUA_PREFIX_tokend     = token
daemon_scripts = $(patsubst lua-scripts/%.lua,$(BUILD)/obj/gen/scripts/%.o,$(wildcard lua-scripts/$(LUA_PREFIX_$(1))_*.lua))
TEST_LUA   = $(sort $(wildcard tests/lua/*.lua))
TSCRIPTS_C = $(BUILD)/gen/test_scripts.c
TSCRIPTS_O = $(BUILD)/obj/gen/test_scripts.o

# ---- daemons: a folder with a main.c is a daemon; <dir>/cmd-NAME.c is its tool NAME ---
DAEMONS    = $(patsubst %/main.c,%,$(wildcard ratelimitd/main.c auditd/main.c idemd/main.c tokend/main.c))
CMD_SRC    = $(foreach d,$(DAEMONS),$(wildcard $(d)/cmd-*.c))
BINS       = $(DAEMONS:%=$(BUILD)/bin/%) \
             $(foreach f,$(CMD_SRC),$(BUILD)/bin/$(patsubst cmd-%.c,%,$(notdir $(f))))
# A daemon's objects besides its main.c and tools: linked into the daemon, its tools and
# the tests.
daemon_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out $(1)/main.c $(1)/cmd-%.c,$(wildcard $(1)/*.c)))
ALL_DAEMON_OBJS = $(foreach d,$(DAEMONS),$(call daemon_objs,$(d)))

# ---- tests -------------------------------------------------------------------
TESTLIB_SRC = $(wildcard tests/lib/*.c)
TESTLIB_OBJ = $(TESTLIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BINS   = $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
INTEG_BINS  = $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(wildcard tests/integration/test_*.c))
LARGE_BINS  = $(patsubst tests/large/%.c,$(BUILD)/tests/large/%,$(wildcard tests/large/test_*.c))
TESTD       = $(BUILD)/tests/testd
BENCH_BINS  = $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(wildcard tests/bench/*.c))

.PHONY: all deps run test test-large asan fuzz bench bench-redis-pool lint clean install tests-build deb
.DEFAULT_GOAL := all

all: $(BINS)

# Sources may include the generated script headers: they exist before anything compiles.
$(BUILD)/obj/%.o: %.c | $(SCRIPTS_C) $(TSCRIPTS_C)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIBSHARED): $(SHARED_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SCRIPTS_C): $(LUA_SRC) tools/embed-lua.sh
	@mkdir -p $(dir $@)
	sh tools/embed-lua.sh $@ $(LUA_SRC)

$(TSCRIPTS_C): $(TEST_LUA) tools/embed-lua.sh
	@mkdir -p $(dir $@)
	sh tools/embed-lua.sh $@ $(TEST_LUA)

$(BUILD)/gen/scripts/%.c: $(SCRIPTS_C) ;
.PRECIOUS: $(BUILD)/gen/scripts/%.c

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

define daemon_rule
$(BUILD)/bin/$(1): $(BUILD)/obj/$(1)/main.o $(call daemon_objs,$(1)) $(call daemon_scripts,$(1)) \
		$(LIBSHARED)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS_ALL) -o $$@ $$^ $$(LIBS)
endef
define tool_rule
$(BUILD)/bin/$(patsubst cmd-%.c,%,$(notdir $(1))): $(BUILD)/obj/$(1:.c=.o) \
		$(call daemon_objs,$(patsubst %/,%,$(dir $(1)))) \
		$(call daemon_scripts,$(patsubst %/,%,$(dir $(1)))) $(LIBSHARED)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS_ALL) -o $$@ $$^ $$(LIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rule,$(d))))
$(foreach f,$(CMD_SRC),$(eval $(call tool_rule,$(f))))

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB_OBJ) $(SCRIPTS_O) $(TSCRIPTS_O) \
		$(ALL_DAEMON_OBJS) $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) -lcmocka

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(TESTLIB_OBJ) $(SCRIPTS_O) \
		$(TSCRIPTS_O) $(ALL_DAEMON_OBJS) $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) -lcmocka

$(BUILD)/tests/large/%: $(BUILD)/obj/tests/large/%.o $(TESTLIB_OBJ) $(SCRIPTS_O) \
		$(TSCRIPTS_O) $(ALL_DAEMON_OBJS) $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) -lcmocka

$(TESTD): $(BUILD)/obj/tests/testd/testd.o $(TSCRIPTS_O) $(SCRIPTS_O) $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/tests/bench/%: $(BUILD)/obj/tests/bench/%.o $(TESTLIB_OBJ) $(TSCRIPTS_O) $(SCRIPTS_O) $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

tests-build: all $(UNIT_BINS) $(INTEG_BINS) $(TESTD) $(BENCH_BINS)

# ---- entry points ------------------------------------------------------------
deps:
	@sh tools/deps.sh

# PORT_BASE=9080 moves the daemons to 9081..9084. The script runs as a job of its own
# (sh -m): Ctrl-C reaches it and not make, so it stops everything and make exits 0.
run: deps all
	@PORT_BASE=$(or $(PORT_BASE),8080) sh -c 'set -m 2>/dev/null; sh deploy/scripts/run-local.sh "$$1"' run $(BUILD)

# make test builds with -Werror (CONTRIBUTING.md, "Testing"), CI or not; plain `make` only under CI=true.
test: deps
	@$(MAKE) --no-print-directory -j2 WERROR=-Werror tests-build
	@sh tests/run.sh $(BUILD)

# The slow tests (minutes each: auditd's transparency log at 1,000,000 entries), apart from
# make test; AUDIT_LARGE_ENTRIES sets another size.
test-large: deps
	@$(MAKE) --no-print-directory -j2 WERROR=-Werror tests-build $(LARGE_BINS)
	@sh tests/run.sh --large $(BUILD)

asan: deps
	@$(MAKE) --no-print-directory -j2 BUILD=build/asan SAN=1 WERROR=-Werror tests-build
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		sh tests/run.sh build/asan

bench-redis-pool: deps
	@$(MAKE) --no-print-directory -j2 tests-build
	@sh tests/bench/bench-redis-pool.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory -j2 tests-build
	@sh tests/bench/bench.sh $(BUILD)

# FUZZ_SECONDS per harness (default 60); FUZZ_ONLY="fuzz_config ..." runs just those.
fuzz: deps
	@FUZZ_OUT=$(BUILD)/fuzz sh tests/fuzz/run.sh $(or $(FUZZ_SECONDS),60) $(FUZZ_ONLY)

lint:
	@sh tools/lint.sh

# ---- make install: a working system under $(DESTDIR)$(PREFIX) ---------------------------------
# Programs as warden-<name> (Debian's own auditd is another program), man pages, systemd
# units (paths rewritten to this prefix), an example environment file per daemon (never
# over an existing one), the Redis files, the backup and restore scripts with the Lua
# scripts they check, alert rules and dashboard, and the docs the units point at.
# PREFIX=/usr puts configuration in /etc and units in /lib/systemd/system (the package).
BINDIR     ?= $(PREFIX)/bin
DATADIR    ?= $(PREFIX)/share/warden
DOCDIR     ?= $(PREFIX)/share/doc/warden
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib,$(PREFIX)/lib)/systemd/system
UNIT_SED    = -e 's|/usr/bin/|$(BINDIR)/|g' -e 's|/etc/warden/|$(SYSCONFDIR)/warden/|g' \
              -e 's|/usr/share/doc/warden/|$(DOCDIR)/|g' -e 's|/usr/share/warden/|$(DATADIR)/|g'
OPS_LIBS    = restore-checks.sh restore-apps.sh common.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/warden $(DESTDIR)$(DATADIR)/redis \
		$(DESTDIR)$(DATADIR)/scripts $(DESTDIR)$(DATADIR)/lua-scripts \
		$(DESTDIR)$(DATADIR)/prometheus $(DESTDIR)$(DOCDIR)/api $(DESTDIR)$(DOCDIR)/openapi
	for b in $(notdir $(BINS)); do install -m 0755 $(BUILD)/bin/$$b $(DESTDIR)$(BINDIR)/warden-$$b; done
	install -m 0644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 docs/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	for u in deploy/systemd/*.service deploy/systemd/*.timer; do \
		sed $(UNIT_SED) $$u >$(DESTDIR)$(UNITDIR)/$${u##*/} && chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/}; done
	for e in deploy/env/*.env; do d=$(DESTDIR)$(SYSCONFDIR)/warden/$${e##*/}; \
		[ -e $$d ] || sed $(UNIT_SED) $$e >$$d; done
	install -m 0644 deploy/redis/redis.conf $(DESTDIR)$(DATADIR)/redis/
	install -m 0755 deploy/redis/gen-acl.sh $(DESTDIR)$(DATADIR)/redis/
	install -m 0755 deploy/scripts/backup.sh deploy/scripts/restore-test.sh \
		deploy/scripts/audit-retention.sh $(DESTDIR)$(DATADIR)/scripts/
	install -m 0644 $(OPS_LIBS:%=deploy/scripts/%) tools/scratch-redis.sh $(DESTDIR)$(DATADIR)/scripts/
	install -m 0644 lua-scripts/*.lua $(DESTDIR)$(DATADIR)/lua-scripts/
	install -m 0644 deploy/prometheus/*.yml $(DESTDIR)$(DATADIR)/prometheus/
	install -d $(DESTDIR)$(DATADIR)/grafana
	install -m 0644 deploy/grafana/*.json $(DESTDIR)$(DATADIR)/grafana/
	install -m 0644 docs/*.md CHANGELOG.md SECURITY.md CONTRIBUTING.md LICENSE $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/api/*.md $(DESTDIR)$(DOCDIR)/api/
	install -m 0644 docs/openapi/*.yaml $(DESTDIR)$(DOCDIR)/openapi/
	sed 's|](docs/|](|g' README.md >$(DESTDIR)$(DOCDIR)/README.md

# ---- make deb: build/warden_<version>_<arch>.deb with the Debian tools -----------------------
# A copy of the tree (without build output) goes through dpkg-buildpackage (debian/), so the
# checkout's debian/ stays clean; then lintian (pedantic), which must find nothing (debian/
# warden.lintian-overrides explains any tag kept).
VERSION  = $(shell sed -n 's/^\#define WARDEN_VERSION "\(.*\)"/\1/p' libshared/include/shared/version.h)
DEB_ARCH = $(shell dpkg --print-architecture 2>/dev/null)
DEB      = $(BUILD)/warden_$(VERSION)_$(DEB_ARCH).deb

deb:
	@sh tools/deps.sh debhelper lintian
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/warden-$(VERSION)
	tar --exclude=./build --exclude=./.run --exclude=./.git --exclude=./backups -cf - . | \
		tar -xf - -C $(BUILD)/deb/warden-$(VERSION)
	cd $(BUILD)/deb/warden-$(VERSION) && dpkg-buildpackage -b -us -uc
	mv $(BUILD)/deb/warden_$(VERSION)_$(DEB_ARCH).deb $(DEB)
	lintian --fail-on error,warning,info --info --pedantic $(DEB) || \
		{ echo "make deb: lintian found problems in $(DEB)" >&2; exit 1; }
	@echo "make deb: $(DEB)"

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- idemd (issue 3): the idempotency race tests alone ------------------------------------
.PHONY: test-idempotency-race-condition
test-idempotency-race-condition: deps
	@$(MAKE) --no-print-directory -j2 $(BUILD)/bin/idemd $(BUILD)/tests/integration/test_idemd_race
	@WARDEN_BUILD=$(abspath $(BUILD)) $(BUILD)/tests/integration/test_idemd_race

# ---- ratelimitd: multi-region tests alone (issue 4) -----------------------------------------
# Builds ratelimitd and the multi-region test, then runs only that binary: two ratelimitd
# processes with different CLOUD_RUN_REGION on one private Redis started by the harness.
.PHONY: test-rate-limit-multi-region
test-rate-limit-multi-region: deps
	@$(MAKE) --no-print-directory -j2 $(BUILD)/bin/ratelimitd \
		$(BUILD)/tests/integration/test_ratelimitd_multi_region
	@WARDEN_BUILD=$(abspath $(BUILD)) $(BUILD)/tests/integration/test_ratelimitd_multi_region

# ---- operations (issue 7): the DR drill end to end ------------------------------------------
# A Redis from deploy/redis/redis.conf with the generated ACL users, the four daemons putting
# real data in, backup.sh, restore-test.sh → passes; then damaged backups (a missing key, a
# truncated RDB, an audit entry edited before the backup) → each fails naming its check.
.PHONY: restore-test
restore-test: deps
	@$(MAKE) --no-print-directory -j2 all
	@sh tests/ops/restore-drill.sh $(BUILD)

# ---- reliability (issue 8): faults under load, not part of `make test` ---------------------
# Each daemon under load from tens of client threads while its private Redis (AOF on) is
# frozen, killed and restarted, has its scripts flushed, its clients killed, a DEBUG SLEEP,
# and maxclients reached; prints the table of docs/reliability.md and fails on any invariant
# breach. CHAOS_* variables shorten it (see tests/chaos/chaos.c).
CHAOS_BIN = $(BUILD)/tests/chaos/chaos
$(CHAOS_BIN): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/chaos/*.c)) $(TESTLIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

.PHONY: chaos
chaos: deps
	@$(MAKE) --no-print-directory -j2 all $(CHAOS_BIN)
	@sh tests/chaos/run.sh $(BUILD)

# ---- memory checking (issue 8): the suite under valgrind's memcheck -------------------------
# Every test binary, and every daemon and tool the tests start, under memcheck with one log
# per process (build/valgrind/memcheck/); a summary at the end; fails on any error or any
# definitely lost byte. Timing bounds scale by WARDEN_TIME_SCALE (default 10); see
# tests/valgrind/run.sh and docs/reliability.md.
.PHONY: valgrind
valgrind: deps
	@$(MAKE) --no-print-directory -j2 BUILD=build/valgrind tests-build
	@sh tests/valgrind/run.sh build/valgrind

# ---- reliability (issue 8): the soak, not part of make test or CI ----------------------------
# The four daemons at once on a private Redis, each under steady wrk load for SOAK_SECONDS
# (600): fails on RSS growth of 5% after the warm-up, descriptors that do not stay flat, or
# any error. Prints the table docs/reliability.md keeps.
.PHONY: soak
soak: deps
	@$(MAKE) --no-print-directory -j2 all
	@sh tests/soak/soak.sh $(BUILD)
