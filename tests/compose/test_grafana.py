"""Grafana's provisioning: the datasource and dashboard files' shape, and every panel's SQL run on PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import sqlalchemy as sa
import yaml

from scoring.batch.store.engines import make_engine, upgrade
from scoring.monitoring.accumulate import PartitionAccumulator
from scoring.monitoring.profile import ReferenceProfile
from scoring.monitoring.tables import traffic_metrics
from scoring.monitoring.writes import replace_partition_metrics
from tests.compose.stack import ROOT, Mount, environment, healthcheck_argv, mounts, references, repo_path_of
from tests.unit.monitoring.rides import KINDS, OUTPUT, predict_minutes, ride_inputs

GRAFANA = Path(__file__).resolve().parents[2] / "docker" / "grafana"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "postgres.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml"
DASHBOARD = GRAFANA / "dashboards" / "scoring.json"
JOB = "rides_hourly"
# The range the panels' time filter is given: it holds every sample partition below.
TIME_RANGE = ("2026-02-28T00:00:00Z", "2026-03-05T00:00:00Z")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, format, SQL) of every target of every panel."""
    return [
        (panel["title"], target["format"], target["rawSql"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def render(sql: str) -> str:
    """The SQL as Grafana sends it: the time-filter macro expanded over TIME_RANGE, $job set to the sample job."""
    sql = re.sub(
        r"\$__timeFilter\(([^)]*)\)",
        lambda m: f"{m.group(1)} BETWEEN '{TIME_RANGE[0]}' AND '{TIME_RANGE[1]}'",
        sql,
    )
    sql = sql.replace("$job", JOB)
    if "$" in sql:
        raise ValueError(f"a macro or variable this test does not expand: {sql[sql.index('$') :][:30]}")
    return sql


def test_the_datasource_is_postgresql_from_the_environment_with_the_password_kept_secret():
    config = yaml.safe_load(DATASOURCE.read_text())
    assert config["apiVersion"] == 1
    [source] = config["datasources"]
    assert source["type"] == "grafana-postgresql-datasource"
    assert source["uid"] == "scoring-postgres"
    assert source["url"] == "${GRAFANA_DB_HOST}"
    assert source["user"] == "${GRAFANA_DB_USER}"
    assert source["jsonData"]["database"] == "${GRAFANA_DB_NAME}"
    assert source["secureJsonData"] == {"password": "${GRAFANA_DB_PASSWORD}"}
    assert "password" not in source and "password" not in source["jsonData"]


def test_the_dashboard_provider_reads_the_mounted_folder():
    config = yaml.safe_load(PROVIDERS.read_text())
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


def test_the_dashboard_is_well_formed(dashboard):
    uid = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]["uid"]
    panels = dashboard["panels"]
    assert dashboard["uid"] and dashboard["title"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert target["format"] in ("time_series", "table")
            assert target["rawQuery"] is True and target["rawSql"].strip()
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid
    # Both sources are charted: the batch partitions and the hourly traffic
    sql = " ".join(s for _, _, s in queries(dashboard))
    assert "FROM partition_metrics" in sql and "FROM traffic_metrics" in sql


def test_render_refuses_a_macro_it_does_not_know():
    with pytest.raises(ValueError, match=r"\$__interval"):
        render("SELECT $__interval")


def metrics_of(profile: ReferenceProfile, seed: int, distance_factor: float = 1.0):
    inputs = ride_inputs(2_000, seed=seed)
    inputs["trip_distance"] *= distance_factor
    accumulator = PartitionAccumulator(profile, KINDS, OUTPUT)
    accumulator.add(inputs, predict_minutes(inputs), rejected_count=3)
    return accumulator.metrics()


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = ride_inputs(20_000, seed=1)
    return ReferenceProfile.build(reference, predict_minutes(reference), KINDS, OUTPUT)


@pytest.fixture
def sample_database(pg_schema_url: str, profile: ReferenceProfile) -> Iterator[sa.Engine]:
    """The migrated database: partition_metrics and traffic_metrics filled with metrics computed from rides."""
    engine = make_engine(pg_schema_url)
    upgrade(engine)
    traffic = traffic_metrics
    with engine.begin() as connection:
        # A batch job: three clean hours, one with tripled distances, and one daily partition key.
        for n, key in enumerate(["2026-03-01T00", "2026-03-01T01", "2026-03-01T02", "2026-03-02"]):
            factor = 3.0 if key == "2026-03-01T02" else 1.0
            replace_partition_metrics(connection, JOB, key, f"run-{n}", metrics_of(profile, 100 + n, factor))
        for seed, (job, factor) in enumerate((("online", 1.0), ("stream", 3.0))):
            for hour in ("2026-03-03T10", "2026-03-03T11"):
                rows = metrics_of(profile, 200 + 10 * seed + int(hour[-2:]), factor)
                replace_partition_metrics(connection, job, hour, f"{job}-{hour}", rows, table=traffic)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_every_panel_query_returns_rows_of_the_shape_its_format_needs(sample_database, dashboard):
    with sample_database.connect() as connection:
        for title, fmt, sql in queries(dashboard):
            result = connection.execute(sa.text(render(sql)))
            columns, rows = list(result.keys()), result.all()
            assert rows, f"panel {title!r} returned no rows"
            if fmt == "time_series":
                assert columns == ["time", "metric", "value"], title
                assert all(r.time.tzinfo is not None and isinstance(r.value, float) for r in rows), title


@pytest.mark.postgres
def test_the_drift_panels_show_the_drifted_partition_and_mode(sample_database, dashboard):
    by_title = {title: sql for title, _, sql in queries(dashboard)}
    with sample_database.connect() as connection:
        drifted = connection.execute(sa.text(render(by_title["Drifted features, latest first"]))).all()
        counts = connection.execute(sa.text(render(by_title["Drifted inputs per partition"]))).all()
        traffic = connection.execute(sa.text(render(by_title["Traffic drift per feature"]))).all()
    assert {(r.partition_key, r.feature) for r in drifted} == {
        ("2026-03-01T02", "trip_distance"),
        ("2026-03-01T02", OUTPUT),
    }
    assert [r.value for r in counts] == [0.0, 0.0, 1.0, 0.0]
    assert {r.metric for r in traffic if r.value > 0.1} == {"stream: trip_distance", f"stream: {OUTPUT}"}
    assert np.isclose(counts[3].time.timestamp(), 1772409600.0)  # the daily key reads as midnight UTC


@pytest.mark.postgres
def test_the_job_variable_lists_the_jobs(sample_database, dashboard):
    [variable] = dashboard["templating"]["list"]
    with sample_database.connect() as connection:
        assert connection.execute(sa.text(variable["query"])).scalars().all() == [JOB]


# --- the compose service ---------------------------------------------------------------------------------------

PROVISIONING_TARGET = "/etc/grafana/provisioning"  # the image's GF_PATHS_PROVISIONING


def test_grafana_mounts_exactly_the_provisioning_folders_that_exist_read_only(services):
    grafana = services["grafana"]
    provisioning = {
        mount.target: (ROOT / mount.source).resolve()
        for mount in mounts(grafana)
        if mount.target.startswith(PROVISIONING_TARGET + "/")
    }
    # Each of Grafana's provisioning folders the repository holds is mounted where Grafana looks for it
    existing = {f"{PROVISIONING_TARGET}/{folder.name}": folder for folder in (GRAFANA / "provisioning").iterdir()}
    assert provisioning == existing
    assert {DATASOURCE, PROVIDERS} <= {path for folder in existing.values() for path in folder.iterdir()}
    # And every bind mount is read-only: Grafana changes nothing in the repository
    assert all(mount.read_only for mount in mounts(grafana) if mount.is_bind)
    assert [m for m in mounts(grafana) if not m.is_bind] == [Mount("grafana-data", "/var/lib/grafana", False)]


def test_the_provider_and_the_home_dashboard_find_the_dashboard_file(services):
    grafana = services["grafana"]
    folder = yaml.safe_load(PROVIDERS.read_text())["providers"][0]["options"]["path"]
    assert repo_path_of(grafana, f"{folder}/{DASHBOARD.name}") == DASHBOARD
    assert repo_path_of(grafana, environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]) == DASHBOARD


def test_the_datasource_logs_in_as_the_read_only_role_to_the_predictions_database(services):
    grafana, postgres = environment(services["grafana"]), environment(services["postgres"])
    # Given the variables the provisioned datasource expands
    wanted = set(re.findall(r"\$\{([A-Z_]+)\}", DATASOURCE.read_text()))
    assert wanted == {"GRAFANA_DB_HOST", "GRAFANA_DB_NAME", "GRAFANA_DB_USER", "GRAFANA_DB_PASSWORD"}
    assert all(grafana.get(name) for name in wanted)
    # Then they name the database the seed migrates, as the role the postgres init script makes read-only
    predictions = urlsplit(environment(services["seed"])["SCORING_DATABASE_URL"])
    assert grafana["GRAFANA_DB_HOST"] == f"{predictions.hostname}:{predictions.port}"
    assert grafana["GRAFANA_DB_NAME"] == predictions.path.lstrip("/")
    assert grafana["GRAFANA_DB_USER"] == postgres["GRAFANA_DB_USER"] != predictions.username
    assert grafana["GRAFANA_DB_PASSWORD"] == postgres["GRAFANA_DB_PASSWORD"] != predictions.password
    assert "GRAFANA_DB_USER" in (ROOT / "docker/postgres/create-databases.sh").read_text()


def test_grafana_admits_only_its_admin(services, raw_compose):
    grafana = services["grafana"]
    env = environment(grafana)
    assert (env["GF_USERS_ALLOW_SIGN_UP"], env["GF_AUTH_ANONYMOUS_ENABLED"]) == ("false", "false")
    [password] = [r for r in references(raw_compose["services"]["grafana"]) if r.name == "GRAFANA_ADMIN_PASSWORD"]
    assert password.is_required
    assert re.fullmatch(r"grafana/grafana:1[12]\.\d+\.\d+", grafana["image"])


def test_grafana_starts_on_the_migrated_database_and_answers_its_health_check(services):
    grafana = services["grafana"]
    assert grafana["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert grafana["depends_on"]["seed"]["condition"] == "service_completed_successfully"
    check = healthcheck_argv(grafana)
    assert check[0] == "curl" and "--fail" in check and check[-1] == "http://127.0.0.1:3000/api/health"
    [port] = grafana["ports"]
    assert port.startswith("127.0.0.1:") and port.endswith(":3000")


@pytest.mark.parametrize("name", ["web", "lambda"])
def test_online_and_stream_traffic_is_logged_to_the_migrated_database(services, name):
    service = services[name]
    assert environment(service)["SCORING_PREDICTION_LOG_URL"] == environment(services["seed"])["SCORING_DATABASE_URL"]
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert service["depends_on"]["seed"]["condition"] == "service_completed_successfully"
