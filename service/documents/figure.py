"""The line-art person: where each joint is, from a frame's joint angles.

Body units: the figure is about 1 tall standing. The side view faces right
(``x`` grows forward, ``y`` up); the front view faces the reader, the near
side on the right. Angles are degrees, as the catalogue's ``drawing`` data
gives them (planning/drawing.py completes it: every limb angle is
``[near, far]``). A frame's ``spine`` curves the trunk (degrees of bend
between its two ends; rounded +, hollow -).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TRUNK, NECK, HEAD_R = 0.30, 0.035, 0.065
UPPER_ARM, FOREARM = 0.165, 0.16
THIGH, SHANK, FOOT, HEEL = 0.245, 0.245, 0.085, 0.025
SHOULDER_HALF, HIP_HALF = 0.085, 0.05  # front view
Point = tuple[float, float]


def _dir(degrees: float) -> Point:
    r = math.radians(degrees)
    return math.cos(r), math.sin(r)


def _add(p: Point, length: float, degrees: float) -> Point:
    dx, dy = _dir(degrees)
    return p[0] + length * dx, p[1] + length * dy


@dataclass
class Body:
    """The joints of one frame (near side first in each pair)."""

    pelvis: Point
    chest: Point  # the shoulders' point (side view) / the neck's base (front)
    head: Point  # the head's centre
    face: float | None  # the direction the face looks (side view), degrees
    shoulders: list[Point]
    elbows: list[Point]
    hands: list[Point]
    hips: list[Point]
    knees: list[Point]
    ankles: list[Point]
    toes: list[Point]
    heels: list[Point]
    trunk_angle: float  # the direction pelvis -> chest, degrees
    spine: float = 0.0  # the trunk's bend (side view), degrees; rounded +

    def back_control(self) -> Point:
        """The control point of the trunk's curve (a quadratic bezier pelvis -> chest),
        on the back's side for a rounded spine."""
        (x0, y0), (x1, y1) = self.pelvis, self.chest
        length = math.hypot(x1 - x0, y1 - y0)
        bend = length / 2 * math.tan(math.radians(self.spine / 2))
        nx, ny = _dir(self.trunk_angle + 90)  # the back's side (the figure faces +x)
        return (x0 + x1) / 2 + nx * bend, (y0 + y1) / 2 + ny * bend

    def back(self) -> Point:
        """The middle of the back: the curve's midpoint."""
        cx, cy = self.back_control()
        (x0, y0), (x1, y1) = self.pelvis, self.chest
        return (x0 + 2 * cx + x1) / 4, (y0 + 2 * cy + y1) / 4

    def points(self) -> list[Point]:
        return [self.pelvis, self.chest, self.back(), *self.shoulders, *self.elbows, *self.hands, *self.hips,
                *self.knees, *self.ankles, *self.toes, *self.heels,
                (self.head[0], self.head[1] - HEAD_R), (self.head[0], self.head[1] + HEAD_R),
                (self.head[0] - HEAD_R, self.head[1]), (self.head[0] + HEAD_R, self.head[1])]

    def lowest(self) -> float:
        return min(y for _x, y in self.points())

    def moved(self, dx: float, dy: float) -> Body:
        def m(p: Point) -> Point:
            return p[0] + dx, p[1] + dy
        return Body(m(self.pelvis), m(self.chest), m(self.head), self.face,
                    *[[m(p) for p in ps] for ps in (self.shoulders, self.elbows, self.hands,
                                                     self.hips, self.knees, self.ankles, self.toes,
                                                     self.heels)],
                    trunk_angle=self.trunk_angle, spine=self.spine)

    def point(self, name: str) -> Point:
        """A named point (planning/drawing.py POINTS)."""
        far = name.endswith("_far")
        i = 1 if far else 0
        base = name.removesuffix("_far")
        return {"head": lambda: self.head, "chest": lambda: self.chest,
                "pelvis": lambda: self.pelvis, "back": self.back, "hand": lambda: self.hands[i],
                "elbow": lambda: self.elbows[i], "knee": lambda: self.knees[i],
                "foot": lambda: self.ankles[i], "heel": lambda: self.heels[i]}[base]()


def side_body(frame: dict) -> Body:
    """The side view: forward kinematics from the pelvis at (0, 0)."""
    t = frame["trunk"]
    up = 90 - t
    down = -90 - t
    pelvis = (0.0, 0.0)
    chest = _add(pelvis, TRUNK, up)
    neck = frame["neck"]
    spine = frame.get("spine", 0.0)
    head = _add(chest, NECK + HEAD_R, up - neck * 0.6 - spine / 2)
    out: dict[str, list[Point]] = {k: [] for k in ("shoulders", "elbows", "hands", "hips", "knees",
                                                   "ankles", "toes", "heels")}
    for i in (0, 1):
        thigh = down + frame["hip"][i]
        knee = _add(pelvis, THIGH, thigh)
        shank = thigh - frame["knee"][i]
        ankle = _add(knee, SHANK, shank)
        foot = shank + 90 - frame["ankle"][i]
        upper = down + frame["shoulder"][i]
        elbow = _add(chest, UPPER_ARM, upper)
        out["shoulders"].append(chest)
        out["elbows"].append(elbow)
        out["hands"].append(_add(elbow, FOREARM, upper + frame["elbow"][i]))
        out["hips"].append(pelvis)
        out["knees"].append(knee)
        out["ankles"].append(ankle)
        out["toes"].append(_add(ankle, FOOT, foot))
        out["heels"].append(_add(ankle, -HEEL, foot))
    return Body(pelvis, chest, head, -t - neck - spine / 2, trunk_angle=up, spine=spine, **out)


def front_body(frame: dict) -> Body:
    """The front view: ``hip`` and ``shoulder`` are abduction; ``elbow`` turns
    the forearm toward the midline (negative: outward and up)."""
    pelvis = (0.0, 0.0)
    chest = (0.0, TRUNK)
    head = (0.0, TRUNK + NECK + HEAD_R)
    out: dict[str, list[Point]] = {k: [] for k in ("shoulders", "elbows", "hands", "hips", "knees",
                                                   "ankles", "toes", "heels")}
    for i, side in ((0, 1.0), (1, -1.0)):
        def toward(p: Point, length: float, theta: float, _s: float = side) -> Point:
            r = math.radians(theta)
            return p[0] + _s * length * math.sin(r), p[1] - length * math.cos(r)
        hip = (side * HIP_HALF, 0.0)
        a = frame["hip"][i]
        knee = toward(hip, THIGH, a)
        ankle = toward(knee, SHANK * math.cos(math.radians(frame["knee"][i] * 0.5)), a)
        shoulder = (side * SHOULDER_HALF, TRUNK - 0.02)
        s = frame["shoulder"][i]
        elbow = toward(shoulder, UPPER_ARM, s)
        hand = toward(elbow, FOREARM, s - frame["elbow"][i])
        out["shoulders"].append(shoulder)
        out["elbows"].append(elbow)
        out["hands"].append(hand)
        out["hips"].append(hip)
        out["knees"].append(knee)
        out["ankles"].append(ankle)
        out["toes"].append((ankle[0] + side * 0.045, ankle[1] - 0.01))
        out["heels"].append(ankle)
    return Body(pelvis, chest, head, None, trunk_angle=90, **out)


def body(frame: dict, view: str) -> Body:
    return front_body(frame) if view == "front" else side_body(frame)
