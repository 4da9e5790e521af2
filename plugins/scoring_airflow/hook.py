"""ScoringDbHook: the predictions database as the Airflow connection `scoring_db`."""

from __future__ import annotations

import logging
from urllib.parse import unquote

from airflow.sdk import BaseHook

log = logging.getLogger(__name__)


class ScoringDbHook(BaseHook):
    """Turns the `scoring_db` connection (e.g. AIRFLOW_CONN_SCORING_DB) into a SQLAlchemy engine."""

    conn_name_attr = "scoring_db_conn_id"
    default_conn_name = "scoring_db"
    conn_type = "generic"
    hook_name = "Scoring predictions database"

    def __init__(self, scoring_db_conn_id: str = default_conn_name, fallback_url: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.scoring_db_conn_id = scoring_db_conn_id
        self.fallback_url = fallback_url

    def database_url(self) -> str:
        """The connection's URL; SCORING_DATABASE_URL only when no such connection is defined."""
        from airflow.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.scoring_db_conn_id)
        except AirflowNotFoundException:
            if self.fallback_url is None:
                raise
            log.warning("no Airflow connection %r; using SCORING_DATABASE_URL", self.scoring_db_conn_id)
            return self.fallback_url
        uri = conn.get_uri()
        # Airflow percent-encodes a SQLite path into the host part; SQLAlchemy wants it plain.
        return unquote(uri) if conn.conn_type == "sqlite" else uri

    def get_conn(self):
        """A SQLAlchemy engine (postgres:// from Airflow is normalised to postgresql+psycopg2://)."""
        from scoring.batch.store.engines import make_engine

        return make_engine(self.database_url())
