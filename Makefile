# Quasineuron build. `make` builds build/qn; `make test` runs every test twice,
# plainly and under AddressSanitizer + UndefinedBehaviorSanitizer; `make demo`
# runs the main job; `make bench` prints the benchmarks. Every target that
# builds first installs the Debian packages it needs that are missing (deps,
# deps-test, deps-fuzz below).
#
# Source files are found by wildcard: engine/, schema/ and the server's
# layers (server/store, server/jobs, server/http, server/cli but its main.c)
# form build/libqn.a; each tests/<dir>/test_*.c is one cmocka test program
# linked against it. server/mpi/ is build/qn-mpi alone (compiled with mpicc,
# linked with Open MPI and build/libqncore.a: engine and schema only); the
# daemon and libqn.a never link MPI.
#
# Layers: engine <- schema <- store <- jobs <- http, cli. A folder's files are
# compiled with the include paths of their own layer and the layers below it
# only (LAYER_INC), so an include of a higher layer fails to compile; what
# include paths cannot see (http and cli calling the store) check-layers does.

BUILD ?= build
CC ?= cc
SAN ?=
OPT ?= -O2

PKGS := libmicrohttpd jansson sqlite3 gsl openblas zlib
# -Wno-format-truncation: snprintf into fixed message buffers truncates on purpose.
WARN := -Wall -Wextra -Wpedantic -Wstrict-prototypes -Werror -Wno-format-truncation
CPPFLAGS_ALL := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
	$(shell pkg-config --cflags $(PKGS) cmocka 2>/dev/null)
# Each layer's include paths: itself and the layers below it.
INC_engine := -Iengine
INC_schema := $(INC_engine) -Ischema
INC_store := $(INC_schema) -Iserver/store
INC_jobs := $(INC_store) -Iserver/jobs
INC_http := $(INC_jobs) -Iserver/http
INC_cli := $(INC_http) -Iserver/cli
# qn-mpi sees the engine and the schema (the spool files), never the store.
INC_mpi := $(INC_schema) -Iserver/mpi
MPICC ?= mpicc
# The layer of a source file from its folder (tests see every layer).
layer_of = $(or $(if $(filter engine/%,$(1)),engine),$(if $(filter schema/%,$(1)),schema),$(if $(filter server/store/%,$(1)),store),$(if $(filter server/jobs/%,$(1)),jobs),$(if $(filter server/http/%,$(1)),http),cli)
LAYER_INC = $(INC_$(call layer_of,$(1)))
SERVER_DIRS := server/store server/jobs server/http server/cli
ALL_H := $(wildcard engine/*.h schema/*.h $(addsuffix /*.h,$(SERVER_DIRS)) server/mpi/*.h)
# -fno-math-errno: no code reads errno after a math call; it lets sqrtf and
# friends vectorise. -fvect-cost-model=dynamic: GCC 12's -O2 only vectorises
# loops that need no runtime alias check; elementwise loops such as Adam's
# need one. Neither changes results (no reassociation of float sums).
CFLAGS_ALL := -std=c11 $(OPT) -g -fno-math-errno -fvect-cost-model=dynamic $(WARN) -pthread \
	$(SAN) $(CFLAGS)
LDLIBS_ALL := -lmicrohttpd -ljansson -lsqlite3 -lgsl -lopenblas -lz -lpthread -lm
TEST_LIBS := -lcmocka -lcurl

LIB_SRC := $(wildcard engine/*.c) $(wildcard schema/*.c) \
	$(filter-out server/cli/main.c,$(wildcard $(addsuffix /*.c,$(SERVER_DIRS))))
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
CORE_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard engine/*.c) $(wildcard schema/*.c))
MPI_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard server/mpi/*.c))
MPI_LIBS := -ljansson -lgsl -lopenblas -lz -lpthread -lm
TEST_SRC := $(wildcard tests/engine/test_*.c tests/schema/test_*.c tests/store/test_*.c \
	tests/jobs/test_*.c tests/http/test_*.c tests/cli/test_*.c \
	tests/integration/test_*.c tests/fuzz_regress/test_*.c tests/mpi/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_SUPPORT := $(wildcard tests/support/*.c)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(BENCH_SRC))

# Debian packages, by what needs them: building qn and running it (with the
# Fashion-MNIST data, and cmocka), then the tests (libcurl for the HTTP tests,
# Chromium and node for the browser test, Slurm and munge for the single-node
# cluster of test_slurm), then the fuzzers (clang). Each
# target installs only what it needs: `make demo` does not fetch a browser.
DEB_PKGS := build-essential pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev \
	libgsl-dev libopenblas-dev libcmocka-dev zlib1g-dev dataset-fashion-mnist \
	openmpi-bin libopenmpi-dev
DEB_TEST_PKGS := libcurl4-openssl-dev curl chromium slurm-wlm munge wrk
# The browser test's node and npm (Debian's, unless a node with npm is already installed).
DEB_TEST_PKGS += $(if $(shell command -v npm 2>/dev/null),,nodejs npm)
DEB_FUZZ_PKGS := clang libclang-rt-14-dev

.PHONY: all deps deps-test deps-fuzz test test-plain test-asan test-web test-openapi bench bench-torch demo \
	clean format crashtest fuzz check-layers

all: deps $(BUILD)/qn $(BUILD)/qn-mpi

# Installs the packages of $(1) that dpkg does not have (as root, apt-get).
define install_missing
	@missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make: run as root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PKGS))

deps-test: deps
	$(call install_missing,$(DEB_TEST_PKGS))

deps-fuzz: deps-test
	$(call install_missing,$(DEB_FUZZ_PKGS))

$(BUILD)/obj/%.o: %.c $(ALL_H)
	@mkdir -p $(dir $@)
	@echo "CC $<"; $(CC) $(CPPFLAGS_ALL) $(call LAYER_INC,$<) $(CFLAGS_ALL) -c $< -o $@

# The monitoring page, embedded in qn (web/embed.sh; the output is checked in too).
server/http/web_assets_data.c: web/embed.sh $(wildcard web/*.html web/*.js web/*.css web/vendor/*/*)
	sh web/embed.sh > $@.tmp.$$$$ && mv $@.tmp.$$$$ $@

$(BUILD)/libqn.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/qn: $(BUILD)/obj/server/cli/main.o $(BUILD)/libqn.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# qn-mpi: server/mpi compiled with mpicc (the same flags, sanitizers included).
$(BUILD)/obj/server/mpi/%.o: server/mpi/%.c $(ALL_H)
	@mkdir -p $(dir $@)
	@echo "MPICC $<"; $(MPICC) $(CPPFLAGS_ALL) $(INC_mpi) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libqncore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/qn-mpi: $(MPI_OBJ) $(BUILD)/libqncore.a
	$(MPICC) $(CFLAGS_ALL) -o $@ $^ $(MPI_LIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_SUPPORT) $(BUILD)/libqn.a $(wildcard tests/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(INC_cli) -Itests/support -DQN_BIN='"$(abspath $(BUILD))/qn"' \
		-DQN_MPI_BIN='"$(abspath $(BUILD))/qn-mpi"' $(CFLAGS_ALL) \
		-o $@ $< $(TEST_SUPPORT) $(BUILD)/libqn.a $(TEST_LIBS) $(LDLIBS_ALL)

# What the include paths cannot enforce, checked in the sources: only
# server/store/ speaks SQL (no <sqlite3.h>, no sqlite3_* call, no
# store_internal.h in engine, schema, jobs, http, cli or mpi); server/http/
# asks the jobs layer and never the store (no store_* call; store types pass
# through as opaque handles); server/mpi/ (qn-mpi) never opens the database
# (no store_* call either: its include path has no store); server/cli/ only opens and closes the store
# (store_open, store_close) and asks the jobs layer for the rest. Fails with
# every offending line.
LAYER_CALL := \bstore_[a-z0-9_]+[[:space:]]*\(
NOT_STORE := engine/*.[ch] schema/*.[ch] server/jobs/*.[ch] server/http/*.[ch] server/cli/*.[ch] \
	server/mpi/*.[ch]
check-layers:
	@bad=$$( { grep -nE '<sqlite3\.h>|\bsqlite3_|"store_internal\.h"' $(NOT_STORE); \
	  grep -nE '$(LAYER_CALL)' server/http/*.[ch] server/mpi/*.[ch]; \
	  grep -nE '$(LAYER_CALL)' server/cli/*.[ch] | grep -vE '\bstore_(open|close)[[:space:]]*\('; \
	  } ); \
	if [ -n "$$bad" ]; then \
	  echo "check-layers: only server/store speaks SQL; http and cli ask server/jobs:" >&2; \
	  echo "$$bad" >&2; exit 1; \
	fi; echo "check-layers: SQL only in server/store; http and mpi call no store_*, cli only open/close"

# Runs every test program of $(BUILD); fails when any fails. Each program's
# output (stdout and stderr) is shown and kept in <program>.log beside it.
# The closing line counts programs that passed and failed, then the tests
# that cmocka skipped (summed from its "[  SKIPPED ] N test(s)" lines; their
# programs count as passed); under it, each skip with the reason its test
# printed ("SKIP: test: why", qt_skip in tests/support/qn_test.h). CI reads
# the line's "N passed, N failed, N skipped".
test-plain: check-layers $(BUILD)/qn $(BUILD)/qn-mpi $(TEST_BIN)
	@fail=0; pass=0; skipped=0; reasons=$(BUILD)/tests/skipped.txt; : > $$reasons; \
	for t in $(TEST_BIN); do \
	  echo "== $$t"; \
	  { $$t; echo $$? > $$t.rc; } 2>&1 | tee $$t.log; \
	  if [ "$$(cat $$t.rc)" = 0 ]; then pass=$$((pass+1)); else fail=$$((fail+1)); echo "FAILED: $$t"; fi; \
	  n=$$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) test(s), listed below:$$/\1/p' $$t.log | \
	    awk '{ s += $$1 } END { print s + 0 }'); \
	  skipped=$$((skipped + n)); \
	  sed -n "s|^SKIP: |  skipped $${t#$(BUILD)/tests/}: |p" $$t.log >> $$reasons; \
	  given=$$(grep -c '^SKIP: ' $$t.log); \
	  if [ $$n -gt $$given ]; then \
	    echo "  skipped $${t#$(BUILD)/tests/}: $$((n - given)) test(s) gave no reason (use qt_skip)" >> $$reasons; \
	  fi; \
	  rm -f $$t.rc; \
	done; \
	echo "test programs ($(BUILD)): $$pass passed, $$fail failed, $$skipped skipped"; \
	cat $$reasons; \
	[ $$fail -eq 0 ]

test-asan:
	$(MAKE) --no-print-directory test-plain BUILD=$(BUILD)/asan OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

test: deps-test
	$(MAKE) --no-print-directory test-plain
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory test-web
	$(MAKE) --no-print-directory test-openapi

# The page in headless Chromium against a live daemon running a short job
# (tests/web; screenshots in $(BUILD)/test-artifacts).
tests/web/node_modules/.package-lock.json: tests/web/package-lock.json
	cd tests/web && npm ci --no-audit --no-fund

test-web: $(BUILD)/qn tests/web/node_modules/.package-lock.json
	QN_BIN=$(abspath $(BUILD))/qn ARTIFACTS=$(abspath $(BUILD))/test-artifacts node tests/web/test_page.mjs

# The API document: schema/openapi.yaml passes `redocly lint` (errors fail,
# warnings are shown), and the replies of a live daemon driven over every
# route validate against it (tests/openapi, its npm packages pinned by the
# lockfile there).
tests/openapi/node_modules/.package-lock.json: tests/openapi/package-lock.json
	cd tests/openapi && npm ci --no-audit --no-fund

test-openapi: $(BUILD)/qn tests/openapi/node_modules/.package-lock.json
	tests/openapi/node_modules/.bin/redocly lint --format=summary schema/openapi.yaml
	QN_BIN=$(abspath $(BUILD))/qn node tests/openapi/test_responses.mjs

bench: deps-test $(BUILD)/qn $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

# The device-population study of issue 12 (tests/study/study.sh: job specs run
# by build/qn on a fresh build/study/study.db; a progress line per stage, then
# the table README shows). Under 20 minutes on 2 cores; not part of `make test`.
.PHONY: study
study: deps $(BUILD)/qn
	$(call install_missing,jq)
	OUT=$(BUILD)/study sh tests/study/study.sh $(BUILD)/qn

# Our 784-256-128-10 training throughput over PyTorch's on the same CPU
# (Debian's python3-torch; the system python, which sees Debian's packages).
bench-torch: deps-test $(BUILD)/tests/bench/bench_train
	@ours=$$($(BUILD)/tests/bench/bench_train | awk '/train_run:/{printf "%s%s",s,$$2; s=","}'); \
	/usr/bin/python3 tests/bench/bench_torch.py --ours "$$ours"

# The main job: qn serve on 127.0.0.1:8080 (or the next free port) with a fresh
# demo.db, the whole pipeline submitted over HTTP, a table of results; the
# daemon keeps serving until Ctrl-C.
demo: deps $(BUILD)/qn
	$(BUILD)/qn demo --db demo.db

format:
	clang-format -i engine/*.[ch] schema/*.[ch] $(addsuffix /*.[ch],$(SERVER_DIRS)) server/mpi/*.[ch] \
		tests/*/*.c

clean:
	rm -rf $(BUILD)

# libFuzzer targets (tests/fuzz/fuzz_*.c): `make fuzz FUZZ_SECONDS=N` builds
# each with clang into $(BUILD)/fuzz/ (the library too, instrumented) and runs
# it for N seconds on its seeds (tests/fuzz/corpus/<target>/, read-only); new
# inputs go to $(BUILD)/fuzz/corpus/<target>/, crashes to
# $(BUILD)/fuzz/crashes/<target>/. Fails when any target crashed.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_CFLAGS := -std=c11 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -pthread \
	-fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(LIB_SRC))

$(FUZZ_DIR)/obj/%.o: %.c $(ALL_H)
	@mkdir -p $(dir $@)
	@echo "FUZZ-CC $<"; $(FUZZ_CC) $(CPPFLAGS_ALL) $(call LAYER_INC,$<) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/libqn.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_DIR)/libqn.a
	$(FUZZ_CC) $(CPPFLAGS_ALL) $(INC_cli) -Itests/fuzz $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(FUZZ_DIR)/libqn.a $(LDLIBS_ALL)

# The crash test's long form: kill -9 `qn serve` 20 times while jobs run
# (tests/integration/test_crash.c; make test runs it with 3 kills).
crashtest: deps-test $(BUILD)/qn $(BUILD)/tests/integration/test_crash
	QN_CRASH_KILLS=20 $(BUILD)/tests/integration/test_crash

fuzz: deps-fuzz $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crashes/$$t; \
	  echo "== fuzz_$$t ($(FUZZ_SECONDS) s)"; \
	  $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/$$t/ \
	    $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t 2>$(FUZZ_DIR)/fuzz_$$t.log; \
	  rc=$$?; grep -E '^stat::number_of_executed_units|^Done|ERROR:|SUMMARY:' $(FUZZ_DIR)/fuzz_$$t.log; \
	  if [ $$rc -ne 0 ]; then fail=$$((fail+1)); echo "FAILED: fuzz_$$t (log: $(FUZZ_DIR)/fuzz_$$t.log)"; fi; \
	done; [ $$fail -eq 0 ]
