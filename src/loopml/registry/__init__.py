"""MLflow tracking and model registry operations, behind loopml's own names."""
