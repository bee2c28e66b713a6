# Two commands do everything on a fresh machine:
#   make demo   set up .venv and animate the shipped example photo
#   make test   set up .venv and run the test suite
# (make test-fast: the suite without the tests marked slow, for the edit-test loop)
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install demo test test-fast bench clean gpu-pack

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

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/bench_animate.py

# The GPU kit's training set (docs/gpu-kit.md): the shared photos prepared at
# 128 px with the learned estimator's AUs (data/shipped, made or relabelled here if it
# is missing or has other labels: about 8 min on 2 cores) and cfee's training people with their FACS codes and person ids
# (never the held-out people), as JPEG quality $(PACK_QUALITY) in one git-ignored file
# that the GPU machine gets with carry=["gpu-pack"], and 100 one-face photos with their
# faces (0.9 MB) for the end-to-end benchmark rows.
SHARED ?= ../shared/data
PACK_QUALITY ?= 76
CFEE_HELDOUT = benchmarks/splits/cfee_heldout_people.txt
gpu-pack: install
	grep -qs '"aus_from": "estimator (model)"' data/shipped/summary.json || $(BIN)/gan-anim prepare $(SHARED)/facial_expressions/images \
		$(SHARED)/utkface_crop_part1/images -o data/shipped --labels model
	$(BIN)/python -m gan_anim.training.pack_writer data/shipped gpu-pack/faces128.pack --quality $(PACK_QUALITY) \
		--cfee $(SHARED)/cfee --cfee-heldout $(CFEE_HELDOUT) \
		$(if $(wildcard data/cfee_landmarks.npz),--cfee-landmarks data/cfee_landmarks.npz)
	GAN_ANIM_SHARED=$(SHARED)/.. $(BIN)/python benchmarks/bench_gpu_pipeline.py --write-faces gpu-pack/bench-faces

clean:
	rm -rf out .pytest_cache
