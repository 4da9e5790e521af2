"""
### Score rides, daily

Each run scores the UTC day starting at its logical date (for a scheduled run, the day that just
closed), `{input_root}/rides/dt=YYYY-MM-DD/` (hourly folders below it included), and publishes it
to the `predictions` table of the `scoring_db` connection under job `score_rides_daily`,
exactly once per day.

**Trigger by hand** with *Partition* set (e.g. `2026-01-01`) to score a given day.
"""

from pathlib import Path

from scoring_airflow.dag_factory import scoring_dag

dag = scoring_dag(dag_id=Path(__file__).stem, cadence="daily", doc_md=__doc__)
