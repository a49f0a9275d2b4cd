"""`make prod-up` / `make prod-down`: the production configuration's servers on one machine.

    python -m ml_assets.cli.prod up      # MLflow server, Dagster webserver and daemon, 2 workers
    python -m ml_assets.cli.prod status
    eval "$(python -m ml_assets.cli.prod env)"  # this shell's make run, make promote... on them
    python -m ml_assets.cli.prod down    # stops each by the PID it recorded

Every server binds to 127.0.0.1. State, logs and PIDs live under PROD_DIR (default .prod/ in the
project, git-ignored): logs/<server>.log, pids.json, the MLflow artefacts it serves, the
auth database, and the Dagster home that links deploy/production/dagster.yaml.

- MLflow: `mlflow server --app-name basic-auth` with its tracking and registry store in Postgres
  (database MLFLOW_PG_DB, default ml_assets_mlflow) and the artefacts served by the server
  (--serve-artifacts). Users start with READ on everything (default_permission); the pipeline's
  user (MLFLOW_PIPELINE_USER, default "pipeline") creates the experiment and the registered
  model and so holds MANAGE on them: only it and the admin move an alias. The admin's and the
  pipeline's passwords come from MLFLOW_AUTH_ADMIN_PASSWORD and MLFLOW_PIPELINE_PASSWORD, the
  session key from MLFLOW_FLASK_SERVER_SECRET_KEY; none of them is written to the repository.
- Dagster: the webserver and the daemon on the Postgres instance (DAGSTER_PG_*, database
  default ml_assets_dagster), talking to MLflow as the pipeline's user.
- Two Celery workers (cli/celery_worker.py) for the training and evaluation jobs' steps when
  pipeline.yaml's `execution.executor` is celery (the broker in `execution.celery`).

Postgres connection details come from DAGSTER_PG_HOST, _PORT, _USER and _PASSWORD (defaults:
127.0.0.1, 5432, $USER, empty: a trust-auth local server); the databases are created when
missing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ml_assets.settings import PROJECT_ROOT

PRODUCTION_CONFIG = PROJECT_ROOT / "deploy" / "production" / "dagster.yaml"
SECRETS = (
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_PIPELINE_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)


class ProdError(RuntimeError):
    """A missing secret, a busy port, a server that did not come up: said in one line."""


@dataclass
class Deployment:
    """Where the servers run and what they share; every field can come from the environment."""

    state_dir: Path
    mlflow_port: int = 5000
    dagster_port: int = 3000
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "root"
    pg_password: str = ""
    dagster_db: str = "ml_assets_dagster"
    mlflow_db: str = "ml_assets_mlflow"
    pipeline_user: str = "pipeline"
    secrets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> Deployment:
        env = dict(os.environ if env is None else env)
        missing = [name for name in SECRETS if not env.get(name)]
        if missing:
            raise ProdError(
                f"set {', '.join(missing)} in the environment (secrets are never read from "
                "files in the repository)"
            )
        return cls(
            state_dir=Path(env.get("PROD_DIR") or PROJECT_ROOT / ".prod").resolve(),
            mlflow_port=int(env.get("MLFLOW_PORT", 5000)),
            dagster_port=int(env.get("DAGSTER_PORT", 3000)),
            pg_host=env.get("DAGSTER_PG_HOST", "127.0.0.1"),
            pg_port=int(env.get("DAGSTER_PG_PORT", 5432)),
            pg_user=env.get("DAGSTER_PG_USER") or env.get("USER") or "root",
            pg_password=env.get("DAGSTER_PG_PASSWORD", ""),
            dagster_db=env.get("DAGSTER_PG_DB", "ml_assets_dagster"),
            mlflow_db=env.get("MLFLOW_PG_DB", "ml_assets_mlflow"),
            pipeline_user=env.get("MLFLOW_PIPELINE_USER", "pipeline"),
            secrets={name: env[name] for name in SECRETS},
        )

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster_home"

    def postgres_uri(self, database: str) -> str:
        # psycopg2 by name: SQLAlchemy 2.1 takes a bare postgresql:// to mean psycopg 3.
        password = f":{self.pg_password}" if self.pg_password else ""
        return (
            f"postgresql+psycopg2://{self.pg_user}{password}@{self.pg_host}:{self.pg_port}/"
            f"{database}"
        )

    def pipeline_env(self) -> dict[str, str]:
        """What a process of the pipeline needs to reach the instance and MLflow."""
        return {
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_PG_HOST": self.pg_host,
            "DAGSTER_PG_PORT": str(self.pg_port),
            "DAGSTER_PG_DB": self.dagster_db,
            "DAGSTER_PG_USER": self.pg_user,
            "DAGSTER_PG_PASSWORD": self.pg_password,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_TRACKING_USERNAME": self.pipeline_user,
            "MLFLOW_TRACKING_PASSWORD": self.secrets["MLFLOW_PIPELINE_PASSWORD"],
        }


def _create_databases(deployment: Deployment) -> None:
    import psycopg2

    connection = psycopg2.connect(
        host=deployment.pg_host,
        port=deployment.pg_port,
        user=deployment.pg_user,
        password=deployment.pg_password,
        dbname="postgres",
    )
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for name in (deployment.dagster_db, deployment.mlflow_db):
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def _write_auth_config(deployment: Deployment) -> Path:
    """MLflow's basic-auth settings: everyone READ unless granted more; users in a SQLite file
    under the state folder. The admin's password comes from MLFLOW_AUTH_ADMIN_PASSWORD."""
    path = deployment.state_dir / "mlflow_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{deployment.state_dir / 'mlflow_auth.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Each request's password check is a PBKDF2 hash; a run makes hundreds of requests.
        # A checked credential is trusted for 60 s per worker (a changed password or a deleted
        # user takes up to that long to reach the other worker).
        "auth_cache_ttl_seconds = 60\n"
    )
    return path


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ProdError(f"{url} exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise ProdError(f"{url} did not answer within {timeout:.0f} s; see {log}")


def _start(deployment: Deployment, name: str, argv: list[str], env: dict[str, str]):
    log = deployment.state_dir / "logs" / f"{name}.log"
    with log.open("a") as sink:
        process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            cwd=PROJECT_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its children
        )
    pids = _read_pids(deployment)
    pids[name] = process.pid
    (deployment.state_dir / "pids.json").write_text(json.dumps(pids, indent=1))
    return process, log


def _read_pids(deployment: Deployment) -> dict[str, int]:
    path = deployment.state_dir / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _ensure_pipeline_user(deployment: Deployment) -> None:
    """The pipeline's MLflow user, created by the admin when missing."""
    from mlflow.exceptions import RestException
    from mlflow.server.auth.client import AuthServiceClient

    from ml_assets.cli.environment import scoped_environment

    # MLflow's client reads basic-auth credentials from the environment at each request.
    admin = {
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": deployment.secrets["MLFLOW_AUTH_ADMIN_PASSWORD"],
    }
    with scoped_environment(admin):
        client = AuthServiceClient(deployment.tracking_uri)
        try:
            client.get_user(deployment.pipeline_user)
        except RestException:
            client.create_user(
                deployment.pipeline_user, deployment.secrets["MLFLOW_PIPELINE_PASSWORD"]
            )


SERVERS = ("mlflow", "webserver", "daemon", "worker-1", "worker-2")


def up(deployment: Deployment, servers: tuple[str, ...] = SERVERS):
    """Start the servers (those not already running), each on 127.0.0.1."""
    state = deployment.state_dir
    for folder in (state, state / "logs", state / "mlflow-artifacts", deployment.dagster_home):
        folder.mkdir(parents=True, exist_ok=True)
    link = deployment.dagster_home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(PRODUCTION_CONFIG)
    running = status(deployment)
    _create_databases(deployment)
    bin_dir = Path(sys.executable).parent
    if "mlflow" in servers and not running.get("mlflow"):
        if not _port_free(deployment.mlflow_port):
            raise ProdError(f"port {deployment.mlflow_port} is taken (set MLFLOW_PORT)")
        env = {
            "MLFLOW_AUTH_CONFIG_PATH": str(_write_auth_config(deployment)),
            "MLFLOW_AUTH_ADMIN_PASSWORD": deployment.secrets["MLFLOW_AUTH_ADMIN_PASSWORD"],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": deployment.secrets["MLFLOW_FLASK_SERVER_SECRET_KEY"],
            # MLflow 3's job runner (GenAI evaluations, trace roll-ups) starts three more
            # processes, each importing MLflow, and a folder in /dev/shm; nothing here uses it.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        process, log = _start(
            deployment,
            "mlflow",
            [
                str(bin_dir / "mlflow"),
                "server",
                "--app-name",
                "basic-auth",
                "--host",
                "127.0.0.1",
                "--port",
                str(deployment.mlflow_port),
                "--backend-store-uri",
                deployment.postgres_uri(deployment.mlflow_db),
                "--serve-artifacts",
                "--artifacts-destination",
                str(state / "mlflow-artifacts"),
                "--workers",
                "2",
            ],
            env,
        )
        _wait_for(f"{deployment.tracking_uri}/health", process, log)
        _ensure_pipeline_user(deployment)
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    if "webserver" in servers and not running.get("webserver"):
        if not _port_free(deployment.dagster_port):
            raise ProdError(f"port {deployment.dagster_port} is taken (set DAGSTER_PORT)")
        argv = [str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1"]
        process, log = _start(
            deployment,
            "webserver",
            [*argv, "-p", str(deployment.dagster_port)],
            deployment.pipeline_env(),
        )
        _wait_for(f"http://127.0.0.1:{deployment.dagster_port}/server_info", process, log)
    if "daemon" in servers and not running.get("daemon"):
        _start(
            deployment,
            "daemon",
            [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
            deployment.pipeline_env(),
        )
    # Two Celery workers for training_job's and evaluation_job's steps (pipeline.yaml's
    # `execution.executor: celery`; with in_process they wait, and their logs say so).
    for name in (s for s in servers if s.startswith("worker-")):
        if not running.get(name):
            _start(
                deployment,
                name,
                [sys.executable, "-m", "ml_assets.cli.celery_worker", "--name", name],
                deployment.pipeline_env(),
            )
    return status(deployment)


def _alive(pid: int) -> bool:
    try:
        # A server this process started (`up` then `down` in one process) stays a zombie, which
        # signal 0 still reaches, until it is reaped: reap it here. Another's child raises.
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def status(deployment: Deployment) -> dict[str, bool]:
    """Each recorded server and whether its process is alive."""
    return {name: _alive(pid) for name, pid in _read_pids(deployment).items()}


def down(deployment: Deployment, timeout: float = 30.0) -> list[str]:
    """Stop every recorded server by its PID (its process group, terminated, killed after
    `timeout` s); the names of those stopped."""
    stopped = []
    pids = _read_pids(deployment)
    for name, pid in pids.items():
        if not _alive(pid):
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        stopped.append(name)
    (deployment.state_dir / "pids.json").unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.cli.prod", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    args = parser.parse_args(argv)
    try:
        if args.command == "down":
            state = Path(os.environ.get("PROD_DIR") or PROJECT_ROOT / ".prod").resolve()
            stopped = down(Deployment(state_dir=state))
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
            return 0
        deployment = Deployment.from_environment()
        if args.command == "env":
            import shlex

            for key, value in deployment.pipeline_env().items():
                if key == "MLFLOW_TRACKING_PASSWORD":  # named, not printed
                    print(f'export {key}="$MLFLOW_PIPELINE_PASSWORD"')
                elif key != "DAGSTER_PG_PASSWORD":  # inherited from this shell as it is
                    print(f"export {key}={shlex.quote(value)}")
            return 0
        running = up(deployment) if args.command == "up" else status(deployment)
        for name, alive in running.items():
            print(f"{name:10s} {'running' if alive else 'stopped'}")
        print(f"logs: {deployment.state_dir / 'logs'}")
        print(
            f"MLflow: {deployment.tracking_uri}  Dagster: http://127.0.0.1:{deployment.dagster_port}"
        )
        return 0 if all(running.values()) else 1
    except ProdError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
