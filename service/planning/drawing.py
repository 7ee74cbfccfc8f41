"""The drawing data of a catalogue entry: its vocabulary and validation.

An exercise's ``drawing`` says how refflow draws it (``documents/drawings.py``
draws it; planning only checks and completes the data)::

    {"view": "side",                      # or "front"
     "props": ["chair"],                  # see PROPS
     "start": {"pose": "sit", "trunk": 20},
     "end": {"pose": "stand"},            # optional: a held position has one frame
     "arrows": ["pelvis"],                # body points that move, start -> end; or WALKS
     "cue": "Back straight",              # a short caption under the drawing
     "guide": "back",                     # optional: a visible cue (see GUIDES)
     "layout": "apart"}                   # optional: see LAYOUTS

A frame is a ``pose`` from POSES and any joint angles (degrees) that change
it: ``trunk`` (lean from upright, forward +), ``neck``, ``hip``, ``knee``,
``ankle`` (toes pointed +), ``shoulder``, ``elbow`` (flexion +; in the front
view ``hip`` and ``shoulder`` are abduction and ``elbow`` bends the forearm
toward the midline). A limb angle is one number (both sides) or
``[near, far]``. ``spine`` curves the back in the side view (degrees of
bend along it: rounded +, hollow -). ``hands`` puts the hands on a prop (``"counter"``,
``"wall"``, ``"rail"``), ``on`` stands the figure on the step.

``layout`` says how two positions are shown: ``"apart"`` side by side with
an arrow between them, or ``"overlay"`` in one picture, the start dashed
under the end (a lying or kneeling body is wide: side by side it would be
small). It defaults to ``"overlay"`` when both positions are on the floor
(FLOOR_POSES), else ``"apart"``.

The data is completed here (a pose's angles filled in, every angle as
``[near, far]``) so that what a plan carries is all the drawer needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

VIEWS = ("side", "front")
PROPS = ("chair", "wall", "counter", "band", "step", "mat", "dumbbells", "ankle_weight", "strap",
         "poles", "water", "bike", "doorway", "rail", "box", "rope", "racquet", "club", "barbell",
         "pillow", "machine", "rower", "leg_press")
JOINTS = ("trunk", "neck", "hip", "knee", "ankle", "shoulder", "elbow")
LIMBS = ("hip", "knee", "ankle", "shoulder", "elbow")
HANDS = ("free", "counter", "wall", "rail", "thighs", "chest", "head")
ON = ("floor", "step")
GUIDES = ("back", "upright")
POINTS = ("head", "chest", "back", "pelvis", "hand", "hand_far", "elbow", "elbow_far", "knee", "knee_far",
          "foot", "foot_far", "heel")
WALKS = ("walk_forward", "walk_back", "walk_side", "turn", "circle")
ANCHORS = ("auto", "foot", "foot_far", "pelvis", "knee", "hand")
LAYOUTS = ("apart", "overlay")
FLOOR_POSES = ("lie_back", "lie_back_knees_bent", "lie_front", "hands_knees")

# The pose vocabulary: the angles each pose starts from.
POSES: dict[str, dict[str, float]] = {
    "stand": {"trunk": 0, "neck": 0, "hip": 0, "knee": 0, "ankle": 0, "shoulder": 0, "elbow": 10},
    "sit": {"trunk": 0, "neck": 0, "hip": 90, "knee": 90, "ankle": 0, "shoulder": 10, "elbow": 70},
    "lie_back": {"trunk": -90, "neck": 0, "hip": 0, "knee": 0, "ankle": 0, "shoulder": 0, "elbow": 0},
    "lie_back_knees_bent": {"trunk": -90, "neck": 0, "hip": 50, "knee": 100, "ankle": 0,
                            "shoulder": 0, "elbow": 0},
    "lie_front": {"trunk": 90, "neck": 0, "hip": 0, "knee": 0, "ankle": 60, "shoulder": 0, "elbow": 0},
    "hands_knees": {"trunk": 90, "neck": 0, "hip": 90, "knee": 90, "ankle": 80, "shoulder": 90,
                    "elbow": 0},
    "at_wall": {"trunk": 10, "neck": 0, "hip": 0, "knee": 0, "ankle": 0, "shoulder": 80, "elbow": 20},
    "hold_counter": {"trunk": 0, "neck": 0, "hip": 0, "knee": 0, "ankle": 0, "shoulder": 35,
                     "elbow": 50},
}
# What a pose implies unless the frame says otherwise.
POSE_HANDS = {"at_wall": "wall", "hold_counter": "counter", "sit": "thighs"}
LIMITS = {"trunk": (-120, 120), "neck": (-60, 60), "hip": (-60, 150), "knee": (0, 160),
          "ankle": (-40, 80), "shoulder": (-90, 200), "elbow": (-180, 180), "spine": (-60, 90)}
CUE_MAX = 60


class DrawingError(ValueError):
    """A ``drawing`` is malformed (the message names the key)."""


def _angle(value: Any, where: str, joint: str) -> list[float]:
    values = value if isinstance(value, list) and len(value) == 2 else [value, value]
    low, high = LIMITS[joint]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            raise DrawingError(f"drawing.{where}.{joint} must be a number of degrees from {low} to "
                               f"{high}, or a [near, far] pair")
        out.append(float(v))
    return out


def _frame(frame: Any, where: str, view: str) -> dict:
    if not isinstance(frame, Mapping):
        raise DrawingError(f"drawing.{where} must be an object")
    unknown = set(frame) - set(JOINTS) - {"pose", "hands", "on", "spine"}
    if unknown:
        raise DrawingError(f"drawing.{where} has unknown key {sorted(unknown)[0]!r}")
    pose = frame.get("pose", "stand")
    if pose not in POSES:
        raise DrawingError(f"drawing.{where}.pose is not one of " + ", ".join(POSES))
    if view == "front" and pose != "stand":
        raise DrawingError(f"drawing.{where}.pose must be 'stand' in the front view")
    out: dict[str, Any] = {"pose": pose}
    base = dict(POSES[pose])
    if view == "front":
        base.update(hip=0, shoulder=5, elbow=0)
    for joint in JOINTS:
        value = frame.get(joint, base[joint])
        angles = _angle(value, where, joint)
        out[joint] = angles[0] if joint in ("trunk", "neck") else angles
    if view == "front" and frame.get("spine"):
        raise DrawingError(f"drawing.{where}.spine is drawn in the side view only")
    out["spine"] = _angle(frame.get("spine", 0), where, "spine")[0]
    hands = frame.get("hands", POSE_HANDS.get(pose, "free"))
    if hands not in HANDS:
        raise DrawingError(f"drawing.{where}.hands is not one of " + ", ".join(HANDS))
    on = frame.get("on", "floor")
    if on not in ON:
        raise DrawingError(f"drawing.{where}.on is not one of " + ", ".join(ON))
    out["hands"], out["on"] = hands, on
    return out


def validate_drawing(drawing: Any) -> dict:
    """The completed drawing data, or ``DrawingError`` naming what is wrong."""
    if not isinstance(drawing, Mapping):
        raise DrawingError("drawing must be an object")
    unknown = set(drawing) - {"view", "props", "start", "end", "arrows", "cue", "guide", "anchor",
                              "layout"}
    if unknown:
        raise DrawingError(f"drawing has unknown key {sorted(unknown)[0]!r}")
    view = drawing.get("view", "side")
    if view not in VIEWS:
        raise DrawingError("drawing.view is not one of " + ", ".join(VIEWS))
    props = drawing.get("props") or []
    if not isinstance(props, list) or any(p not in PROPS for p in props):
        raise DrawingError("drawing.props must be a list of " + ", ".join(PROPS))
    if "start" not in drawing:
        raise DrawingError("drawing.start is missing")
    out: dict[str, Any] = {"view": view, "props": list(dict.fromkeys(props)),
                           "start": _frame(drawing["start"], "start", view)}
    if drawing.get("end") is not None:
        out["end"] = _frame(drawing["end"], "end", view)
    arrows = drawing.get("arrows") or []
    if not isinstance(arrows, list) or any(a not in POINTS + WALKS for a in arrows):
        raise DrawingError("drawing.arrows must be a list of body points (" + ", ".join(POINTS)
                           + ") or movements (" + ", ".join(WALKS) + ")")
    if any(a in POINTS for a in arrows) and "end" not in out:
        raise DrawingError("drawing.arrows names a body point but there is no end position")
    out["arrows"] = list(arrows)
    cue = drawing.get("cue", "")
    if not isinstance(cue, str) or len(cue) > CUE_MAX:
        raise DrawingError(f"drawing.cue must be a short text (at most {CUE_MAX} characters)")
    out["cue"] = cue
    guide = drawing.get("guide")
    if guide is not None and guide not in GUIDES:
        raise DrawingError("drawing.guide is not one of " + ", ".join(GUIDES))
    out["guide"] = guide
    anchor = drawing.get("anchor", "auto")
    if anchor not in ANCHORS:
        raise DrawingError("drawing.anchor is not one of " + ", ".join(ANCHORS))
    out["anchor"] = anchor
    frames = [out["start"]] + ([out["end"]] if "end" in out else [])
    floor = all(f["pose"] in FLOOR_POSES for f in frames)
    layout = drawing.get("layout", "overlay" if floor and len(frames) > 1 else "apart")
    if layout not in LAYOUTS:
        raise DrawingError("drawing.layout is not one of " + ", ".join(LAYOUTS))
    out["layout"] = layout
    return out
