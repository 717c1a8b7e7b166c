"""Online serving: one FastAPI server, three protocols, a prediction log and hot swaps.

``loopml serve --model NAME@champion`` runs it; :func:`build_app` gives the app
for embedding or tests.
"""

from loopml.serving.app import create_app
from loopml.serving.model import ModelRef, ServedModel, load_model
from loopml.serving.run import build_app, serve
from loopml.serving.state import RequestCheck, ServingState

__all__ = [
    "ModelRef",
    "RequestCheck",
    "ServedModel",
    "ServingState",
    "build_app",
    "create_app",
    "load_model",
    "serve",
]
