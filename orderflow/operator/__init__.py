"""The operator commands (contract "Commands"): `check`, `inspect`, `retry`, `dlq`, `pause`
and `resume`. Each reads the same ORDERFLOW_* settings as `orderflow run`, talks to Kafka
only (never to a replica's memory), prints for a person or, with `--json`, for a script,
and exits 0 on success, 1 when what was asked for is not there, 2 on bad usage or settings.
"""
