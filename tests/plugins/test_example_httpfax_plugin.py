"""The example third-party plugin (examples/refflow-httpfax), installed for real.

The session fixture installs it into the running venv with pip (editable)
unless it is installed already (CI does it up front), then proves that its
fax transport is what refflow's ``fax`` channel uses with
``REFFLOW_FAX_TRANSPORT=httpfax``: it posts faxes to a local HTTP server with
the right transient/permanent mapping.
"""

from __future__ import annotations

import fcntl
import http.server
import importlib
import importlib.metadata
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from refflow.plugins.channels.base import (
    Delivery,
    PermanentChannelError,
    TransientChannelError,
)
from refflow.plugins.channels.fax import FaxChannel, FaxJob
from refflow.plugins.manager import (
    fax_transports,
    get_plugin_manager,
    list_plugins,
    reset_plugin_managers,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "refflow-httpfax"


def _installed() -> bool:
    try:
        dist = importlib.metadata.distribution("refflow-httpfax")
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(ep.group == "refflow" and ep.name == "httpfax" for ep in dist.entry_points)


@pytest.fixture(scope="session")
def httpfax_installed():
    """``pip install -e examples/refflow-httpfax`` once (a file lock serialises xdist workers)."""
    if not _installed():
        lock_path = Path(sys.prefix) / ".refflow-httpfax-install.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _installed():
                subprocess.run(
                    [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(EXAMPLE)],
                    check=True, timeout=300,
                )
        importlib.invalidate_caches()
        reset_plugin_managers()
    try:
        importlib.import_module("refflow_httpfax")
    except ModuleNotFoundError:  # editable .pth files are read at start-up only
        sys.path.insert(0, str(EXAMPLE))
    assert _installed()
    return EXAMPLE


@pytest.fixture
def httpfax_settings(plugin_settings, httpfax_installed):
    # Under test, third-party plugins load only when named (REFFLOW_LOAD_PLUGINS).
    return plugin_settings.with_overrides(load_plugins=("httpfax",), fax_transport="httpfax")


class FaxProvider(http.server.BaseHTTPRequestHandler):
    """A tiny HTTP fax provider: answers from a script, records what it got."""

    script: list[tuple[int, float]]  # set per test (see the provider fixture)
    received: list[dict]

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status, delay = self.script.pop(0) if self.script else (201, 0.0)
        time.sleep(delay)
        self.received.append({"headers": dict(self.headers), "body": body, "status": status})
        payload = json.dumps({"id": f"job-{len(self.received)}"}).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def provider(monkeypatch):
    handler = type("Provider", (FaxProvider,), {"script": [], "received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("REFFLOW_HTTPFAX_URL", f"http://127.0.0.1:{server.server_port}/v1/faxes")
    monkeypatch.setenv("REFFLOW_HTTPFAX_TOKEN", "test-token")
    monkeypatch.setenv("REFFLOW_HTTPFAX_TIMEOUT", "0.5")
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def transport(settings):
    return fax_transports(get_plugin_manager(settings), settings)["httpfax"]


def job(tiff: bytes, number="+17635550198", delivery_id="dlv-http-2") -> FaxJob:
    return FaxJob(delivery_id=delivery_id, referral_id="ref-9", number=number, tiff=tiff,
                  pages=1)


def test_installed_plugin_is_loaded_and_listed(httpfax_settings, plugin_settings):
    pm = get_plugin_manager(httpfax_settings)
    listed = {p["name"]: p for p in list_plugins(pm)}
    assert listed["httpfax"] == {
        "name": "httpfax", "version": "0.2.0", "builtin": False, "enabled": True,
        "hooks": ["refflow_fax_transports"],  # a transport: no channel, no routing hook
    }
    # Without the allow-list, tests ignore installed third-party plugins (as llm does) ...
    default = {p["name"]: p for p in list_plugins(get_plugin_manager(plugin_settings))}
    assert default["httpfax"]["enabled"] is False
    assert default["httpfax"]["reason"] == "not in load_plugins"
    # ... and REFFLOW_DISABLED_PLUGINS wins over the allow-list.
    off = httpfax_settings.with_overrides(disabled_plugins=("httpfax",))
    assert get_plugin_manager(off).get_plugin("httpfax") is None


def test_the_fax_channel_sends_through_the_transport(httpfax_settings, provider, helpers):
    tiff = helpers.fax_tiff(pages=2)
    channel = FaxChannel(httpfax_settings, pm=get_plugin_manager(httpfax_settings))
    delivery = Delivery(id="dlv-http-1", referral_id="ref-9", channel="fax",
                        target="+1 763 555 0198", documents={"fax.tiff": tiff},
                        subject="Plan summary")
    result = channel.send(delivery)
    assert channel.transport.name == "httpfax"
    assert result.reference == "job-1" and result.detail == {"pages": 2}
    (request,) = provider.received
    assert request["body"] == tiff
    assert request["headers"]["Idempotency-Key"] == "dlv-http-1"
    assert request["headers"]["X-Fax-To"] == "+17635550198"
    assert request["headers"]["Content-Type"] == "image/tiff"
    assert request["headers"]["Authorization"] == "Bearer test-token"


@pytest.mark.parametrize(
    ("status", "delay", "error"),
    [
        (503, 0.0, TransientChannelError),
        (500, 0.0, TransientChannelError),
        (429, 0.0, TransientChannelError),
        (409, 0.0, TransientChannelError),
        (400, 0.0, PermanentChannelError),
        (422, 0.0, PermanentChannelError),
        (201, 1.5, TransientChannelError),  # no answer within the timeout
    ],
)
def test_error_mapping(httpfax_settings, provider, helpers, status, delay, error):
    provider.script.append((status, delay))
    fax = job(helpers.fax_tiff(1))
    with pytest.raises(error) as info:
        transport(httpfax_settings).submit(fax)
    assert "7635550198" not in info.value.message
    # The retry (same delivery id, same key) goes through.
    assert transport(httpfax_settings).submit(fax).reference
    keys = {r["headers"]["Idempotency-Key"] for r in provider.received}
    assert keys == {"dlv-http-2"}


def test_unreachable_provider_is_transient_and_bad_numbers_permanent(
    httpfax_settings, monkeypatch, helpers
):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("REFFLOW_HTTPFAX_URL", f"http://127.0.0.1:{s.getsockname()[1]}/")
        with pytest.raises(TransientChannelError, match="unreachable"):
            transport(httpfax_settings).submit(job(helpers.fax_tiff(1)))
    # refflow's own number validation, reused by the transport
    with pytest.raises(PermanentChannelError, match="not a valid phone number"):
        transport(httpfax_settings).submit(job(helpers.fax_tiff(1), number="+1 555 000"))


def test_transport_is_offered_only_when_configured(httpfax_settings, monkeypatch, helpers):
    monkeypatch.delenv("REFFLOW_HTTPFAX_URL", raising=False)
    assert "httpfax" not in fax_transports(get_plugin_manager(httpfax_settings),
                                           httpfax_settings)
    channel = FaxChannel(httpfax_settings, pm=get_plugin_manager(httpfax_settings))
    delivery = Delivery("dlv-http-4", "ref-9", "fax", "+17635550198",
                        {"fax.tiff": helpers.fax_tiff(1)}, "s")
    with pytest.raises(PermanentChannelError, match="'httpfax' is not installed"):
        channel.send(delivery)
