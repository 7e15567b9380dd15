# The two commands of the README:
#   make book   creates .venv, installs what the book needs, runs every lab and builds the site
#   make test   creates .venv if needed and runs every test (unit, checkers, notebooks, build)
#   make crash-test  runs the broker's SIGKILL crash test, which `make test` skips
# PYTHON selects the interpreter used to create the environment.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: book test crash-test env flink-env student clean

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: env
	$(BIN)/jupyter-book build . -W -n --keep-going

test: env
	$(BIN)/python -m pytest tests labs --nbval-lax

# Kill the teaching broker with SIGKILL at random points 50 times and check that
# no acknowledged record is lost; CI runs it after `make test`.
crash-test: env
	$(BIN)/python -m pytest -m crash tests/crash

# PyFlink 2.3 in its own environment (.venv-flink, about 850 MB), because it
# pins an older numpy than the labs use. The Flink lab needs it and Java 11+;
# without them that lab prints how to install them and skips its Flink steps.
flink-env: .venv-flink/.installed-stamp

.venv-flink/.installed-stamp:
	$(PYTHON) -m venv .venv-flink
	.venv-flink/bin/python -m pip install --quiet apache-flink==2.3.0
	touch $@

# Write the student edition of every lab into student/. Notebooks a learner
# has already edited there are kept; the tool lists them and says how to replace them.
student: env
	$(BIN)/python -m msgpass.exercises.student_edition --out student

# Remove the built site and its notebook cache. student/ holds the learner's
# own work and is never removed here.
clean:
	rm -rf _build
