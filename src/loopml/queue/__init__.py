"""Training jobs and batch scoring on Celery: RabbitMQ in production, an embedded broker without.

Workers (``loopml worker``) call the same engine function as ``loopml run``;
job status and progress live in the metadata store's ``jobs`` table.
"""

from loopml.queue.app import declare_dead_letters, make_app
from loopml.queue.topology import SCORE_TASK, TRAIN_TASK, Topology

__all__ = ["SCORE_TASK", "TRAIN_TASK", "Topology", "declare_dead_letters", "make_app"]
