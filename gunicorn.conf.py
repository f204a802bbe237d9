"""gunicorn settings, read from the environment (docs/deployment.md "gunicorn").

gthread workers: real threads, no greenlets (docs/architecture.md "Rules", rule 1). The app is
loaded in each worker after the fork, so nothing (database connections, thread pools) crosses a
fork.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def _remove_private_metrics_dir(path: str, owner: int) -> None:
    if os.getpid() == owner:  # not in a worker: they are forked from this process, hook included
        shutil.rmtree(path, ignore_errors=True)


# Metrics (docs/operations.md "Metrics"): every process writes its values to files in this directory
# and a scrape on any worker adds them up. prometheus_client picks that storage when first imported,
# which happens in this master too (the logging below imports authapp), so it is set here, first.
# Unset: a private directory for this master alone, removed when it exits (`--check-config` too).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="authapp-metrics-")
    atexit.register(
        _remove_private_metrics_dir, os.environ["PROMETHEUS_MULTIPROC_DIR"], os.getpid()
    )


def _checked_settings() -> dict:
    """authapp's settings, GUNICORN_* included, parsed once by config.load. What every worker
    would refuse with a traceback (a weak production secret, a bad value), the master refuses
    first, in one line, and nothing starts (docs/deployment.md "Production by default").

    Production with several workers must also count rate limits in one place (Redis): with
    memory:// each worker would allow the limit again, multiplying it by the worker count."""
    from flask import Flask
    from flask.cli import load_dotenv

    from authapp.platform import config

    load_dotenv()  # .env and .flaskenv, as wsgi.py and `flask` read them
    try:
        # The instance folder the app's Flask object will use: outside production, the local
        # secrets the workers then read are generated here, once.
        settings = config.load(Flask("authapp", instance_relative_config=True).instance_path)
        config.check_production(settings)
    except config.ConfigError as exc:
        raise SystemExit(f"authapp refuses to start: {exc.message}") from None
    production = settings["AUTHAPP_ENV"] == "production"
    alone = settings["GUNICORN_WORKERS"] < 2 or not settings["RATELIMIT_ENABLED"]
    if production and not alone and settings["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        raise SystemExit(
            f"RATELIMIT_STORAGE_URI is memory:// with {settings['GUNICORN_WORKERS']} workers in "
            "production: each worker would count alone. Set it to redis://host:6379/0."
        )
    return settings


# After PROMETHEUS_MULTIPROC_DIR: it imports authapp, and so prometheus_client.
authapp_settings = _checked_settings()
bind = authapp_settings["GUNICORN_BIND"]
workers = authapp_settings["GUNICORN_WORKERS"]
worker_class = "gthread"  # real threads, no greenlets (docs/architecture.md "Rules", rule 1)
threads = authapp_settings["GUNICORN_THREADS"]
timeout = authapp_settings["GUNICORN_TIMEOUT"]
graceful_timeout = authapp_settings["GUNICORN_GRACEFUL_TIMEOUT"]
keepalive = authapp_settings["GUNICORN_KEEPALIVE"]
max_requests = authapp_settings["GUNICORN_MAX_REQUESTS"]
max_requests_jitter = authapp_settings["GUNICORN_MAX_REQUESTS_JITTER"]
# Only these peers may set X-Forwarded-Proto & co.; the app applies TRUSTED_PROXIES itself.
forwarded_allow_ips = ",".join(authapp_settings["TRUSTED_PROXIES"]) or "127.0.0.1"
# gunicorn 27 shares one control socket per machine by default; tests start several servers.
control_socket_disable = True
preload_app = False

accesslog = "-"
errorlog = "-"
loglevel = authapp_settings["LOG_LEVEL"].lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(D)s %({x-request-id}o)s'
logger_class = "authapp.platform.logs.AccessLogger"  # the access line from the atoms it prints
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structlog": {
            "()": "authapp.platform.logs.make_formatter",
            "log_format": authapp_settings["LOG_FORMAT"],
        }
    },
    "handlers": {
        "stderr": {"class": "authapp.platform.logs.Handler", "formatter": "structlog"},
    },
    "root": {"handlers": ["stderr"], "level": authapp_settings["LOG_LEVEL"]},
    "loggers": {
        "gunicorn.error": {"handlers": [], "propagate": True},
        "gunicorn.access": {"handlers": [], "propagate": True},
    },
}


def post_fork(server, worker):  # noqa: ANN001
    """Drop any database connection inherited from the master (only with preload_app)."""
    import sys

    wsgi = sys.modules.get("wsgi")
    if wsgi is not None:
        from authapp.platform.extensions import db

        with wsgi.app.app_context():
            db.engine.dispose(close=False)


def post_worker_init(worker):  # noqa: ANN001 - gunicorn's hook signature
    # The outbox sweeper thread starts in each worker after the fork, never in the master.
    from authapp.delivery import outbox

    outbox.start_sweeper(worker.wsgi)


def worker_exit(server, worker):  # noqa: ANN001
    # Stop sweeping and let running deliveries finish; what is left stays pending in the outbox.
    from authapp.delivery import offload, outbox

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        outbox.stop_sweeper(app)
        offload.shutdown(app, wait=True)


def on_starting(server):  # noqa: ANN001
    # An earlier run's files would add its workers' counts to this one's.
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):  # noqa: ANN001
    # Drop the dead worker's live gauges (queue depth, breaker state); its counts stay summed.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
