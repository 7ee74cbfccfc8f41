"""The plugin manager: loading, listing, and calling hooks with fault isolation.

Plugins (built-in and third-party alike) are entry points of group ``refflow``.
They are loaded lazily, once per plugin selection, by :func:`get_plugin_manager`:

- ``settings.disabled_plugins`` (``REFFLOW_DISABLED_PLUGINS=a,b``) blocks
  plugins by entry-point name;
- ``settings.load_plugins`` (``REFFLOW_LOAD_PLUGINS=a,b``) is an allow-list
  for third-party plugins (built-ins, those of the ``refflow`` distribution,
  always load unless disabled). An empty value loads no third-party plugin;
- under pytest (``sys._called_from_test``, as datasette and llm do) third-party
  plugins load only when named in ``load_plugins``, so tests do not depend on
  what happens to be installed.

The helpers below call each hook implementation separately. One that raises
(or returns nonsense) becomes a :class:`PluginFailure` naming the plugin, the
hook and the error class; the exception's text is never kept, because a
plugin's exception may quote the referral. The other plugins go on.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pluggy

from refflow.plugins import hookspecs
from refflow.plugins.hookspecs import ReferralRef

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "refflow"
BUILTIN_DISTRIBUTION = "refflow"
SEVERITIES = ("reject", "needs_review", "caution")

__all__ = [
    "PluginFailure",
    "call_each",
    "channels",
    "fax_transports",
    "get_plugin_manager",
    "list_plugins",
    "notify_status_changed",
    "plan_for",
    "register_commands",
    "reset_plugin_managers",
    "routes_for",
    "validate_referral",
]


@dataclass(frozen=True)
class PluginFailure:
    """A plugin raised (or returned something unusable) in a hook. No PHI inside."""

    plugin: str
    hook: str
    error_class: str
    where: str = ""  # "module:line" of the innermost frame, for the plugin's author

    @property
    def message(self) -> str:
        return f"plugin {self.plugin!r} failed in {self.hook} ({self.error_class})"

    def as_problem(self) -> dict[str, Any]:
        """As an intake problem: the referral goes to staff review."""
        return {
            "code": "plugin_failed",
            "severity": "needs_review",
            "message": self.message,
            "plugin": self.plugin,
            "hook": self.hook,
            "error_class": self.error_class,
        }

    def as_flag(self) -> dict[str, Any]:
        """As a plan flag (DESIGN.md "Plan JSON" ``flags[]``)."""
        return {
            "code": "plugin_failed",
            "severity": "needs_review",
            "message": self.message,
            "source": self.plugin,
        }

    def as_event(self) -> dict[str, Any]:
        """As a timeline event payload for the referral."""
        return {
            "type": "plugin_failed",
            "plugin": self.plugin,
            "hook": self.hook,
            "error_class": self.error_class,
        }


class InvalidResult(Exception):
    """A plugin returned a value of the wrong shape (recorded as its failure)."""


# -- loading -------------------------------------------------------------------


@dataclass
class _EntryPointRecord:
    name: str
    distribution: str
    version: str
    builtin: bool
    enabled: bool
    reason: str = ""  # "disabled", "not in load_plugins", "load failed (ErrorClass)"


_managers: dict[tuple, pluggy.PluginManager] = {}
_lock = threading.Lock()


def _selection(settings) -> tuple:
    disabled = tuple(sorted(getattr(settings, "disabled_plugins", ()) or ()))
    allow = getattr(settings, "load_plugins", None)
    allow = None if allow is None else tuple(sorted(allow))
    return disabled, allow, bool(getattr(sys, "_called_from_test", False))


def get_plugin_manager(settings=None) -> pluggy.PluginManager:
    """The plugin manager for ``settings`` (default: ``load_settings()``).

    Loads the ``refflow`` entry points on first use and caches the manager per
    plugin selection, so calling it again is cheap and idempotent. Plugins
    registered by hand (tests) stay registered on the cached manager until
    they are unregistered.
    """
    if settings is None:
        from refflow.config import load_settings

        settings = load_settings()
    key = _selection(settings)
    pm = _managers.get(key)
    if pm is not None:
        return pm
    with _lock:
        pm = _managers.get(key)
        if pm is None:
            pm = _build(*key)
            _managers[key] = pm
    return pm


def reset_plugin_managers() -> None:
    """Forget the cached managers (tests, or after installing a plugin)."""
    with _lock:
        _managers.clear()


def _build(disabled: tuple, allow: tuple | None, under_test: bool) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    records: dict[str, _EntryPointRecord] = {}
    load_failures: list[PluginFailure] = []
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist is not None else ""
        version = ep.dist.version if ep.dist is not None else ""
        builtin = _normalize(dist) == BUILTIN_DISTRIBUTION
        record = _EntryPointRecord(ep.name, dist, version, builtin, enabled=False)
        records[ep.name] = record
        if ep.name in disabled:
            record.reason = "disabled"
            pm.set_blocked(ep.name)
            continue
        if not builtin and (allow is not None or under_test) and ep.name not in (allow or ()):
            record.reason = "not in load_plugins"
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue  # the same name twice (e.g. two installs): first wins
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the service down
            failure = _failure(ep.name, "load", exc)
            load_failures.append(failure)
            record.reason = f"load failed ({failure.error_class})"
            log.warning("%s", failure.message)
            continue
        record.enabled = True
    pm.refflow_entry_points = records  # type: ignore[attr-defined]
    pm.refflow_load_failures = load_failures  # type: ignore[attr-defined]
    return pm


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    # Built-ins first so their order is stable; then third-party by name.
    return sorted(
        eps,
        key=lambda ep: (
            _normalize(ep.dist.name if ep.dist else "") != BUILTIN_DISTRIBUTION,
            ep.name,
        ),
    )


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-")


def list_plugins(pm: pluggy.PluginManager, *, include_disabled: bool = True) -> list[dict[str, Any]]:
    """Describe the plugins: ``[{name, version, hooks, enabled, builtin}]`` sorted by name.

    Entry points that are disabled, not allowed, or failed to load are listed
    with ``enabled: False`` (and a ``reason``) when ``include_disabled``.
    Plugins registered by hand (not through an entry point) are listed too.
    """
    records: dict[str, _EntryPointRecord] = getattr(pm, "refflow_entry_points", {})
    out: dict[str, dict[str, Any]] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        record = records.get(name)
        hooks = sorted(h.name for h in (pm.get_hookcallers(plugin) or []))
        out[name] = {
            "name": name,
            "version": record.version if record else _plugin_version(plugin),
            "hooks": hooks,
            "enabled": True,
            "builtin": bool(record and record.builtin),
        }
    if include_disabled:
        for name, record in records.items():
            if name in out or record.enabled:
                continue
            out[name] = {
                "name": name,
                "version": record.version,
                "hooks": [],
                "enabled": False,
                "builtin": record.builtin,
                "reason": record.reason,
            }
    return [out[k] for k in sorted(out)]


def _plugin_version(plugin: object) -> str | None:
    module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", "")
    top = str(module).split(".")[0]
    try:
        for dist in importlib.metadata.packages_distributions().get(top, []):
            return importlib.metadata.version(dist)
    except Exception:  # noqa: BLE001  # pragma: no cover - metadata quirks
        return None
    return None


# -- calling hooks with fault isolation ---------------------------------------


def _failure(plugin: str, hook: str, exc: BaseException) -> PluginFailure:
    where = ""
    tb = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    if tb:
        frame = tb[-1]
        where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
    return PluginFailure(plugin, hook, type(exc).__name__, where)


def _impls(pm: pluggy.PluginManager, hook: str) -> list:
    """Implementations in pluggy's call order (tryfirst .. trylast, LIFO), no wrappers."""
    caller = getattr(pm.hook, hook)
    return [
        impl
        for impl in reversed(caller.get_hookimpls())
        if not (getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False))
    ]


def call_each(
    pm: pluggy.PluginManager, hook: str, **kwargs: Any
) -> Iterator[tuple[str, Any, PluginFailure | None]]:
    """Call each implementation of ``hook`` on its own.

    Yields ``(plugin_name, result, failure)``; ``failure`` is a
    :class:`PluginFailure` (and ``result`` ``None``) when the plugin raised.
    Failures are logged with plugin, hook and error class only.
    """
    for impl in _impls(pm, hook):
        args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
        try:
            result = impl.function(**args)
        except Exception as exc:  # noqa: BLE001 - fault isolation is the point
            failure = _failure(impl.plugin_name, hook, exc)
            log.warning("%s at %s", failure.message, failure.where or "?")
            yield impl.plugin_name, None, failure
            continue
        yield impl.plugin_name, result, None


def _record(failures: list[PluginFailure], plugin: str, hook: str, exc: Exception) -> None:
    failure = _failure(plugin, hook, exc)
    log.warning("%s", failure.message)
    failures.append(failure)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise InvalidResult("expected a list")


def validate_referral(referral, pm: pluggy.PluginManager, *, as_of: dt.date | None = None) -> list[dict[str, Any]]:
    """Run every ``refflow_validate_referral`` implementation.

    Returns the problems (each with ``source`` = plugin name), including one
    ``needs_review`` problem per plugin that raised or returned a malformed
    value (``code: "plugin_failed"``, naming the plugin and the error class).
    """
    as_of = as_of or dt.date.today()
    problems: list[dict[str, Any]] = []
    failures: list[PluginFailure] = []
    for plugin, result, failure in call_each(
        pm, "refflow_validate_referral", referral=referral, as_of=as_of
    ):
        if failure:
            failures.append(failure)
            continue
        try:
            checked = [_check_problem(p) for p in _as_list(result)]
        except InvalidResult as exc:
            _record(failures, plugin, "refflow_validate_referral", exc)
            continue
        problems.extend({**p, "source": plugin} for p in checked)
    problems.extend(f.as_problem() for f in failures)
    return problems


def _check_problem(problem: Any) -> dict[str, Any]:
    if not isinstance(problem, dict):
        raise InvalidResult("problem is not a dict")
    if not isinstance(problem.get("code"), str) or not isinstance(problem.get("message"), str):
        raise InvalidResult("problem needs code and message strings")
    if problem.get("severity") not in SEVERITIES:
        raise InvalidResult("problem severity must be reject, needs_review or caution")
    allowed = {"code", "severity", "message", "field"}
    return {k: v for k, v in problem.items() if k in allowed}


def exercise_catalog(pm: pluggy.PluginManager) -> tuple[list[dict[str, Any]], list[PluginFailure]]:
    """Extra exercises from ``refflow_exercise_catalog`` (each tagged with ``plugin``)."""
    exercises: list[dict[str, Any]] = []
    failures: list[PluginFailure] = []
    for plugin, result, failure in call_each(pm, "refflow_exercise_catalog"):
        if failure:
            failures.append(failure)
            continue
        try:
            items = _as_list(result)
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    raise InvalidResult("exercise needs an 'id'")
        except InvalidResult as exc:
            _record(failures, plugin, "refflow_exercise_catalog", exc)
            continue
        exercises.extend({**item, "plugin": plugin} for item in items)
    return exercises, failures


def plan_adjusters(pm: pluggy.PluginManager) -> list[tuple[str, Callable]]:
    """``[(plugin_name, fn(referral, plan))]`` for the engine, in call order."""
    adjusters = []
    for impl in _impls(pm, "refflow_adjust_plan"):
        adjusters.append((impl.plugin_name, _bind(impl)))
    return adjusters


def _bind(impl) -> Callable:
    names = tuple(impl.argnames)

    def adjuster(referral, plan):
        available = {"referral": referral, "plan": plan}
        return impl.function(**{n: available[n] for n in names if n in available})

    adjuster.__name__ = f"{impl.plugin_name}.refflow_adjust_plan"
    adjuster.__qualname__ = adjuster.__name__
    return adjuster


def plan_for(referral, *, as_of: dt.date, pm: pluggy.PluginManager) -> dict[str, Any]:
    """Build the plan with the plugins' exercises and plan rules.

    Calls ``refflow.planning.engine.build_plan`` with ``extra_exercises`` from
    ``refflow_exercise_catalog`` and ``adjusters`` from ``refflow_adjust_plan``
    (the engine isolates each adjuster and re-runs its safety rules). A
    catalogue plugin that failed adds a ``needs_review`` flag, so the plan
    is held for a clinician.
    """
    from refflow.planning.engine import build_plan

    extra, failures = exercise_catalog(pm)
    plan = build_plan(
        referral, as_of=as_of, extra_exercises=extra, adjusters=plan_adjusters(pm)
    )
    if failures:
        plan = dict(plan)
        plan["flags"] = list(plan.get("flags") or []) + [f.as_flag() for f in failures]
        if plan.get("decision") == "release":
            plan["decision"] = "review"
    return plan


def channels(pm: pluggy.PluginManager, settings) -> dict[str, Any]:
    """``{name: channel}`` from every ``refflow_output_channels`` implementation.

    A plugin that raises, returns a non-channel, or reuses a name already
    taken is recorded (see ``pm.refflow_channel_failures``) and skipped.
    """
    found: dict[str, Any] = {}
    failures: list[PluginFailure] = []
    for plugin, result, failure in call_each(pm, "refflow_output_channels", settings=settings):
        if failure:
            failures.append(failure)
            continue
        try:
            for channel in _as_list(result):
                _check_channel(channel)
                if channel.name in found:
                    raise InvalidResult("duplicate channel name")
                found[channel.name] = channel
        except InvalidResult as exc:
            _record(failures, plugin, "refflow_output_channels", exc)
    pm.refflow_channel_failures = failures  # type: ignore[attr-defined]
    return found


def _check_channel(channel: Any) -> None:
    name = getattr(channel, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidResult("channel has no name")
    for attr in ("send", "validate_target"):
        if not callable(getattr(channel, attr, None)):
            raise InvalidResult(f"channel has no {attr}()")


def fax_transports(pm: pluggy.PluginManager, settings) -> dict[str, Any]:
    """``{name: transport}`` from every ``refflow_fax_transports`` implementation."""
    found: dict[str, Any] = {}
    failures: list[PluginFailure] = []
    skipped: list[PluginFailure] = []
    for plugin, result, failure in call_each(pm, "refflow_fax_transports", settings=settings):
        if failure:
            skipped.append(failure)
            continue
        try:
            for transport in _as_list(result):
                name = getattr(transport, "name", None)
                if not isinstance(name, str) or not callable(getattr(transport, "submit", None)):
                    raise InvalidResult("transport needs a name and submit()")
                found.setdefault(name, transport)
        except InvalidResult as exc:
            _record(failures, plugin, "refflow_fax_transports", exc)
    pm.refflow_fax_transport_failures = failures + [  # type: ignore[attr-defined]
        f for f in skipped if f
    ]
    return found


def default_routes(referral) -> list[dict[str, str]]:
    """Routing from the referral's ``deliver`` flags (used when no plugin decides)."""
    routes = []
    deliver = referral.deliver
    if deliver.fax_to_referrer and referral.referrer.fax:
        routes.append({"channel": "fax", "document": "fax.tiff", "target": referral.referrer.fax})
    if deliver.email_to_patient and referral.patient.email:
        routes.append(
            {"channel": "email", "document": "handout.pdf", "target": referral.patient.email}
        )
    if deliver.chart_pdf:
        routes.append({"channel": "pdf", "document": "summary.pdf", "target": ""})
    return routes


def routes_for(referral, plan, pm: pluggy.PluginManager) -> tuple[list[dict[str, str]], list[PluginFailure]]:
    """The first non-``None`` ``refflow_route_deliveries`` answer, else :func:`default_routes`.

    A plugin that raises or answers malformed routes is skipped (and
    returned as a failure); the next plugin, then the default, decides.
    """
    failures: list[PluginFailure] = []
    for plugin, result, failure in call_each(
        pm, "refflow_route_deliveries", referral=referral, plan=plan
    ):
        if failure:
            failures.append(failure)
            continue
        if result is None:
            continue
        try:
            routes = [_check_route(r) for r in _as_list(result)]
        except InvalidResult as exc:
            _record(failures, plugin, "refflow_route_deliveries", exc)
            continue
        return routes, failures
    return default_routes(referral), failures


def _check_route(route: Any) -> dict[str, str]:
    if not isinstance(route, dict):
        raise InvalidResult("route is not a dict")
    for key in ("channel", "document", "target"):
        if not isinstance(route.get(key), str):
            raise InvalidResult(f"route needs a string {key}")
    return {"channel": route["channel"], "document": route["document"], "target": route["target"]}


def notify_status_changed(
    referral_id: str, old: str, new: str, pm: pluggy.PluginManager
) -> list[PluginFailure]:
    """Tell every plugin about a committed state change; returns the failures."""
    return [
        failure
        for _, _, failure in call_each(
            pm, "refflow_referral_status_changed", referral=ReferralRef(referral_id, new),
            referral_id=referral_id, old=old, new=new,
        )
        if failure
    ]


def register_commands(cli, pm: pluggy.PluginManager) -> list[PluginFailure]:
    """Let plugins add CLI commands (``refflow_register_commands``)."""
    return [f for _, _, f in call_each(pm, "refflow_register_commands", cli=cli) if f]
