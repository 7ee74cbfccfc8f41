"""The weekly schedule: which exercises on which day (guidance §4, TFTF 2014).

Strength on 2-3 non-consecutive days (Mon/Thu or Mon/Wed/Fri), aerobic on
3-5 days, impact loading on 3 days, balance, posture and mobility daily.
Sunday is always a rest day from strength, aerobic and impact work (the
short daily routine of balance, posture and mobility continues).

Sessions are kept short and even: aerobic days avoid strength days where the
week allows it, and exercises that are not daily (impact loading, the extra
balance work for high falls risk, a plugin's twice-weekly class) go on the
days with the fewest exercises so far (ties: Tue, Thu, Sat, Wed, Fri, Mon,
Sun). The schedule is derived from the exercises, so it is rebuilt after
plugin adjusters run.
"""

from __future__ import annotations

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
STRENGTH_PATTERN = {2: (0, 3), 3: (0, 2, 4)}
# (strength days, aerobic days) -> aerobic days; no strength day is used unless the week needs it
AEROBIC_PATTERN = {
    2: {2: (1, 4), 3: (1, 2, 5), 4: (1, 2, 4, 5), 5: (0, 1, 2, 4, 5)},
    3: {2: (1, 5), 3: (1, 3, 5), 4: (0, 1, 3, 5), 5: (1, 2, 3, 4, 5)},
}
TIE_ORDER = (1, 3, 5, 2, 4, 0, 6)
TRAINING_DAYS = (0, 1, 2, 3, 4, 5)  # Sunday rests from strength, aerobic and impact
ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)
TRAINING = ("strength", "aerobic", "impact")


def _clamp(value, low: int, high: int, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return max(low, min(high, value))


def component(exercise: dict) -> str:
    return exercise.get("component") or exercise.get("category") or "mobility"


def empty_schedule() -> list[dict]:
    return [{"day": name, "exercises": [], "rest": True} for name in DAY_NAMES]


def _lightest(load: list[int], n: int, candidates: tuple[int, ...]) -> tuple[int, ...]:
    by_load = sorted(candidates, key=lambda day: (load[day], TIE_ORDER.index(day)))
    return tuple(sorted(by_load[:n]))


def build_schedule(exercises: list[dict], targets: dict) -> list[dict]:
    """Place every exercise on its days; sets each exercise's ``days_per_week``."""
    strength_n = _clamp(targets.get("strength", {}).get("days_per_week"), 2, 3, 2)
    aerobic_n = _clamp(targets.get("aerobic", {}).get("days_per_week"), 2, 5, 3)
    aerobic_days = AEROBIC_PATTERN[strength_n][aerobic_n]
    aerobic = [e for e in exercises if component(e) == "aerobic"]
    assigned: dict[int, list[int]] = {id(e): [] for e in aerobic}
    if aerobic:
        secondary = aerobic[1:]
        share = min(2 * len(secondary), len(aerobic_days) - 1) if secondary else 0
        for i, day in enumerate(aerobic_days):
            slot = i - (len(aerobic_days) - share)
            owner = secondary[slot % len(secondary)] if slot >= 0 else aerobic[0]
            assigned[id(owner)].append(day)
        for k, e in enumerate(aerobic):  # more alternatives than days: share a day
            if not assigned[id(e)]:
                assigned[id(e)].append(aerobic_days[k % len(aerobic_days)])
    patterns: dict[int, tuple[int, ...]] = {}
    flexible: list[tuple[dict, int, tuple[int, ...]]] = []
    for e in exercises:
        comp = component(e)
        if comp == "strength":
            patterns[id(e)] = STRENGTH_PATTERN[strength_n]
        elif comp == "aerobic":
            patterns[id(e)] = tuple(sorted(assigned[id(e)]))
        elif comp == "impact":
            flexible.append((e, _clamp(e.get("days_per_week"), 3, 6, 3), TRAINING_DAYS))
        else:
            n = _clamp(e.get("days_per_week"), 1, 7, 7)
            if n == 7:
                patterns[id(e)] = ALL_DAYS
            else:
                flexible.append((e, n, ALL_DAYS))
    load = [0] * 7
    for pattern in patterns.values():
        for day in pattern:
            load[day] += 1
    for e, n, candidates in flexible:  # exercise order: deterministic
        pattern = _lightest(load, n, candidates)
        patterns[id(e)] = pattern
        for day in pattern:
            load[day] += 1
    days: list[list[str]] = [[] for _ in DAY_NAMES]
    for e in exercises:
        pattern = patterns[id(e)]
        e["days_per_week"] = len(pattern)
        for day in pattern:
            days[day].append(e["id"])
    training = {e["id"] for e in exercises if component(e) in TRAINING}
    return [{"day": name, "exercises": ids, "rest": not any(i in training for i in ids)}
            for name, ids in zip(DAY_NAMES, days)]
