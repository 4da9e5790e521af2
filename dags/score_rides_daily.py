"""
### Score rides, daily

Each run scores the UTC day starting at its logical date (for a scheduled run, the day that just
closed): every file of `{input_root}/{dataset}/dt=YYYY-MM-DD/`, the day's hour folders below it
included. It publishes the day to the `predictions` table of the `scoring_db` connection under job
`score_rides_daily`, exactly once: a rerun or a backfill replaces the day's rows, never duplicates
them.

**Trigger by hand** with *Partition* set (e.g. `2026-01-01`) to score a given day, and *Model
bundle* to try another model. Rows that fail validation land in `rejected_records` with their
reason; above the *Reject threshold* the run fails and publishes nothing.

*Dataset* picks the folder (`rides` unless SCORING_DATASET says otherwise). Files without the
id column have their rows named `<file>:<row>`, so a rerun still replaces them; *Id field* names
another id column for the run, and *Require id* fails a file that lacks it.

**A day whose data never arrives** fails its run after waiting a day, naming the folder it looked
in; clear `wait_for_partition` to look again.
"""

from pathlib import Path

from scoring_airflow.dag_factory import scoring_dag

dag = scoring_dag(dag_id=Path(__file__).stem, cadence="daily", doc_md=__doc__)
