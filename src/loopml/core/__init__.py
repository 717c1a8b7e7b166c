"""Settings, spec models, errors and small shared types. Imports nothing of ours."""
