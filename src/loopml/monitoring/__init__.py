"""Monitoring and continuous training: drift, schema skew and performance over the prediction log.

The public surface; implementation modules are free to change.
"""

from loopml.monitoring.alerts import Alert, Alerter
from loopml.monitoring.drift import ColumnDrift
from loopml.monitoring.monitor import (
    MonitorRun,
    Retrain,
    WindowOutcome,
    WindowSpec,
    monitor_model,
)
from loopml.monitoring.policy import Finding, MonitorPolicy, judge, load_policies, policy_for
from loopml.monitoring.reference import Reference, read_table
from loopml.monitoring.report import render_report, write_report
from loopml.monitoring.window import SchemaSkew, WindowResult, WindowTally, tally

__all__ = [
    "Alert",
    "Alerter",
    "ColumnDrift",
    "Finding",
    "MonitorPolicy",
    "MonitorRun",
    "Reference",
    "Retrain",
    "SchemaSkew",
    "WindowOutcome",
    "WindowResult",
    "WindowSpec",
    "WindowTally",
    "judge",
    "load_policies",
    "monitor_model",
    "policy_for",
    "read_table",
    "render_report",
    "tally",
    "write_report",
]
