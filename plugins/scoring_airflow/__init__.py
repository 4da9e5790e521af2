"""Airflow glue for the scoring package: the scoring_db hook, the tasks of a scoring run, the DAG factory.

Airflow puts plugins/ on sys.path, so this package imports as `scoring_airflow`; a unique
top-level name keeps it from shadowing anything else on the path.
"""
