# Two commands do everything on a fresh machine:
#   make demo   set up .venv and animate the shipped example photo
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	mkdir -p out
	$(BIN)/gan-anim animate examples/astronaut.jpg --from neutral --to happy --frames 24 --loop --ease smooth -o out/astronaut-happy.gif
	$(BIN)/gan-anim animate examples/astronaut.jpg --from neutral --to surprise --frames 24 --loop --ease smooth -o out/astronaut-surprise.mp4

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_animate.py

clean:
	rm -rf out .pytest_cache
