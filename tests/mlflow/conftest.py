"""Shared set-up of the MLflow integration tests (see run-tests.sh). Fixtures that start
servers live in their own modules (mlflow_server.py) and are imported by the tests."""
