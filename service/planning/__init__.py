"""The plan engine: turns a validated referral into a safe exercise plan.

Public API: ``refflow.planning.engine.build_plan`` and ``ENGINE_VERSION``;
``refflow.planning.schema.PLAN_SCHEMA``. Pure Python: no Flask, Celery or
database imports anywhere in this package.
"""
