"""A plan rendered as plain text for a person (``refflow plan --format text``)."""

from __future__ import annotations

DECISIONS = {
    "release": "READY: the plan can go to the patient.",
    "review": "HELD FOR REVIEW: a clinician must approve this plan before the patient gets it.",
    "do_not_exercise": "DO NOT EXERCISE YET: the referring doctor should see the patient first.",
}


def render_text(plan: dict) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"Exercise plan (engine {plan['engine_version']}, catalogue {plan['catalog_version']}, "
        f"as of {plan['as_of']})")
    add(DECISIONS.get(plan["decision"], plan["decision"]))
    risk = plan["risk"]
    add(f"Bone risk category {risk['bone_category']}; high falls risk: "
        f"{'yes' if risk['falls_high'] else 'no'}.")
    for reason in risk["reasons"]:
        add(f"  - {reason}")
    if plan["flags"]:
        add("")
        add("Flags:")
        for f in plan["flags"]:
            add(f"  [{f['severity']}] {f['code']}: {f['message']}")
    if plan["exercises"]:
        add("")
        add("Targets:")
        for comp, t in plan["targets"].items():
            effort = ", ".join(f"phase {k} {v}/10" for k, v in t["effort_max"].items())
            add(f"  {comp}: {t['days_per_week']} days/week, {t['minutes_per_week']} min/week "
                f"at full dose; effort up to {effort}")
        add("")
        add("Phases:")
        for p in plan["phases"]:
            weeks = f"weeks {p['week_from']}-{p['week_to']}" if p["week_to"] else f"week {p['week_from']} on"
            add(f"  {p['phase']}. {p['name']} ({weeks}): {p['changes']}")
        add("")
        add("Exercises:")
        for e in plan["exercises"]:
            start = "" if e["phase_from"] == 1 else f" (starts in phase {e['phase_from']})"
            add(f"  * {e['name']}{start}: {e['dose']['text']}, {e['days_per_week']} days a week")
            for step in e["instructions"]:
                add(f"      {step}")
            add(f"      Safety: {e['safety_cue']}")
            add(f"      Harder: {e['progression']}")
            add(f"      Easier: {e['regression']}")
        add("")
        add("Week:")
        names = {e["id"]: e["name"] for e in plan["exercises"]}
        for day in plan["weekly_schedule"]:
            label = " (rest from strength and aerobic)" if day["rest"] else ""
            add(f"  {day['day']}{label}: " + ", ".join(names.get(i, i) for i in day["exercises"]))
    add("")
    add("Precautions:")
    for p in plan["precautions"]:
        add(f"  - {p}")
    add("Stop and call if:")
    for s in plan["stop_and_call_if"]:
        add(f"  - {s}")
    if plan["excluded_exercises"]:
        add("")
        add("Not in this plan: " + ", ".join(f"{x['id']} ({x['rule']})" for x in plan["excluded_exercises"]))
    return "\n".join(lines) + "\n"
