# Online service (webservice/): serve it under Granian (python -m webservice.serve), load-test it with wrk, build its image.
# The service reads SCORING_* and WEB_* variables (see webservice/serve.py); PORT defaults to 8000.
# `make serve` listens on 127.0.0.1 only; WEB_HOST=0.0.0.0 make serve (with SCORING_API_KEY set) opens it up.
# WEB_SERVER=gunicorn make serve runs gunicorn's gevent worker instead (webservice/gunicorn.conf.py).
WEB_BUNDLE ?= var/models/ride_duration/1
WEB_IMAGE ?= ride-scoring-web

.PHONY: serve bench-online web-image

# Without SCORING_MODEL_URI, serve the demo bundle, training it first if it is missing.
serve: install $(if $(SCORING_MODEL_URI),,$(WEB_BUNDLE)/model.json)
	SCORING_MODEL_URI=$${SCORING_MODEL_URI:-$(WEB_BUNDLE)} $(BIN)/python -m webservice.serve

$(WEB_BUNDLE)/model.json: | install
	$(BIN)/python -c 'from scoring.demo.training import train_demo_bundle; train_demo_bundle("$(WEB_BUNDLE)")'

# Needs wrk (apt-get install -y wrk); trains its own bundle and starts its own servers (project, ceiling, MLflow)
# on a free port. SERVER=gunicorn make bench-online runs the same matrix under gunicorn.
bench-online: install
	PATH="$(abspath $(BIN)):$$PATH" PYTHON=$(BIN)/python bench/online.sh

web-image:
	docker build -f webservice/Dockerfile -t $(WEB_IMAGE) .
