"""Running the WSGI app under gunicorn from inside refflow (no config file)."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from refflow.config import Settings


class RefflowServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from refflow.app import create_app

        return create_app(self.settings)


def serve(settings: Settings, *, host: str, port: int, workers: int = 2, threads: int = 4,
          **extra) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "accesslog": None,  # access logs would carry referral ids in URLs; metrics cover traffic
        "errorlog": "-",
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "proc_name": "refflow-web",
        **extra,
    }
    RefflowServer(settings, options).run()
