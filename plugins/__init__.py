"""refflow's plugin surface: ``from refflow.plugins import hookimpl``."""

import pluggy

hookimpl = pluggy.HookimplMarker("refflow")

__all__ = ["hookimpl"]
