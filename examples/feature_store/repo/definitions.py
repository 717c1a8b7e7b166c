"""Feast objects of the example: the customer entity, its daily stats and a feature service.

``feast apply`` (and loopml's in-process apply) imports this module; keep it free of
side effects beyond declaring objects.
"""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A card holder",
)

customer_stats_source = FileSource(
    name="customer_stats_source",
    path=str(Path(__file__).parent / "data" / "customer_stats.parquet"),
    timestamp_field="event_timestamp",
)

customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    ttl=timedelta(days=3),
    schema=[
        Field(name="avg_amount_30d", dtype=Float64),
        Field(name="tx_count_7d", dtype=Int64),
        Field(name="chargeback_rate", dtype=Float64),
        Field(name="account_age_days", dtype=Int64),
    ],
    source=customer_stats_source,
    online=True,
)

fraud_features = FeatureService(name="fraud_features", features=[customer_stats])
