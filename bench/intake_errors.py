"""Naming bad fields in linear time (issue 14): POST /api/v1/referrals with N
unknown fields, through the Flask view (test client) on SQLite. Prints one
JSON object.

The target: 50,000 unknown top-level fields answer 422, every field named,
in under a second. Before the fix naming them was quadratic (8,000 fields:
20 s; 60,000: no answer in 60 s).

Baselines in the same run: the same view answering the design example (202,
written to the database) and one unknown field (422); decoding the 50,000-field
body alone (``json.loads``, the floor any answer pays); and, for the record,
the old quadratic naming (the removed code, copied here) on 2,000 and 4,000
fields. ``doubling_ratio`` is t(2N)/t(N) from 12,500 to 50,000 fields: about 2
for linear time, 4 for quadratic.

    python bench/intake_errors.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = json.loads((ROOT / "examples" / "referrals" / "design-example.json").read_text())
SIZES = (12_500, 25_000, 50_000)


def _old_field_errors(exc) -> dict[str, str]:
    """Naming the fields as it was before issue 14 (quadratic: every field
    is compared with every other one)."""
    fields: dict[str, str] = {}
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        fields.setdefault(loc or "body", "unknown field" if err["type"] == "extra_forbidden"
                          else err["msg"])
    return {k: v for k, v in fields.items()
            if not any(other.startswith(k + ".") for other in fields)}


def _body(n: int, where: str | None = None) -> bytes:
    body = json.loads(json.dumps(EXAMPLE))
    target = body if where is None else body[where]
    target.update({f"x{i:05d}": 1 for i in range(n)})
    return json.dumps(body).encode()


def _time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from pydantic import ValidationError

    from refflow.accounts.practices import create_practice, issue_key
    from refflow.app import create_app
    from refflow.config import load_settings
    from refflow.db import database_for, migrate
    from refflow.intake.schemas import Referral

    data_dir = Path(tempfile.mkdtemp(prefix="refflow-bench-"))
    settings = load_settings({}, data_dir=data_dir, secret_key="bench",
                             intake_rate_limit="1000000/minute")
    migrate.upgrade(database_for(settings))
    with database_for(settings).session() as session:
        practice = create_practice(session, "Bench Practice", fax="+1 763 555 0198")
        _, key = issue_key(session, practice)
    client = create_app(settings, {"TESTING": True}).test_client()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(raw: bytes, status: int, named: int | None = None):
        def call():
            response = client.post("/api/v1/referrals", data=raw, headers=headers)
            assert response.status_code == status, response.status_code
            if named is not None:
                assert len(response.get_json()["error"]["fields"]) == named
            return response
        return call

    out: dict = {"benchmark": "intake_errors", "python": platform.python_version(),
                 "machine": platform.machine(), "repeat": args.repeat,
                 "target": "50,000 unknown fields: 422 naming each, < 1 s"}
    # baselines
    out["valid_referral_202_seconds"] = round(_time(post(json.dumps(EXAMPLE).encode(), 202),
                                                    args.repeat)[0], 4)
    out["one_unknown_field_422_seconds"] = round(_time(post(_body(1), 422, 1),
                                                       args.repeat)[0], 4)
    big = _body(50_000)
    out["json_loads_50000_seconds"] = round(_time(lambda: json.loads(big), args.repeat)[0], 4)
    out["body_bytes_50000"] = len(big)
    # the measurement
    seconds = {}
    for n in SIZES:
        seconds[n] = _time(post(_body(n), 422, n), args.repeat)[0]
        out[f"unknown_fields_{n}_422_seconds"] = round(seconds[n], 4)
    out["unknown_fields_50000_in_clinical_422_seconds"] = round(
        _time(post(_body(50_000, "clinical"), 422, 50_000), args.repeat)[0], 4)
    out["doubling_ratio"] = round(statistics.mean(
        seconds[b] / seconds[a] for a, b in zip(SIZES, SIZES[1:])), 2)
    # the old naming, for the record
    for n in (2_000, 4_000):
        try:
            Referral.model_validate(json.loads(_body(n)))
        except ValidationError as exc:
            error = exc
        out[f"old_naming_{n}_seconds"] = round(_time(lambda: _old_field_errors(error), 1)[0], 3)
    out["target_met"] = seconds[50_000] < 1.0
    print(json.dumps(out, indent=2))
    sys.exit(0 if out["target_met"] else 1)


if __name__ == "__main__":
    main()
