"""Exercise drawings: a line-art person in the start and end positions.

Drawn with ReportLab vector graphics from an exercise's ``drawing`` data
(the catalogue's, completed by planning/drawing.py and carried in the plan's
exercise dicts): the figure (documents/figure.py), the props it uses (chair,
wall, counter, band, step, mat, ...), arrows for the movement and, where it
can be seen, the safety cue (a straight guide line along the back). Two
positions stand side by side (``layout`` "apart") or, for a body on the
floor, in one picture with the start dashed under the end ("overlay").
Props are placed clear of the figure. Black on
white with strokes of 1.8 pt or more, so that a drawing 80 pt tall stays
legible in a fax at normal resolution (204 x 98 dpi).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from reportlab.pdfgen.canvas import Canvas

from refflow.documents.figure import HEAD_R, Body, Point, body
from refflow.documents.fonts import BOLD, REGULAR, ensure_fonts

BODY_PT = 3.0  # the person
FAR_PT = 2.2  # the far arm and leg
PROP_PT = 1.8  # furniture, arrows' shafts
STEP_H, BOX_H = 0.1, 0.22
ROWER_SEAT, LEG_PRESS_SEAT = 0.1, 0.2  # how high the machine holds the person (body units)
CAPTION_SIZE = 12  # the handout's smallest type
ARROW_GAP = 26.0  # points between the two positions, for the big arrow
STAND_H = 1.06  # a standing person's drawing, floor to head with the margins (body units)
MAX_ZOOM = 2.0  # nothing is drawn bigger than this many times a standing person's size
START_DASH = (4, 3)  # the start position's pattern in an overlay (points on, off)

Shape = tuple  # ("line", p, q) | ("rect", x, y, w, h) | ("circle", c, r) | ("poly", [p...]) ...


class DrawingDataError(ValueError):
    """The drawing data cannot be drawn (it was not completed by the catalogue)."""


class Scene:
    """The frames of one drawing, grounded and aligned, in body units."""

    def __init__(self, drawing: dict) -> None:
        try:
            self.view = drawing.get("view", "side")
            self.frames = [drawing["start"]] + ([drawing["end"]] if drawing.get("end") else [])
            self.props = list(drawing.get("props") or [])
            self.arrows = list(drawing.get("arrows") or [])
            self.guide = drawing.get("guide")
            self.cue = str(drawing.get("cue") or "")
            self.overlay = drawing.get("layout") == "overlay" and len(self.frames) > 1
            anchor = drawing.get("anchor", "auto")
            if anchor == "auto":  # what stays put: the hands on a support, else the far foot
                held = all(f.get("hands") in ("counter", "wall", "rail") for f in self.frames)
                anchor = "hand" if held else "foot_far"
            self.bodies = [self._place(body(f, self.view), f, anchor) for f in self.frames]
        except (KeyError, TypeError, IndexError) as exc:
            raise DrawingDataError(f"drawing data is incomplete ({exc})") from None
        self.step_x = self._step_x()
        self.static = self._static_props()

    def _step_x(self) -> float | None:
        """Where the step (or box) starts, under the feet on it; a position beside it
        on the floor moves back off it."""
        if "step" not in self.props and "box" not in self.props:
            return None
        height = BOX_H if "box" in self.props else STEP_H
        pairs = list(zip(self.frames, self.bodies))
        on = [b for f, b in pairs if f.get("on") == "step"]
        raised = [b for b in self.bodies if b.ankles[0][1] > 0.06 and b.ankles[0][1] - b.lowest() > 0.06]
        ref = (on or raised or [self.bodies[-1]])[0]
        x = min(ref.heels[0][0], ref.toes[0][0], *([ref.heels[1][0]] if on else [])) - 0.03
        for k, (f, b) in enumerate(pairs):
            low = [px for px, py in b.points() if py < height - 0.01]
            if f.get("on") != "step" and low and max(low) > x - 0.03:
                self.bodies[k] = b.moved(x - 0.05 - max(low), 0.0)
        return x

    def _place(self, b: Body, frame: dict, anchor: str) -> Body:
        floor = 0.0
        if frame.get("on") == "step":
            floor = BOX_H if "box" in self.props else STEP_H
        elif "rower" in self.props:
            floor = ROWER_SEAT
        elif "leg_press" in self.props:
            floor = LEG_PRESS_SEAT
        dy = floor - b.lowest()
        ax = b.point(anchor)[0]
        return b.moved(-ax, dy)

    # -- props that stay put: placed from the frames --------------------------------------
    def _static_props(self) -> list[tuple[str, Shape]]:
        out: list[tuple[str, Shape]] = []
        bodies, frames = self.bodies, self.frames
        xs = [x for b in bodies for x, _ in b.points()]
        lo, hi = min(xs), max(xs)
        if "mat" in self.props:
            out.append(("prop", ("rect", lo - 0.06, -0.025, hi - lo + 0.12, 0.025)))
        if "chair" in self.props:
            i = min(range(len(bodies)), key=lambda k: bodies[k].pelvis[1])
            p = bodies[i].pelvis
            seat = p[1] - 0.035
            if frames[i].get("pose") != "sit" and seat > 0.3:
                seat = 0.27
            # the seat's front edge behind the lower legs (standing in front of the chair)
            shins = [x for b in bodies for x, y in (*b.knees, *b.ankles, *b.heels, *b.toes)
                     if y < seat + 0.05]
            front = min([p[0] + 0.17] + [x - 0.03 for x in shins])
            back = min(p[0] - 0.09, front - 0.22)
            out += [("prop", ("line", (back, seat), (front, seat))),
                    ("prop", ("line", (back, 0), (back, seat + 0.3))),
                    ("prop", ("line", (front, 0), (front, seat)))]
        if "bike" in self.props:
            b = bodies[0]
            p = b.pelvis
            crank = ((b.ankles[0][0] + b.ankles[1][0]) / 2, (b.ankles[0][1] + b.ankles[1][1]) / 2)
            out += [("prop", ("line", (p[0] - 0.07, p[1] - 0.03), (p[0] + 0.07, p[1] - 0.03))),
                    ("prop", ("line", (p[0], p[1] - 0.03), crank)),
                    ("prop", ("circle", crank, 0.07)),
                    ("prop", ("line", crank, b.hands[0])),
                    ("prop", ("line", (crank[0] - 0.25, 0), (crank[0] + 0.3, 0)))]
        held = [(f, b) for f, b in zip(frames, bodies)]
        self.walk = self._walk_arrow()
        if "counter" in self.props:
            hand = next((b.hands[self._holding(b)] for f, b in held if f.get("hands") == "counter"),
                        None)
            hx, top = (hand[0], hand[1]) if hand else (hi + 0.06, 0.5)
            # the side the hand reaches to (the front view's far hand: the left)
            side = -1 if hand and hand[0] < bodies[0].pelvis[0] else 1
            # the cupboard stands clear of the legs (and of a walk's arrow); its top
            # reaches back to the hand. Worked out on the hand's side as if it were the right.
            below = [side * x for b in bodies for x, y in b.points() if y < top - 0.02]
            walk = [side * v + 0.05 for v in self.walk[:2]] if self.walk else []
            x = max([side * hx - 0.02] + [v + 0.05 for v in below] + walk)
            near, far = min(side * hx, x) - 0.03, x + 0.3
            out += [("prop", ("rect", x if side > 0 else -far, 0, 0.3, top)),
                    ("prop", ("line", (side * near, top), (side * far, top)))]
        for name in ("wall", "doorway"):
            if name not in self.props:
                continue
            hand = next((b.hands[0] for f, b in held if f.get("hands") == "wall"), None)
            if hand is None and name == "doorway":
                hand = bodies[0].elbows[0]
            x = hand[0] + 0.015 if hand else lo - 0.02
            side = 1 if hand else -1
            out.append(("prop", ("line", (x, 0), (x, 1.1))))
            out += [("thin", ("line", (x, y), (x + side * 0.05, y + 0.05)))
                    for y in (0.1, 0.35, 0.6, 0.85)]
            if name == "doorway":
                out.append(("prop", ("line", (x, 1.1), (x + 0.2, 1.1))))
        if self.step_x is not None:
            height, x = BOX_H if "box" in self.props else STEP_H, self.step_x
            out.append(("prop", ("rect", x, 0, 0.3, height)))
            post = max(x + 0.24, hi + 0.06)
            self.rail_post: tuple[float, float] = (post, height if post <= x + 0.3 else 0.0)
        else:
            self.rail_post = (hi + 0.06, 0.0)
        if "water" in self.props:
            y = bodies[0].chest[1] - 0.06
            pts = [(lo - 0.15 + k * 0.05, y + (0.015 if k % 2 else -0.015)) for k in range(
                int((hi - lo + 0.3) / 0.05) + 1)]
            out.append(("prop", ("poly", pts)))
        if "machine" in self.props:
            b = bodies[0]
            hand = b.hands[0]
            self.pulley: Point | None = None
            if hand[1] > b.chest[1]:  # a pulley overhead (the cable is the frame's), on a frame ahead
                top = max(y for bb in bodies for _, y in bb.points()) + 0.06
                self.pulley = (hand[0], top)
                out += [("prop", ("line", (hand[0] - 0.04, top), (hi + 0.12, top))),
                        ("prop", ("line", (hi + 0.12, 0), (hi + 0.12, top)))]
            else:  # handles down to the machine's base
                out.append(("prop", ("line", hand, (hand[0] + 0.12, 0))))
            out.append(("prop", ("line", (lo - 0.1, 0), (hi + 0.2, 0))))
        if "rower" in self.props:  # a low rail from behind the seat to the flywheel
            back = min(b.pelvis[0] for b in bodies) - 0.12
            toe = max(max(b.toes[0][0], b.ankles[0][0]) for b in bodies)
            wheel = (toe + 0.14, ROWER_SEAT + 0.1)
            rail = ROWER_SEAT / 2
            out += [("prop", ("line", (back, rail), (wheel[0], rail))),
                    ("prop", ("line", (back, 0), (back, rail))),
                    ("prop", ("line", (wheel[0], 0), wheel)),
                    ("prop", ("circle", wheel, 0.07))]
            self.rower_wheel: Point = wheel
        if "leg_press" in self.props:  # the seat and back pad, the sled's track under the plate
            b = bodies[0]
            ang = math.radians(b.trunk_angle)
            ux, uy = math.cos(ang), math.sin(ang)
            nx, ny = -uy, ux  # behind the back (the figure faces +x)
            if nx > 0:
                nx, ny = -nx, -ny
            p, q = b.pelvis, b.chest
            pad = [(p[0] + nx * 0.05, p[1] + ny * 0.05), (q[0] + nx * 0.05 + ux * 0.05,
                                                          q[1] + ny * 0.05 + uy * 0.05)]
            seat = p[1] - 0.04
            soles = [((b.heels[0][0] + b.toes[0][0]) / 2, (b.heels[0][1] + b.toes[0][1]) / 2)
                     for b in bodies]
            far = max(soles)
            out += [("prop", ("line", pad[0], pad[1])),
                    ("prop", ("line", (p[0] - 0.02, seat), (p[0] + 0.12, seat))),
                    ("prop", ("line", (p[0] + 0.05, seat), (p[0] + 0.05, 0))),
                    ("prop", ("line", (far[0] + 0.08, 0), (far[0] + 0.08, far[1])))]
        if "band" in self.props and self.view == "side":
            h = bodies[0].hands[0]
            self.band_anchor: Point | None = (max(h[0], hi) + 0.2, h[1])
            out += [("prop", ("rect", self.band_anchor[0], self.band_anchor[1] - 0.03, 0.03, 0.06))]
        else:
            self.band_anchor = None
        return out

    def _holding(self, b: Body) -> int:
        """Which hand holds the support: the near one, or in the front view the one
        reaching further out."""
        if self.view != "front":
            return 0
        return 1 if abs(b.hands[1][0] - b.pelvis[0]) > abs(b.hands[0][0] - b.pelvis[0]) else 0

    def _rail(self, hand: Point) -> list[tuple[str, Shape]]:
        """A handrail under the hand, rising at a stair's slope to a post ahead of the
        person (the hand slides along it, so each position has its own)."""
        (x, height), slope = self.rail_post, 0.35 if "step" in self.props else 0.0
        top = hand[1] - 0.01 + slope * (x - hand[0])
        return [("prop", ("line", (hand[0] - 0.06, hand[1] - 0.01 - slope * 0.06), (x, top))),
                ("prop", ("line", (x, height), (x, top)))]

    def _walk_arrow(self) -> tuple[float, float, float] | None:
        """A walk's arrow beside the figure: (from x, to x, height) in body units."""
        kind = next((a for a in self.arrows if a in ("walk_forward", "walk_back", "walk_side")), None)
        if kind is None:
            return None
        xs = [x for b in self.bodies for x, _ in b.points()]
        y = 0.3 if kind != "walk_side" else 0.15
        if kind == "walk_back":
            return min(xs) - 0.04, min(xs) - 0.24, y
        return max(xs) + 0.04, max(xs) + 0.24, y

    def figure_lines(self, k: int) -> list[tuple[Point, Point]]:
        """The straight strokes of the person in frame ``k`` (for checks that props
        stay clear of the figure); a curved back as its two halves."""
        b = self.bodies[k]
        out = []
        for i in (0, 1):
            out += [(b.hips[i], b.knees[i]), (b.knees[i], b.ankles[i]), (b.heels[i], b.toes[i]),
                    (b.shoulders[i], b.elbows[i]), (b.elbows[i], b.hands[i])]
        out += [(b.pelvis, b.back()), (b.back(), b.chest)]
        if self.view == "front":
            out += [(b.shoulders[1], b.shoulders[0]), (b.hips[1], b.hips[0])]
        return out

    def frame_props(self, k: int) -> list[tuple[str, Shape]]:
        """Props that move with the person in frame ``k``."""
        b, out = self.bodies[k], []
        near, far = b.hands
        if "band" in self.props:
            if self.band_anchor is not None:
                out.append(("prop", ("line", near, self.band_anchor)))
            else:
                out.append(("prop", ("line", near, far)))
        if "rail" in self.props:
            out += self._rail(near)
        if "machine" in self.props and self.pulley is not None:
            out.append(("prop", ("line", near, self.pulley)))
        if "rower" in self.props:  # the seat on the rail, the foot plate, the handle's chain
            p = b.pelvis
            out += [("prop", ("rect", p[0] - 0.07, ROWER_SEAT / 2, 0.14, p[1] - 0.035 - ROWER_SEAT / 2)),
                    ("prop", ("line", near, self.rower_wheel)),
                    _sole_plate(b)]
        if "leg_press" in self.props:
            out.append(_sole_plate(b))
        if "strap" in self.props:
            out.append(("prop", ("line", near, b.toes[0])))
        if "poles" in self.props:
            out.append(("prop", ("line", (near[0], near[1] + 0.03), (near[0] - 0.12, 0))))
        if "dumbbells" in self.props:
            for hand in ([near, far] if self.view == "front" else [near]):
                out += [("prop", ("line", (hand[0] - 0.05, hand[1]), (hand[0] + 0.05, hand[1]))),
                        ("fill", ("rect", hand[0] - 0.07, hand[1] - 0.03, 0.025, 0.06)),
                        ("fill", ("rect", hand[0] + 0.045, hand[1] - 0.03, 0.025, 0.06))]
        if "barbell" in self.props:
            out.append(("prop", ("circle", near, 0.09)))
        if "ankle_weight" in self.props:
            a = b.ankles[0]
            out.append(("fill", ("rect", a[0] - 0.025, a[1] + 0.005, 0.05, 0.04)))
        if "racquet" in self.props:
            tip = (near[0] + 0.12, near[1] + 0.12)
            out += [("prop", ("line", near, tip)), ("prop", ("circle", (tip[0] + 0.04, tip[1] + 0.04), 0.055))]
        if "club" in self.props:
            out.append(("prop", ("line", near, (near[0] + 0.25, 0.01))))
        if "rope" in self.props:
            out.append(("prop", ("ellipse", b.chest[0] - 0.2, -0.02, b.chest[0] + 0.2, b.head[1] + 0.15)))
        if "pillow" in self.props:
            p = b.head if self.frames[k].get("pose", "").startswith("lie_back") else b.pelvis
            out.append(("prop", ("ellipse", p[0] - 0.08, -0.005, p[0] + 0.08, 0.035)))
        return out

    def bounds(self) -> tuple[float, float, float, float]:
        xs, ys = [], []
        shapes = list(self.static)
        for k, b in enumerate(self.bodies):
            for x, y in b.points():
                xs.append(x)
                ys.append(y)
            shapes += self.frame_props(k)
        if self.walk:
            shapes.append(("arrow", ("line", (self.walk[0], self.walk[2]), (self.walk[1], self.walk[2]))))
        for _kind, s in shapes:
            for x, y in _shape_points(s):
                xs.append(x)
                ys.append(y)
        pad = 0.05
        return min(xs) - pad, min(min(ys), 0) - pad, max(xs) + pad, max(ys) + pad + (
            0.12 if "turn" in self.arrows else 0)


def _sole_plate(b: Body) -> tuple[str, Shape]:
    """A machine's foot plate against the near sole."""
    heel, toe = b.heels[0], b.toes[0]
    dx, dy = toe[0] - heel[0], toe[1] - heel[1]
    length = math.hypot(dx, dy) or 1.0
    ox, oy = dy / length * 0.02, -dx / length * 0.02  # just under the sole
    return ("prop", ("line", (heel[0] - dx * 0.6 + ox, heel[1] - dy * 0.6 + oy),
                     (toe[0] + dx * 0.4 + ox, toe[1] + dy * 0.4 + oy)))


def _shape_points(s: Shape) -> list[Point]:
    kind = s[0]
    if kind == "line":
        return [s[1], s[2]]
    if kind == "rect":
        return [(s[1], s[2]), (s[1] + s[3], s[2] + s[4])]
    if kind == "circle":
        (x, y), r = s[1], s[2]
        return [(x - r, y - r), (x + r, y + r)]
    if kind == "ellipse":
        return [(s[1], s[2]), (s[3], s[4])]
    return list(s[1])


class _Pen:
    """Body units -> points on the canvas."""

    def __init__(self, c: Canvas, ox: float, oy: float, scale: float) -> None:
        self.c, self.ox, self.oy, self.s = c, ox, oy, scale

    def p(self, pt: Point) -> Point:
        return self.ox + pt[0] * self.s, self.oy + pt[1] * self.s

    def line(self, a: Point, b: Point) -> None:
        (x1, y1), (x2, y2) = self.p(a), self.p(b)
        self.c.line(x1, y1, x2, y2)

    def poly(self, pts: Sequence[Point]) -> None:
        path = self.c.beginPath()
        path.moveTo(*self.p(pts[0]))
        for q in pts[1:]:
            path.lineTo(*self.p(q))
        self.c.drawPath(path, stroke=1, fill=0)

    def shape(self, kind: str, s: Shape) -> None:
        c = self.c
        c.setLineWidth(PROP_PT if kind != "thin" else PROP_PT * 0.9)
        if s[0] == "line":
            self.line(s[1], s[2])
        elif s[0] == "rect":
            x, y = self.p((s[1], s[2]))
            c.rect(x, y, s[3] * self.s, s[4] * self.s, stroke=1, fill=1 if kind == "fill" else 0)
        elif s[0] == "circle":
            x, y = self.p(s[1])
            c.circle(x, y, s[2] * self.s, stroke=1, fill=0)
        elif s[0] == "ellipse":
            x1, y1 = self.p((s[1], s[2]))
            x2, y2 = self.p((s[3], s[4]))
            c.ellipse(x1, y1, x2, y2, stroke=1, fill=0)
        else:
            self.poly(s[1])


def _draw_body(pen: _Pen, b: Body, view: str, *, dashed: bool = False) -> None:
    """The person; ``dashed``: the start position under the end one (an overlay).
    Side view: the far limbs, the trunk and head, then the near limbs over them
    (a near arm passes in front of the head; hands on the head stay under it)."""
    c = pen.c
    c.setLineCap(0 if dashed else 1)
    c.setLineJoin(1)
    if dashed:
        c.setDash(*START_DASH)

    def limbs(i: int) -> None:
        c.setLineWidth(FAR_PT if (i and view == "side") or dashed else BODY_PT)
        pen.poly([b.hips[i], b.knees[i], b.ankles[i]])
        pen.poly([b.heels[i], b.toes[i]])
        pen.poly([b.shoulders[i], b.elbows[i], b.hands[i]])

    near_over_head = view != "front" and math.dist(b.hands[0], b.head) > 1.5 * HEAD_R
    limbs(1)
    if not near_over_head:
        limbs(0)
    c.setLineWidth(FAR_PT if dashed else BODY_PT)
    if view == "front":
        pen.poly([b.shoulders[1], b.shoulders[0]])
        pen.poly([b.hips[1], b.hips[0]])
    if b.spine:  # a curved back
        path = c.beginPath()
        (x0, y0), (cx, cy), (x1, y1) = pen.p(b.pelvis), pen.p(b.back_control()), pen.p(b.chest)
        path.moveTo(x0, y0)
        path.curveTo(x0 + 2 / 3 * (cx - x0), y0 + 2 / 3 * (cy - y0),
                     x1 + 2 / 3 * (cx - x1), y1 + 2 / 3 * (cy - y1), x1, y1)
        c.drawPath(path, stroke=1, fill=0)
    else:
        pen.line(b.pelvis, b.chest)
    hx, hy = pen.p(b.head)
    c.setFillGray(1)
    c.circle(hx, hy, HEAD_R * pen.s, stroke=1, fill=0 if dashed else 1)
    c.setFillGray(0)
    if b.face is not None and not dashed:  # a nose: which way the person looks
        r = math.radians(b.face)
        tip = (b.head[0] + (HEAD_R + 0.025) * math.cos(r), b.head[1] + (HEAD_R + 0.025) * math.sin(r))
        c.setLineWidth(FAR_PT)
        pen.line((b.head[0] + HEAD_R * math.cos(r), b.head[1] + HEAD_R * math.sin(r)), tip)
    if near_over_head:
        limbs(0)
    if dashed:
        c.setDash()


def _arrow(pen: _Pen, a: Point, b: Point, bulge: float = 0.25, centre: Point | None = None) -> None:
    """A curved arrow from ``a`` to ``b`` (body units), bulging away from ``centre``."""
    c = pen.c
    (x1, y1), (x2, y2) = pen.p(a), pen.p(b)
    length = math.hypot(x2 - x1, y2 - y1)
    if length < 6:
        return
    nx, ny = -(y2 - y1) / length, (x2 - x1) / length
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    if centre is not None:
        cx, cy = pen.p(centre)
        if (mx - cx) * nx + (my - cy) * ny < 0:
            nx, ny = -nx, -ny
    kx, ky = mx + nx * bulge * length, my + ny * bulge * length
    c.setLineWidth(PROP_PT + 0.2)
    path = c.beginPath()
    path.moveTo(x1, y1)
    path.curveTo(kx, ky, kx, ky, x2, y2)
    c.drawPath(path, stroke=1, fill=0)
    _head(c, kx, ky, x2, y2)


def _head(c: Canvas, fx: float, fy: float, x: float, y: float, size: float = 7.0) -> None:
    angle = math.atan2(y - fy, x - fx)
    path = c.beginPath()
    path.moveTo(x + math.cos(angle) * 2, y + math.sin(angle) * 2)
    for da in (2.6, -2.6):
        path.lineTo(x + size * math.cos(angle + da), y + size * math.sin(angle + da))
    path.close()
    c.drawPath(path, stroke=0, fill=1)


def _movement_arrow(pen: _Pen, kind: str, b: Body, walk: tuple[float, float, float] | None) -> None:
    c = pen.c
    if walk is not None and kind in ("walk_forward", "walk_back", "walk_side"):
        x0, x1, y = walk
        (ax, ay), (bx, by) = pen.p((x0, y)), pen.p((x1, y))
        c.setLineWidth(PROP_PT + 0.2)
        c.line(ax, ay, bx, by)
        _head(c, ax, ay, bx, by)
    elif kind == "turn":
        hx, hy = pen.p((b.head[0], b.head[1] + HEAD_R + 0.07))
        w, h = 0.18 * pen.s, 0.05 * pen.s
        c.setLineWidth(PROP_PT + 0.2)
        c.arc(hx - w, hy - h, hx + w, hy + h, startAng=200, extent=300)
        end = math.radians(200 + 300)
        ex, ey = hx + w * math.cos(end), hy + h * math.sin(end)
        _head(c, ex - 5, ey - 3, ex, ey)
    elif kind == "circle":
        fx, fy = pen.p(b.toes[0])
        r = 0.05 * pen.s
        c.setLineWidth(PROP_PT + 0.2)
        c.arc(fx - r, fy - r, fx + r, fy + r, startAng=-60, extent=290)
        end = math.radians(230)
        _head(c, fx + r * math.cos(end) + 4, fy + r * math.sin(end) - 3,
              fx + r * math.cos(end), fy + r * math.sin(end))


def _guide(pen: _Pen, b: Body, guide: str) -> None:
    """The cue made visible: a straight line along the back (or a plumb line)."""
    c = pen.c
    if guide == "back":
        ang = math.radians(b.trunk_angle)
        ux, uy = math.cos(ang), math.sin(ang)
        off = 0.065
        nx, ny = -uy, ux  # behind the back (the side opposite the face)
        if b.face is not None and math.cos(math.radians(b.face)) * nx + \
                math.sin(math.radians(b.face)) * ny > 0:
            nx, ny = -nx, -ny
        a = (b.pelvis[0] + nx * off - ux * 0.05, b.pelvis[1] + ny * off - uy * 0.05)
        z = (b.chest[0] + nx * off + ux * 0.17, b.chest[1] + ny * off + uy * 0.17)
    elif b.face is None:  # the front view: a plumb line through the middle, under the body
        x = b.pelvis[0]
        a, z = (x, 0.02), (x, b.head[1] + HEAD_R + 0.06)
    else:
        x = b.pelvis[0] - 0.1
        a, z = (x, 0.02), (x, b.head[1] + HEAD_R)
    c.setLineWidth(PROP_PT)
    c.setDash(5, 3)
    pen.line(a, z)
    c.setDash()


def drawing_scale(drawing: dict, width: float, height: float, *, caption: bool = True) -> float:
    """Points per body unit of the drawing in a box ``width`` x ``height`` (points): as
    big as it fits (both positions, the caption below), at most MAX_ZOOM times a
    standing person's size, so that a body lying wide is not drawn far bigger than
    the rest."""
    return _layout(Scene(drawing), width, height, caption)[0]


def _layout(scene: Scene, width: float, height: float, caption: bool
            ) -> tuple[float, int, float, float]:
    """(scale, panels, caption's height, gap between the panels)."""
    cap_h = CAPTION_SIZE + 4 if caption and scene.cue else 0
    x0, y0, x1, y1 = scene.bounds()
    panels = 1 if scene.overlay else len(scene.bodies)
    gap = ARROW_GAP if panels > 1 else 0
    scale = min((width - gap) / panels / (x1 - x0), (height - cap_h) / (y1 - y0),
                MAX_ZOOM * (height - cap_h) / STAND_H)
    return scale, panels, cap_h, gap


def draw_exercise(c: Canvas, drawing: dict, x: float, y: float, width: float, height: float, *,
                  caption: bool = True, measure: bool = False) -> float:
    """Draw the exercise's start and end positions in the box (x, y bottom left;
    points): side by side with an arrow between, or one over the other (an
    overlay). Returns the width used (``measure``: only that)."""
    scene = Scene(drawing)
    scale, panels, cap_h, gap = _layout(scene, width, height, caption)
    x0, y0, x1, y1 = scene.bounds()
    n = len(scene.bodies)
    panel = (x1 - x0) * scale
    if measure:
        return panels * panel + gap
    c.saveState()
    c.setStrokeGray(0)
    c.setFillGray(0)
    for k, b in enumerate(scene.bodies):
        left = x if scene.overlay else x + k * (panel + gap)
        pen = _Pen(c, left - x0 * scale, y + cap_h - y0 * scale, scale)
        if scene.overlay and k == 0:  # the start position, dashed, under the end one
            for kind, s in scene.frame_props(k):
                c.setDash(*START_DASH)
                pen.shape(kind, s)
                c.setDash()
            _draw_body(pen, b, scene.view, dashed=True)
            continue
        c.setLineWidth(PROP_PT)
        pen.line((x0, 0), (x1, 0))  # the floor
        for kind, s in scene.static + scene.frame_props(k):
            pen.shape(kind, s)
        if scene.guide:
            _guide(pen, b, scene.guide)
        _draw_body(pen, b, scene.view)
        if k == n - 1:
            start = scene.bodies[0]
            for name in scene.arrows:
                if name in ("walk_forward", "walk_back", "walk_side", "turn", "circle"):
                    _movement_arrow(pen, name, b, scene.walk)
                elif n > 1:
                    _arrow(pen, start.point(name), b.point(name), 0.1 if scene.overlay else 0.25,
                           centre=b.pelvis if name not in ("pelvis",) else b.chest)
    if panels > 1:  # start -> end
        ax, ay = x + panel + 4, y + cap_h + (height - cap_h) / 2
        c.setLineWidth(BODY_PT)
        c.line(ax, ay, ax + gap - 10, ay)
        _head(c, ax, ay, ax + gap - 8, ay, size=9)
    if cap_h:
        c.setFont(BOLD, CAPTION_SIZE)
        c.drawString(x, y + 2, scene.cue)
    c.restoreState()
    return panels * panel + gap


def drawing_pdf(drawing: dict, *, width: float = 300, height: float = 110,
                caption: bool = True) -> bytes:
    """One drawing on a page of its own (for checks and previews)."""
    ensure_fonts()
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(width + 20, height + 20))
    draw_exercise(c, drawing, 10, 10, width, height, caption=caption)
    c.showPage()
    c.save()
    return buf.getvalue()


def gallery_pdf(entries: Sequence[tuple[str, str, dict | None]], *, title: str = "Exercise drawings",
                paper_size: tuple[float, float] = (612, 792)) -> bytes:
    """Every exercise's drawing with its name: ``entries`` is (id, name, drawing)."""
    ensure_fonts()
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=paper_size)
    c.setTitle(title)
    c.setCreator("refflow")
    w, h = paper_size
    margin, cell_w, cell_h = 36, (w - 72 - 18) / 2, 150
    cols, rows = 2, int((h - 2 * margin - 30) // cell_h)
    page, index = 0, 0
    while index < len(entries) or page == 0:
        page += 1
        c.setFont(BOLD, 16)
        c.drawString(margin, h - margin - 10, f"{title} — page {page}")
        for slot in range(cols * rows):
            if index >= len(entries):
                break
            ex_id, name, drawing = entries[index]
            index += 1
            col, row = slot % cols, slot // cols
            x = margin + col * (cell_w + 18)
            top = h - margin - 30 - row * cell_h
            c.setFont(BOLD, 12)
            label = f"{index}. {name}"
            while c.stringWidth(label, BOLD, 12) > cell_w and len(label) > 4:
                label = label[:-2].rstrip() + "…"
            c.drawString(x, top - 14, label)
            c.setFont(REGULAR, 10)
            c.drawString(x, top - 26, ex_id)
            if drawing:
                draw_exercise(c, drawing, x, top - cell_h + 6, cell_w, cell_h - 36)
            else:
                c.setFont(REGULAR, 12)
                c.drawString(x, top - 60, "(no drawing)")
        c.showPage()
        if index >= len(entries):
            break
    c.save()
    return buf.getvalue()


CARD_HEIGHT = 64.0  # an exercise card's drawing (points; the cue is the card's "Stay safe" row)
CARD_WIDTH = 180.0  # at the right of the card; the card's first rows wrap beside it
CARD_GAP = 12.0


def card_drawing_height(drawing: object) -> float:
    """The room an exercise card's drawing takes down the page (0 when there is none)."""
    return CARD_HEIGHT + 4 if isinstance(drawing, dict) and drawing.get("start") else 0.0


class CardDrawing:
    """The drawing at the top right of an exercise card (``layout.Flow``), the
    card's rows wrapping to its left: call ``update()`` before each row (full
    width again below the drawing or on a new page) and ``close()`` after.
    A drawing that cannot be drawn (data from an older plan) is left out."""

    def __init__(self, flow, drawing: object) -> None:
        self.flow, self.right, self.page = flow, flow.right, flow.page
        self.bottom = flow.y
        if not card_drawing_height(drawing):
            return
        width = min(CARD_WIDTH, flow.text_width / 2)
        try:
            used = draw_exercise(flow.canvas, drawing, 0, 0, width, CARD_HEIGHT, caption=False,
                                 measure=True)
            draw_exercise(flow.canvas, drawing, flow.right - used, flow.y - CARD_HEIGHT, width,
                          CARD_HEIGHT, caption=False)
        except DrawingDataError:
            return
        self.bottom = flow.y - CARD_HEIGHT - 4
        flow.right = self.right - used - CARD_GAP
        self.decorate = flow.decorate
        if self.decorate is not None:  # a page break beside the drawing: the new page is full width
            def decorate(f, _orig=self.decorate) -> None:
                f.right = self.right
                _orig(f)
            flow.decorate = decorate

    def update(self) -> None:
        if self.flow.y <= self.bottom or self.flow.page != self.page:
            self.flow.right = self.right

    def close(self) -> None:
        self.flow.right = self.right
        if hasattr(self, "decorate"):
            self.flow.decorate = self.decorate
        if self.flow.page == self.page and self.flow.y > self.bottom:
            self.flow.y = self.bottom
