"""The plugin manager: loading, listing, and calling hooks with fault isolation.

Loading (lazily, once per plugin selection, by :func:`get_plugin_manager`):
the built-ins of :data:`DEFAULT_PLUGINS` are imported and registered from
that list, so they need no install metadata; third-party plugins come from
the ``refflow`` entry-point group. Both go through the same ``pm.register``.

- ``settings.disabled_plugins`` (``REFFLOW_DISABLED_PLUGINS=a,b``) blocks
  plugins by name, built-ins included;
- ``settings.load_plugins`` (``REFFLOW_LOAD_PLUGINS=a,b``) is an allow-list
  for third-party plugins; an empty value loads none;
- under pytest (``sys._called_from_test``, as datasette and llm do) third-party
  plugins load only when named in ``load_plugins``.

Calling: every hook goes through pluggy, one implementation at a time.
:func:`call_each` asks ``pm.subset_hook_caller`` for a hook caller that holds
one ordinary implementation and every wrapper, so ``wrapper=True`` and
``hookwrapper=True`` implementations wrap each call, ``pm.add_hookcall_monitoring``
sees each call, and the implementations run in pluggy's order (tryfirst,
then LIFO registration order, then trylast). One that raises (or returns
nonsense) becomes a :class:`PluginFailure` naming the plugin, the hook and
the error class, never the exception's text (it may quote the referral);
the other implementations still run.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.metadata
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pluggy

import refflow
from refflow.plugins import hookspecs
from refflow.plugins.hookspecs import ReferralRef

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "refflow"
SEVERITIES = ("reject", "needs_review", "caution")

#: The built-in plugins: name (as in REFFLOW_DISABLED_PLUGINS) -> module.
DEFAULT_PLUGINS = {
    "channel_pdf": "refflow.plugins.channels.pdf",
    "channel_email": "refflow.plugins.channels.email",
    "channel_fax": "refflow.plugins.channels.fax",
    "clinical_rules": "refflow.plugins.rules.clinical",
}

__all__ = [
    "DEFAULT_PLUGINS", "PluginFailure", "call_each", "channels",
    "describe_fax_transports", "exercise_catalog", "fax_transports", "get_plugin_manager",
    "list_plugins",
    "notify_status_changed", "plan_adjusters", "plan_for", "register_commands",
    "plugin_routes", "reset_plugin_managers", "validate_referral",
]


@dataclass(frozen=True)
class PluginFailure:
    """A plugin raised (or returned something unusable) in a hook. No PHI inside."""

    plugin: str
    hook: str
    error_class: str
    where: str = ""  # "file:line" of the innermost frame, for the plugin's author

    @property
    def message(self) -> str:
        return f"plugin {self.plugin!r} failed in {self.hook} ({self.error_class})"

    def as_problem(self) -> dict[str, Any]:
        """As an intake problem: the referral goes to staff review."""
        return {"code": "plugin_failed", "severity": "needs_review", "message": self.message,
                "plugin": self.plugin, "hook": self.hook, "error_class": self.error_class}

    def as_flag(self) -> dict[str, Any]:
        """As a plan flag (DESIGN.md "Plan JSON" ``flags[]``)."""
        return {"code": "plugin_failed", "severity": "needs_review", "message": self.message,
                "source": self.plugin}


class InvalidResult(Exception):
    """A plugin returned a value of the wrong shape (recorded as its failure)."""


# -- loading -------------------------------------------------------------------

_managers: dict[tuple, pluggy.PluginManager] = {}
_lock = threading.Lock()


def get_plugin_manager(settings=None) -> pluggy.PluginManager:
    """The plugin manager for ``settings`` (default: ``load_settings()``).

    Built once per plugin selection and cached, so calling it again is cheap.
    Plugins registered by hand (tests) stay registered on the cached manager
    until they are unregistered.
    """
    if settings is None:
        from refflow.config import load_settings

        settings = load_settings()
    allow = settings.load_plugins
    key = (tuple(sorted(settings.disabled_plugins or ())),
           None if allow is None else tuple(sorted(allow)),
           bool(getattr(sys, "_called_from_test", False)))
    with _lock:
        if key not in _managers:
            _managers[key] = _build(*key)
        return _managers[key]


def reset_plugin_managers() -> None:
    """Forget the cached managers (tests, or after installing a plugin)."""
    with _lock:
        _managers.clear()


def _build(disabled: tuple, allow: tuple | None, under_test: bool) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    candidates = [(name, refflow.__version__, True, lambda m=module: importlib.import_module(m))
                  for name, module in DEFAULT_PLUGINS.items()]
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        candidates.append((ep.name, ep.dist.version if ep.dist else "", False, ep.load))
    # What list_plugins reports about each name: version, builtin, and why it is off.
    pm.refflow_plugins = known = {}  # type: ignore[attr-defined]
    for name, version, builtin, load in candidates:
        if name in known:
            continue  # the same name twice (a built-in's name, two installs): first wins
        known[name] = {"version": version, "builtin": builtin, "reason": ""}
        if name in disabled:
            known[name]["reason"] = "disabled"
            pm.set_blocked(name)
        elif not builtin and (allow is not None or under_test) and name not in (allow or ()):
            known[name]["reason"] = "not in load_plugins"
        else:
            try:
                pm.register(load(), name=name)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the service down
                failure = _failure(name, "load", exc)
                known[name]["reason"] = f"load failed ({failure.error_class})"
                log.warning("%s", failure.message)
    return pm


def list_plugins(pm: pluggy.PluginManager, *, include_disabled: bool = True) -> list[dict[str, Any]]:
    """Describe the plugins: ``[{name, version, hooks, enabled, builtin}]`` sorted by name.

    Plugins that are disabled, not allowed, or failed to load are listed with
    ``enabled: False`` and a ``reason`` when ``include_disabled``. Plugins
    registered by hand are listed too.
    """
    known: dict[str, dict] = getattr(pm, "refflow_plugins", {})
    out: dict[str, dict[str, Any]] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        info = known.get(name) or {"version": _plugin_version(plugin), "builtin": False}
        out[name] = {"name": name, "version": info["version"],
                     "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
                     "enabled": True, "builtin": info["builtin"]}
    if include_disabled:
        for name, info in known.items():
            if name not in out and info["reason"]:
                out[name] = {"name": name, "version": info["version"], "hooks": [],
                             "enabled": False, "builtin": info["builtin"], "reason": info["reason"]}
    return [out[k] for k in sorted(out)]


def _plugin_version(plugin: object) -> str | None:
    module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", "")
    try:
        for dist in importlib.metadata.packages_distributions().get(str(module).split(".")[0], []):
            return importlib.metadata.version(dist)
    except Exception:  # noqa: BLE001  # pragma: no cover - metadata quirks
        return None
    return None


# -- calling hooks, one implementation at a time -------------------------------


def _failure(plugin: str, hook: str, exc: BaseException) -> PluginFailure:
    tb = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    where = f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return PluginFailure(plugin, hook, type(exc).__name__, where)


def _culprit(exc: BaseException, wrappers: list, impl) -> str:
    """The plugin whose hook function the exception came out of last: a
    wrapper that raises is blamed, not the implementation it wrapped."""
    codes = {getattr(i.function, "__code__", None): i.plugin_name for i in [*wrappers, impl]}
    name = impl.plugin_name
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        name = codes.get(frame.f_code, name)
    return name


def _callers(pm: pluggy.PluginManager, hook: str) -> Iterator[tuple[Any, Callable]]:
    """``(impl, call)`` for each ordinary implementation of ``hook``, in pluggy's call
    order; ``call(**kwargs)`` runs that implementation inside every wrapper."""
    caller = getattr(pm.hook, hook)
    firstresult = bool(caller.spec and caller.spec.opts.get("firstresult"))
    plain = [i for i in reversed(caller.get_hookimpls()) if not (i.wrapper or i.hookwrapper)]
    for impl in plain:
        one = pm.subset_hook_caller(hook, [i.plugin for i in plain if i.plugin is not impl.plugin])

        def call(_one=one, **kwargs):
            result = _one(**kwargs)
            if firstresult or not isinstance(result, list):
                return result
            return result[0] if result else None  # pluggy leaves out None answers

        yield impl, call


def call_each(
    pm: pluggy.PluginManager, hook: str, **kwargs: Any
) -> Iterator[tuple[str, Any, PluginFailure | None]]:
    """Call each implementation of ``hook`` on its own, through pluggy.

    Yields ``(plugin_name, result, failure)``; ``failure`` is a
    :class:`PluginFailure` (and ``result`` ``None``) when the call raised.
    Failures are logged with plugin, hook and error class only.
    """
    wrappers = [i for i in getattr(pm.hook, hook).get_hookimpls() if i.wrapper or i.hookwrapper]
    for impl, call in _callers(pm, hook):
        try:
            result = call(**kwargs)
        except Exception as exc:  # noqa: BLE001 - fault isolation is the point
            failure = _failure(_culprit(exc, wrappers, impl), hook, exc)
            log.warning("%s at %s", failure.message, failure.where or "?")
            yield impl.plugin_name, None, failure
        else:
            yield impl.plugin_name, result, None


def _checked(
    pm: pluggy.PluginManager, hook: str, check: Callable[[Any], Any], **kwargs: Any
) -> Iterator[tuple[str, Any, PluginFailure | None]]:
    """:func:`call_each`, with each result passed through ``check`` (an
    :class:`InvalidResult` it raises becomes that plugin's failure)."""
    for plugin, result, failure in call_each(pm, hook, **kwargs):
        if failure is None:
            try:
                result = check(result)
            except InvalidResult as exc:
                failure = _failure(plugin, hook, exc)
                log.warning("%s", failure.message)
        yield plugin, None if failure else result, failure


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise InvalidResult("expected a list")


def _each(check: Callable[[Any], Any]) -> Callable[[Any], list]:
    return lambda value: [check(item) for item in _as_list(value)]


def validate_referral(referral, pm: pluggy.PluginManager, *, as_of: dt.date | None = None) -> list[dict[str, Any]]:
    """Run every ``refflow_validate_referral`` implementation.

    Returns the problems (each with ``source`` = plugin name), then one
    ``needs_review`` problem (``code: "plugin_failed"``) per plugin that
    raised or returned a malformed value.
    """
    problems, failures = [], []
    for plugin, result, failure in _checked(
        pm, "refflow_validate_referral", _each(_check_problem),
        referral=referral, as_of=as_of or dt.date.today(),
    ):
        if failure:
            failures.append(failure.as_problem())
        else:
            problems.extend({**p, "source": plugin} for p in result)
    return problems + failures


def _check_problem(problem: Any) -> dict[str, Any]:
    if not isinstance(problem, dict):
        raise InvalidResult("problem is not a dict")
    if not isinstance(problem.get("code"), str) or not isinstance(problem.get("message"), str):
        raise InvalidResult("problem needs code and message strings")
    if problem.get("severity") not in SEVERITIES:
        raise InvalidResult("problem severity must be reject, needs_review or caution")
    return {k: v for k, v in problem.items() if k in ("code", "severity", "message", "field")}


def _check_exercise(item: Any) -> dict:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise InvalidResult("exercise needs an 'id'")
    return item


def exercise_catalog(pm: pluggy.PluginManager) -> tuple[list[dict[str, Any]], list[PluginFailure]]:
    """Extra exercises from ``refflow_exercise_catalog`` (each tagged with ``plugin``)."""
    exercises, failures = [], []
    for plugin, items, failure in _checked(pm, "refflow_exercise_catalog", _each(_check_exercise)):
        if failure:
            failures.append(failure)
        else:
            exercises.extend({**item, "plugin": plugin} for item in items)
    return exercises, failures


def plan_adjusters(pm: pluggy.PluginManager, as_of: dt.date) -> list[tuple[str, Callable]]:
    """``[(plugin_name, fn(referral, plan))]`` for the engine, in call order.

    Each ``fn`` calls one ``refflow_adjust_plan`` implementation through
    pluggy with ``as_of``; the engine isolates it and records what it did.
    """
    return [(impl.plugin_name, lambda referral, plan, _call=call: _call(
                referral=referral, plan=plan, as_of=as_of))
            for impl, call in _callers(pm, "refflow_adjust_plan")]


def plan_for(referral, *, as_of: dt.date, pm: pluggy.PluginManager,
             locale: str = "en_US", allow_unreviewed_translations: bool = False) -> dict[str, Any]:
    """Build the plan with the plugins' exercises and plan rules, in the
    clinic's ``locale`` (its units).

    Calls ``refflow.planning.engine.build_plan`` with ``extra_exercises`` from
    ``refflow_exercise_catalog`` and ``adjusters`` from ``refflow_adjust_plan``
    (the engine isolates each adjuster and re-runs its safety rules). A
    catalogue plugin that failed adds a ``needs_review`` flag, so the plan
    is held for a clinician.
    """
    from refflow.planning.decision import with_flags
    from refflow.planning.engine import build_plan

    extra, failures = exercise_catalog(pm)
    plan = build_plan(referral, as_of=as_of, extra_exercises=extra,
                      adjusters=plan_adjusters(pm, as_of), locale=locale,
                      allow_unreviewed_translations=allow_unreviewed_translations)
    return with_flags(plan, [f.as_flag() for f in failures]) if failures else plan


def _check_channel(channel: Any) -> Any:
    if not isinstance(getattr(channel, "name", None), str) or not channel.name:
        raise InvalidResult("channel has no name")
    for attr in ("send", "validate_target"):
        if not callable(getattr(channel, attr, None)):
            raise InvalidResult(f"channel has no {attr}()")
    return channel


def _check_transport(transport: Any) -> Any:
    if not isinstance(getattr(transport, "name", None), str) or not callable(
        getattr(transport, "submit", None)
    ):
        raise InvalidResult("transport needs a name and submit()")
    return transport


def _by_name(pm, hook: str, check: Callable[[Any], Any], settings) -> tuple[dict, list]:
    """``{name: object}`` from a hook answering lists of named objects; a
    name already taken counts as a failure of the later plugin."""
    found, failures = {}, []
    for plugin, items, failure in _checked(pm, hook, _each(check), settings=settings):
        if failure is None and any(item.name in found for item in items):
            failure = _failure(plugin, hook, InvalidResult("duplicate name"))
        if failure:
            failures.append(failure)
        else:
            found.update((item.name, item) for item in items)
    return found, failures


def channels(pm: pluggy.PluginManager, settings) -> dict[str, Any]:
    """``{name: channel}`` from every ``refflow_output_channels`` implementation.

    A plugin that raises, returns a non-channel, or reuses a name already
    taken is recorded (see ``pm.refflow_channel_failures``) and skipped.
    """
    found, pm.refflow_channel_failures = _by_name(  # type: ignore[attr-defined]
        pm, "refflow_output_channels", _check_channel, settings)
    return found


def fax_transports(pm: pluggy.PluginManager, settings) -> dict[str, Any]:
    """``{name: transport}`` from every ``refflow_fax_transports`` implementation
    (failures in ``pm.refflow_fax_transport_failures``)."""
    found, pm.refflow_fax_transport_failures = _by_name(  # type: ignore[attr-defined]
        pm, "refflow_fax_transports", _check_transport, settings)
    return found


def describe_fax_transports(pm: pluggy.PluginManager, settings) -> list[dict[str, Any]]:
    """``[{name, supports, selected}]``: each fax transport, what it supports
    (``status``, ``cancel``, ``receive``, ``inbound``) and whether
    ``REFFLOW_FAX_TRANSPORT`` selects it."""
    return [{"name": name, "supports": sorted(getattr(t, "supports", ()) or ()),
             "selected": name == settings.fax_transport}
            for name, t in sorted(fax_transports(pm, settings).items())]


def _check_route(route: Any) -> dict[str, str]:
    if not isinstance(route, dict):
        raise InvalidResult("route is not a dict")
    for key in ("channel", "document", "target"):
        if not isinstance(route.get(key), str):
            raise InvalidResult(f"route needs a string {key}")
    return {key: route[key] for key in ("channel", "document", "target")}


def _check_routes(value: Any) -> list[dict[str, str]] | None:
    return None if value is None else [_check_route(route) for route in _as_list(value)]


def plugin_routes(referral, plan, pm: pluggy.PluginManager
                  ) -> tuple[list[dict[str, str]] | None, list[PluginFailure]]:
    """The first non-``None`` ``refflow_route_deliveries`` answer (``None``: no
    plugin decides).

    A plugin that raises or answers malformed routes is skipped (and
    returned as a failure); the next plugin decides.
    """
    failures = []
    for _, routes, failure in _checked(pm, "refflow_route_deliveries", _check_routes,
                                       referral=referral, plan=plan):
        if failure:
            failures.append(failure)
        elif routes is not None:
            return routes, failures
    return None, failures


def notify_status_changed(
    referral_id: str, old: str, new: str, pm: pluggy.PluginManager
) -> list[PluginFailure]:
    """Tell every plugin about a committed state change; returns the failures."""
    return [f for _, _, f in call_each(
        pm, "refflow_referral_status_changed", referral=ReferralRef(referral_id, new),
        referral_id=referral_id, old=old, new=new) if f]


def register_commands(cli, pm: pluggy.PluginManager) -> list[PluginFailure]:
    """Let plugins add CLI commands (``refflow_register_commands``)."""
    return [f for _, _, f in call_each(pm, "refflow_register_commands", cli=cli) if f]
