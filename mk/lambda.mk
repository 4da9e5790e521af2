# Lambda packaging (streaming). LAMBDA_PYTHON must be the function's runtime: python3.11 runs on Amazon Linux 2,
# whose glibc loads only manylinux2014 wheels; 3.12 and later run on Amazon Linux 2023 (see lambda/build_zip.py).
LAMBDA_PYTHON ?= 3.11
LAMBDA_ZIP ?= build/lambda.zip
# A bundle directory to bake into the zip as model/; empty means SCORING_MODEL_URI points at S3.
LAMBDA_BUNDLE ?=
LAMBDA_IMAGE ?= ride-scoring-lambda

.PHONY: lambda-zip lambda-image bench-stream

lambda-zip: install
	$(BIN)/python lambda/build_zip.py --python-version $(LAMBDA_PYTHON) --out $(LAMBDA_ZIP) $(if $(LAMBDA_BUNDLE),--bundle $(LAMBDA_BUNDLE))

lambda-image:
	docker build -f lambda/Dockerfile --build-arg PYTHON_VERSION=$(LAMBDA_PYTHON) -t $(LAMBDA_IMAGE) .

# The 100-record handler vs the tutorial's per-record loop, and cold starts (run lambda-zip first to include the zip's).
bench-stream: install
	$(BIN)/python bench/stream.py

.PHONY: lambda-lock
# Pin the wheels the function's runtime gets (its glibc takes older ones than development's); make lock calls it.
lambda-lock: install
	$(BIN)/python lambda/build_zip.py --lock --python-version $(LAMBDA_PYTHON)
