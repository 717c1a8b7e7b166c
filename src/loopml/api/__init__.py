"""The HTTP control plane for jobs (``loopml api``)."""

from loopml.api.app import create_app

__all__ = ["create_app"]
