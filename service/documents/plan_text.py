"""The plan engine's own English sentences, as msgids, so the handout can
give them in the patient's language.

The engine (``planning/rules.py``: stages, precautions, the fall plan, "stop
and call us if…") writes English; documents may not import planning, so the
fixed sentences are listed here and the stage sentences, which carry
numbers, are matched by pattern. A sentence the engine writes that is not
here is shown as written (tests/documents/test_handout_spanish.py checks
that the engine's sentences are all here).
"""

from __future__ import annotations

import re

from refflow.documents.translations import N_, SOURCE_LANGUAGE, _, current_language, ngettext

FALL_PLAN_TITLE = N_("If you fall and cannot get up")

SENTENCES = (
    # precautions (planning.rules.precautions)
    N_("Do not start an exercise program until your doctor has seen you."),
    N_("Start slowly: the first two weeks are easier on purpose."),
    N_("Breathe out as you lift or push; never hold your breath."),
    N_("Bend at your hips and knees with a straight back; avoid bending forward from the waist, "
       "especially when lifting or twisting."),
    N_("Do not do sit-ups, crunches, toe touches, deep forward bends or forced twists."),
    N_("Do not jump or skip."),
    N_("Do not jump, skip or jog."),
    N_("Do not lift anything from the floor and avoid heavy lifting; work on good form before "
       "adding weight."),
    N_("Do every balance exercise next to a kitchen counter or sturdy support."),
    N_("Keep your walking aid nearby and the floor clear."),
    N_("Keep the floor clear."),
    N_("Do not do exercises on the floor."),
    N_("Mild effort or stretch is fine."),
    N_("If pain during exercise goes above 5 out of 10, or is new or worse the next day, go back "
       "to the previous stage."),
    N_("Move to the next stage only if pain stays at 3 out of 10 or less and is no worse the next "
       "day, you have had no falls or near-falls, and you did at least 2 of every 3 sessions."),
    N_("Change one thing at a time: repeats, then sets, then weight."),
    N_("See your therapist again at 12 weeks, and after any fall, new fracture or new diagnosis."),
    # the fall plan (planning.rules.FALL_PLAN)
    N_("Stay calm and do not rush."),
    N_("Check if you are hurt."),
    N_("If you can, roll onto your side, then get onto your hands and knees."),
    N_("Crawl to a sturdy chair, put your hands on the seat and slowly get up."),
    N_("If you cannot get up, call for help: use your phone or your alarm button, or shout."),
    N_("While you wait, keep warm with anything nearby and move your legs now and then."),
    N_("Tell your therapist about every fall, even if you were not hurt."),
    # stop and call us if (planning.rules.stop_and_call)
    N_("You have chest pain or tightness."),
    N_("Call 911 if rest does not stop it."),
    N_("You feel dizzy, light-headed or faint."),
    N_("You are very short of breath."),
    N_("You have sudden new back pain, or back pain that is much worse."),
    N_("You fall and are hurt, or you hit your head."),
    N_("You have new numbness or weakness in your legs, or new trouble controlling your bladder "
       "or bowels."),
    N_("You fall while taking a blood thinner, even if you feel fine."),
    N_("You feel shaky, sweaty or confused (possible low blood sugar)."),
    # the stages (planning.rules.phases)
    N_("Get started"), N_("Build up"), N_("Reach your goal"), N_("Keep it up"),
    N_("Learn each exercise."),
    N_("Balance: 15-20 minutes a day in all."),
    N_("Do the stage 3 amounts."),
    N_("Tai chi or dancing can be added for balance."),
)
_KNOWN = frozenset(SENTENCES)

_N = r"(\d+)"
_RANGE = r"(\d+(?:-\d+)?)"
_PATTERNS: tuple[tuple[re.Pattern, object], ...] = ()


def _sets(n: str) -> str:
    return ngettext("{n} set", "{n} sets", int(n)).format(n=n)


def _what(word: str, names: dict[str, str]) -> str | None:
    if word == "Walking":
        return _("Walking")
    return names.get(word)


def _pattern(regex: str):
    def add(func):
        global _PATTERNS
        _PATTERNS += ((re.compile(regex + r"$"), func),)
        return func
    return add


@_pattern(rf"Strength: {_N} sets? of {_RANGE}, effort up to {_N} out of 10\.")
def _strength(m, names):
    return _("Strength: {sets} of {reps}, effort up to {effort} out of 10.").format(
        sets=_sets(m[1]), reps=m[2], effort=m[3])


@_pattern(rf"Strength: {_N} sets? of {_RANGE} \(a new exercise starts with {_N} sets?\), "
          rf"effort up to {_N} out of 10\.")
def _strength_two(m, names):
    return _("Strength: {sets} of {reps} (a new exercise starts with {start}), effort up to "
             "{effort} out of 10.").format(sets=_sets(m[1]), reps=m[2], start=_sets(m[3]),
                                            effort=m[4])


@_pattern(rf"(.+): {_N} minutes, effort up to {_N} out of 10\.")
def _aerobic_one(m, names):
    what = _what(m[1], names)
    return what and _("{what}: {minutes} minutes, effort up to {effort} out of 10.").format(
        what=what, minutes=m[2], effort=m[3])


@_pattern(rf"(.+): add 5 minutes a week, up to {_N} minutes, effort up to {_N} out of 10\.")
def _aerobic_two(m, names):
    what = _what(m[1], names)
    return what and _("{what}: add 5 minutes a week, up to {minutes} minutes, effort up to "
                      "{effort} out of 10.").format(what=what, minutes=m[2], effort=m[3])


@_pattern(r"Balance: about 10 minutes a day in all, (always beside a support|at a counter), "
          r"holding on with both hands: go through your balance exercises again until the time "
          r"is up\.")
def _balance_one(m, names):
    support = (_("always beside a support") if m[1] == "always beside a support"
               else _("at a counter"))
    return _("Balance: about 10 minutes a day in all, {support}, holding on with both hands: go "
             "through your balance exercises again until the time is up.").format(support=support)


@_pattern(r"Balance: about 15 minutes a day(; start the moving exercises)?; hold on with one "
          r"hand, then fingertips\.")
def _balance_two(m, names):
    if m[1]:
        return _("Balance: about 15 minutes a day; start the moving exercises; hold on with one "
                 "hand, then fingertips.")
    return _("Balance: about 15 minutes a day; hold on with one hand, then fingertips.")


@_pattern(r"Posture: (.+), repeated to fill 5-10 minutes a day\.")
def _posture(m, names):
    dose = names.get("dose:" + m[1])
    return dose and _("Posture: {dose}, repeated to fill 5-10 minutes a day.").format(dose=dose)


@_pattern(rf"(.+): start with {_N}, adding 5 a week\.")
def _impact_two(m, names):
    what = names.get(m[1])
    return what and _("{what}: start with {n}, adding 5 a week.").format(what=what, n=m[2])


@_pattern(rf"(.+): up to {_N}\.")
def _impact_three(m, names):
    what = names.get(m[1])
    return what and _("{what}: up to {n}.").format(what=what, n=m[2])


def translate_sentence(sentence: str, names: dict[str, str]) -> str | None:
    """One English sentence of the plan in the current language, or None."""
    sentence = sentence.strip()
    if sentence in _KNOWN:
        return _(sentence)
    if sentence.startswith(FALL_PLAN_TITLE + ": "):
        rest = translate_sentence(sentence[len(FALL_PLAN_TITLE) + 2:], names)
        return rest and f"{_(FALL_PLAN_TITLE)}: {rest}"
    for regex, func in _PATTERNS:
        m = regex.match(sentence)
        if m:
            return func(m, names) or None
    return None


_SENTENCE_END = re.compile(r"(?<=[.!?]) (?=[A-Z])")


def plan_sentence(text: str, names: dict[str, str] | None = None) -> str | None:
    """One of the plan's texts (a precaution, a "stop and call" item, a
    stage) in the current language, or None when there is no translation (a
    plugin's or a clinician's own words). ``names`` maps the English exercise
    names the stages mention to the translated ones."""
    if current_language() == SOURCE_LANGUAGE:
        return text
    out = []
    for sentence in _SENTENCE_END.split(text.strip()):
        translated = translate_sentence(sentence, names or {})
        if translated is None:
            return None
        out.append(translated)
    return " ".join(out)
