# taskmgr: build, run and test the nginx modules.
#
#   make run        install what is missing, build, start PostgreSQL + Redis in
#                   .data/, migrate, serve on 127.0.0.1:8080 (Ctrl-C stops all)
#   make test       the C unit tests (t/unit/), then the same on throw-away
#                   ports and folders and `prove -r t/`
#
# Other targets: deps build build-asan unit test-asan migrate migrate-repair
# bench stop status clean clean-data.  Variables: T=<test files> (default t/), VERBOSE=1.

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

NGX_SRC     := /usr/share/nginx/src
MODULE      := ngx_http_taskmgr_module

CC_OPT      := -g -O2 -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
               -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
ASAN_CC_OPT := $(CC_OPT) -fsanitize=address -fno-omit-frame-pointer
# -z nodelete: nginx dlclose()s modules at exit, before LeakSanitizer
# reports; without it the module's frames show as "<unknown module>".
ASAN_LD_OPT := -fsanitize=address -Wl,-z,nodelete

RELEASE_SO  := build/modules/$(MODULE).so
ASAN_SO     := build/modules-asan/$(MODULE).so

# `make run` ports (also written in lua-free-conf/taskmgr.conf)
RUN_DATA       := $(CURDIR)/.data
RUN_PG_PORT    := 25432
RUN_REDIS_PORT := 26379

# Debian packages everything here needs (build, run, test, bench).
DEB_PACKAGES := build-essential nginx-core nginx-dev libpq-dev \
                postgresql-15 postgresql-client-15 redis-server redis-tools \
                libjansson-dev libargon2-dev libssl-dev libhiredis-dev \
                wrk perl curl jq procps util-linux passwd coreutils john-data

.PHONY: all deps build build-asan unit run test test-asan migrate migrate-repair bench stop status \
        clean clean-data FORCE

all: build

# ---------------------------------------------------------------- deps ----
# Idempotent: apt-get runs only when a package is missing.
deps:
	@missing=(); \
	for p in $(DEB_PACKAGES); do \
	    dpkg -s "$$p" 2>/dev/null | grep -q '^Status: install ok installed' \
	        || missing+=("$$p"); \
	done; \
	if [ $${#missing[@]} -eq 0 ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
	    echo "make deps: missing Debian packages: $${missing[*]}" >&2; \
	    echo "make deps: run 'sudo make deps' once (or apt-get install them), then retry" >&2; \
	    exit 1; \
	fi; \
	echo "make deps: installing $${missing[*]}"; \
	apt-get update; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$${missing[@]}"

# --------------------------------------------------------------- build ----
# nginx's configure writes objs/ into its source tree, so release and asan
# builds use separate copies of /usr/share/nginx/src.  configure runs again
# only when `config` (or the flags) changed; the make step always runs and is
# incremental (objs/Makefile lists `config`'s ngx_module_deps for every .o).

# $(1) build kind (release|asan)  $(2) source copy  $(3) cc-opt  $(4) ld-opt
define ngx_configure
	@mkdir -p build
	@if [ ! -f $(2)/.copied ]; then \
	    echo "build: copying $(NGX_SRC) to $(2)"; \
	    rm -rf $(2) $(2).tmp; \
	    cp -a $(NGX_SRC) $(2).tmp; \
	    touch $(2).tmp/.copied; \
	    mv $(2).tmp $(2); \
	fi
	@echo "build: configuring $(1) ($(2))"
	@cd $(2) && source $(NGX_SRC)/conf_flags \
	    && ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(CURDIR) \
	        --with-cc-opt='$(3)' $(if $(4),--with-ld-opt='$(4)') \
	        > ../configure-$(1).log 2>&1 \
	    || { tail -n 40 ../configure-$(1).log >&2; \
	         echo "build: configure failed, see build/configure-$(1).log" >&2; exit 1; }
	@touch $@
endef

# $(1) source copy  $(2) destination .so
define ngx_make_module
	@$(MAKE) --no-print-directory -C $(1) -f objs/Makefile modules
	@mkdir -p $(dir $(2))
	@cp $(1)/objs/$(MODULE).so $(2).tmp && mv -f $(2).tmp $(2)
	@echo "build: $(2)"
endef

# The flags files change (and so trigger configure) only when their text does.
build/release.flags: FORCE
	@mkdir -p build; f='$(CC_OPT)'; \
	[ -f $@ ] && [ "$$(cat $@)" = "$$f" ] || printf '%s\n' "$$f" > $@

build/asan.flags: FORCE
	@mkdir -p build; f='$(ASAN_CC_OPT) | $(ASAN_LD_OPT)'; \
	[ -f $@ ] && [ "$$(cat $@)" = "$$f" ] || printf '%s\n' "$$f" > $@

build/nginx-src/.configured: config build/release.flags | deps
	$(call ngx_configure,release,build/nginx-src,$(CC_OPT),)

build/nginx-src-asan/.configured: config build/asan.flags | deps
	$(call ngx_configure,asan,build/nginx-src-asan,$(ASAN_CC_OPT),$(ASAN_LD_OPT))

build: deps build/nginx-src/.configured
	$(call ngx_make_module,build/nginx-src,$(RELEASE_SO))

build-asan: deps build/nginx-src-asan/.configured
	$(call ngx_make_module,build/nginx-src-asan,$(ASAN_SO))

# ----------------------------------------------------------- run / test ----
# C unit tests: plain programs (TAP output) over module files that do not
# need nginx, built with AddressSanitizer and UBSan.
UNIT_CC_OPT := $(CC_OPT) -fsanitize=address,undefined -fno-omit-frame-pointer

build/unit/totp_test: t/unit/totp_test.c ngx_taskmgr_module/ngx_http_taskmgr_totp.c \
                      ngx_taskmgr_module/ngx_http_taskmgr_totp.h | deps
	@mkdir -p build/unit
	$(CC) $(UNIT_CC_OPT) -Ingx_taskmgr_module -o $@ t/unit/totp_test.c \
	    ngx_taskmgr_module/ngx_http_taskmgr_totp.c -lcrypto

unit: build/unit/totp_test
	@build/unit/totp_test > build/unit/totp_test.log \
	    || { cat build/unit/totp_test.log; echo "unit: totp_test failed" >&2; exit 1; }
	@echo "unit: totp_test: $$(grep -c '^ok' build/unit/totp_test.log) checks passed"

run: deps build
	@scripts/run.sh

test: deps build unit
	@scripts/test.sh $(CURDIR)/$(RELEASE_SO)

test-asan: deps build-asan unit
	@scripts/test.sh $(CURDIR)/$(ASAN_SO) asan

# Migrate the `make run` database (starts its PostgreSQL and Redis if needed;
# `make stop` stops them).
migrate: deps
	@scripts/stack.sh start $(RUN_DATA) $(RUN_PG_PORT) $(RUN_REDIS_PORT)
	@scripts/migrate.sh $(RUN_DATA)/pgsock $(RUN_PG_PORT) taskmgr

# Record the current checksum of applied migrations edited since (after an
# edit known to be harmless); applies nothing.  See README "Migrations".
migrate-repair: deps
	@scripts/stack.sh start $(RUN_DATA) $(RUN_PG_PORT) $(RUN_REDIS_PORT)
	@scripts/migrate.sh --repair $(RUN_DATA)/pgsock $(RUN_PG_PORT) taskmgr

stop:
	@scripts/stack.sh stop $(RUN_DATA) $(RUN_PG_PORT) $(RUN_REDIS_PORT)

status:
	@scripts/stack.sh status $(RUN_DATA) $(RUN_PG_PORT) $(RUN_REDIS_PORT)

bench: deps build
	@if [ -f bench/run.sh ]; then exec bash bench/run.sh; \
	 else echo "make bench: bench/run.sh does not exist yet" >&2; exit 1; fi

clean:
	rm -rf build t/tmp bench/.run

# Removes the `make run` data (database, secrets) after stopping its daemons.
clean-data:
	@if [ -d $(RUN_DATA) ]; then \
	    scripts/stack.sh stop $(RUN_DATA) $(RUN_PG_PORT) $(RUN_REDIS_PORT); \
	    rm -rf $(RUN_DATA); \
	fi
