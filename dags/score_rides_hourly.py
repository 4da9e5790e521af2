"""
### Score rides, hourly

Each run scores the UTC hour starting at its logical date (for a scheduled run, the hour that just
closed), `{input_root}/{dataset}/dt=YYYY-MM-DD/hour=HH/`, and publishes it to the `predictions` table
of the `scoring_db` connection under job `score_rides_hourly`, exactly once: a rerun or a backfill
replaces the hour's rows, never duplicates them.

**Trigger by hand** with *Partition* set (e.g. `2026-01-01T03`) to score a given hour, and
*Model bundle* to try another model. Rows that fail validation land in `rejected_records` with
their reason; above the *Reject threshold* the run fails and publishes nothing.

*Dataset* picks the folder (`rides` unless SCORING_DATASET says otherwise). Files without the
id column have their rows named `<file>:<row>`, so a rerun still replaces them; *Id field* names
another id column for the run, and *Require id* fails a file that lacks it.

**An hour whose data never arrives** fails its run after waiting 3 hours, naming the folder it
looked in; clear `wait_for_partition` to look again.
"""

from pathlib import Path

from scoring_airflow.dag_factory import scoring_dag

dag = scoring_dag(dag_id=Path(__file__).stem, cadence="hourly", doc_md=__doc__)
