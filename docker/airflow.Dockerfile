# Airflow 3 with this project: the scoring package, dags/ and plugins/, and the compose init scripts.
# Build from the repository root (docker compose does it for every Airflow service, the seed and airflow-init):
#   docker build -f docker/airflow.Dockerfile -t ride-scoring-airflow .
# The same components run without Docker through `make airflow` (mk/airflow.mk).
FROM apache/airflow:3.3.2-python3.11

# Everything the base image already holds stays at its version: Airflow, Celery and the providers were
# released and tested together, and a newer release of one of them can break another (the celery provider
# 3.26 does not import with celery 5.7, for instance). What is missing (scikit-learn, skops, ...) is added at
# the lock's version (constraints.txt, make lock), the lock's pins of the base's own packages left out.
RUN pip list --format=freeze > /tmp/base-image-versions.txt

COPY --chown=airflow:root pyproject.toml README.md constraints.txt /tmp/src/
COPY --chown=airflow:root docker/lock_beyond_base.py /tmp/src/
COPY --chown=airflow:root scoring /tmp/src/scoring
RUN python /tmp/src/lock_beyond_base.py /tmp/base-image-versions.txt /tmp/src/constraints.txt > /tmp/lock-beyond-base.txt \
 && pip install --no-cache-dir --constraint /tmp/base-image-versions.txt --constraint /tmp/lock-beyond-base.txt \
      "apache-airflow==${AIRFLOW_VERSION}" "/tmp/src[airflow]" \
 && rm -rf /tmp/src /tmp/base-image-versions.txt /tmp/lock-beyond-base.txt

COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root docker/init /opt/scoring/init
