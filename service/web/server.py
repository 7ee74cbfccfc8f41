"""Running the WSGI app under gunicorn from inside refflow (no config file).

Metrics are multiprocess-safe: every gunicorn worker writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory per server start unless the
operator sets one), a scrape of ``/metrics`` on any worker aggregates them,
and ``child_exit`` marks a dead worker's live gauges.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile

from gunicorn.app.base import BaseApplication

from refflow.config import Settings


class RefflowServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict, app_factory=None) -> None:
        self.settings = settings
        self.options = options
        self.app_factory = app_factory
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        if self.app_factory is not None:
            return self.app_factory()
        from refflow.web.app import create_app

        return create_app(self.settings)


def _child_exit(server, worker) -> None:
    from refflow.ops.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def _post_fork(server, worker) -> None:
    # A thread back from the database or Redis waits for the GIL while another
    # thread parses or validates; by default it may wait up to 5 ms for the
    # holder to yield, which queues every request behind CPU work.
    switch = float(os.environ.get("REFFLOW_GIL_SWITCH_SECONDS", "0.0005"))
    if switch > 0:
        sys.setswitchinterval(switch)


def _post_worker_init(worker) -> None:
    # The app is loaded: its modules, templates, SQLAlchemy metadata and FHIR
    # models are some hundreds of thousands of objects that live as long as
    # the process. Frozen, the cyclic garbage collector no longer walks them
    # on each full collection, which a request reading thousands of rows (the
    # Reports, the dashboard) sets off: ~60 ms a collection before, at 1,000,000
    # referrals (docs/performance.md). Collected first: garbage of the loading
    # frozen would never be freed.
    gc.collect()
    gc.freeze()


def prepare_metrics_dir() -> str:
    """Point prometheus-client at a clean multiprocess directory (before any sample)."""
    from refflow.ops.metrics import MULTIPROC_ENV, enable_multiprocess

    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):  # samples of a previous run are stale
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))
    else:
        directory = tempfile.mkdtemp(prefix="refflow-metrics-")
    enable_multiprocess(directory)
    return directory


# Imported in the master before gunicorn binds and forks: workers then start
# in milliseconds (and share the pages of these modules), and the port only
# accepts connections once a worker can answer soon.
WARM_MODULES = ("refflow.app", "refflow.web.api.referrals", "refflow.web.api.staff",
                "refflow.web.api.plugins", "refflow.plugins.manager", "refflow.ops.metrics",
                "refflow.ops.openapi", "refflow.web", "refflow.web.auth", "refflow.web.staff",
                "refflow.web.portal")


def warm_imports() -> None:
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional part not installed
            pass


def serve(settings: Settings, *, host: str, port: int, workers: int = 2, threads: int = 4,
          app_factory=None, **extra) -> None:
    from refflow.ops.logging import configure_logging

    configure_logging(settings.log_level)
    owned = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    directory = prepare_metrics_dir()
    warm_imports()
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        # gthread keeps keep-alive connections on the worker that accepted
        # them: without a bound, the first worker to wake takes every client
        # connection and serves them all on one core (one GIL) while the other
        # workers idle. At most this many connections per worker spreads them.
        "worker_connections": threads * 2,
        "accesslog": None,  # access logs would carry referral ids in URLs; metrics cover traffic
        "errorlog": "-",
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "proc_name": "refflow-web",
        "child_exit": _child_exit,
        "post_fork": _post_fork,
        "post_worker_init": _post_worker_init,
        **extra,
    }
    try:
        RefflowServer(settings, options, app_factory).run()
    finally:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
