"""The real local services the production configuration's tests use (never mocks).

On a laptop without them a test skips with a message naming the missing service; in CI
(`CI=true`) a missing service fails the test instead, so a green CI run means they ran.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_HOST = os.environ.get("ML_ASSETS_TEST_PG_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("ML_ASSETS_TEST_PG_PORT", "5432"))
# The role the tests connect as (trust auth on loopback here); it must be allowed to create
# databases. Each test session creates its own database and drops it afterwards.
POSTGRES_USER = os.environ.get("ML_ASSETS_TEST_PG_USER", os.environ.get("USER", "root"))
POSTGRES_PASSWORD = os.environ.get("ML_ASSETS_TEST_PG_PASSWORD", "")
POSTGRES_MAINTENANCE_DB = os.environ.get("ML_ASSETS_TEST_PG_DB", "test")
# RabbitMQ for the Celery tests, as guest (allowed from loopback, and by the rabbitmq image).
RABBITMQ_HOST = os.environ.get("ML_ASSETS_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("ML_ASSETS_TEST_RABBITMQ_PORT", "5672"))


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, with CI=true, fail) unless something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as error:
        message = f"{name} is not reachable at {host}:{port} ({error})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(f"{message}: start it to run this test")


def _connect(db_name: str):
    import psycopg2

    return psycopg2.connect(
        host=POSTGRES_HOST,
        port=POSTGRES_PORT,
        user=POSTGRES_USER,
        password=POSTGRES_PASSWORD,
        dbname=db_name,
    )


@contextlib.contextmanager
def postgres_database() -> Iterator[dict[str, str]]:
    """A new, empty Postgres database for one test, dropped afterwards; yields the
    DAGSTER_PG_* environment deploy/production/dagster.yaml reads."""
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    name = f"ml_assets_test_{uuid.uuid4().hex[:12]}"
    admin = _connect(POSTGRES_MAINTENANCE_DB)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield {
            "DAGSTER_PG_HOST": POSTGRES_HOST,
            "DAGSTER_PG_PORT": str(POSTGRES_PORT),
            "DAGSTER_PG_DB": name,
            "DAGSTER_PG_USER": POSTGRES_USER,
            "DAGSTER_PG_PASSWORD": POSTGRES_PASSWORD,
        }
    finally:
        with admin.cursor() as cursor:
            # A run process that outlived its test must not keep the database alive.
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
