"""The batch engine: partitions read in bounded chunks, shards scored and staged, one publishing transaction.

    plan_run -> score_shard (per file; any process or machine) -> publish_run (one transaction)

Its database (engines, tables, migrations, the publishing writes) lives in scoring.batch.store.
"""
