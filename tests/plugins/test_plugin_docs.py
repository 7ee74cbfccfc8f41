"""docs/plugins.md documents every hook with its signature (as datasette's
test_plugin_hooks_are_documented does), and its Python examples compile."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from refflow.plugins import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _hooks():
    return [
        (name, fn) for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("refflow_")
    ]


def test_hookspecs_are_marked():
    names = [name for name, _ in _hooks()]
    assert len(names) >= 8
    for name, fn in _hooks():
        assert hasattr(fn, "refflow_spec"), name
        assert fn.__doc__ and "return" in fn.__doc__.lower(), f"{name} needs a docstring"


@pytest.mark.parametrize("name", [name for name, _ in _hooks()])
def test_plugin_hooks_are_documented(name):
    fn = getattr(hookspecs, name)
    signature = f"{name}({', '.join(inspect.signature(fn).parameters)})"
    docs = DOCS.read_text()
    assert f"### {signature}" in docs, f"docs/plugins.md has no section '### {signature}'"
    section = docs.split(f"### {signature}", 1)[1].split("\n### ", 1)[0]
    assert f"def {name}(" in section, f"the section for {name} has no example"


def test_python_examples_compile():
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 10
    for i, block in enumerate(blocks):
        if "@dataclass(frozen=True)\nclass Delivery" in block:
            continue  # the contract summary, not code to run
        compile(block, f"docs/plugins.md example {i}", "exec")


def test_hook_examples_run(tmp_path, referral):
    """Each hook example registers and runs through the real plugin manager without failing."""
    import datetime as dt
    import types

    import click

    from refflow.config import load_settings
    from refflow.plugins.hookspecs import ReferralRef
    from refflow.plugins.manager import call_each, get_plugin_manager

    settings = load_settings({}, data_dir=tmp_path)
    pm = get_plugin_manager(settings)
    arguments = {
        "settings": settings, "referral": referral, "as_of": dt.date(2026, 6, 1),
        "plan": {"decision": "review", "flags": [], "precautions": []},
        "referral_id": "ref-1", "old": "delivering", "new": "failed", "cli": click.Group(),
    }
    # the status hook's referral is a reference, not the referral's contents
    by_hook = {"refflow_referral_status_changed": {"referral": ReferralRef("ref-1", "failed")}}
    docs = DOCS.read_text()
    for name, _ in _hooks():
        section = docs.split(f"### {name}(", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
        module = types.ModuleType(f"docs_example_{name}")
        exec(compile(code, module.__name__, "exec"), module.__dict__)  # noqa: S102 - our docs
        pm.register(module, name=f"undo-{module.__name__}")
        try:
            ran = [(plugin, failure) for plugin, _, failure in call_each(pm, name, **{**arguments, **by_hook.get(name, {})})
                   if plugin == f"undo-{module.__name__}"]
            assert ran == [(f"undo-{module.__name__}", None)], name
        finally:
            pm.unregister(name=f"undo-{module.__name__}")
