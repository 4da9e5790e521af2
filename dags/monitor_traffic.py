"""
### Monitor traffic, hourly

Each run takes the UTC hour starting at its logical date (for a scheduled run, the hour that just
closed) and computes, for the predictions the web service (`online`) and the stream (`stream`) logged
in `prediction_log`, the same metrics a batch partition gets: share missing, mean and quantiles, and a
drift statistic per input and for the prediction, against the model bundle's reference profile. They
replace the hour's rows in `traffic_metrics` (job = the source, partition_key = the hour), which the
Grafana dashboard shows.

**Drift** never fails a run: it is logged as one warning naming the features, and updates the Asset
`scoring://drift/monitor_traffic` a retraining DAG can be scheduled on. A bundle without a reference
profile still gets its statistics, and nothing is flagged.

**Trigger by hand** with *Hour* set (e.g. `2026-01-01T03`) to recompute a given hour.
"""

from pathlib import Path

from scoring_airflow.traffic_tasks import traffic_dag

dag = traffic_dag(dag_id=Path(__file__).stem, doc_md=__doc__)
