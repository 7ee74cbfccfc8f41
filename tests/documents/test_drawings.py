"""Exercise drawings: every catalogue exercise drawn, legible in a fax at
normal resolution (204 x 98 dpi, bilevel, through refflow's own PDF -> fax
conversion), props clear of the figure, floor exercises drawn big enough, a
curving back, a gallery PDF (with the plugins' exercises), and a plugin's
exercise with its own drawing."""

from __future__ import annotations

import math

import pypdfium2 as pdfium
import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops

from refflow.cli import cli
from refflow.documents import drawings
from refflow.documents.drawings import CARD_HEIGHT, CARD_WIDTH, Scene, drawing_pdf, drawing_scale
from refflow.documents.fax import FaxFormat, render_pages
from refflow.documents.figure import side_body
from refflow.planning import drawing as drawing_data
from refflow.planning.catalog import CatalogError, exercise_from_mapping, load_catalog

CATALOG = load_catalog().exercises
PLUGIN_EXERCISE = {
    "id": "lakeside_chair_march", "name": "Seated marching", "category": "aerobic",
    "impact": "none", "spinal_flexion": False, "spinal_rotation": False, "loaded": False,
    "end_range": False, "dose": {"minutes": 5}, "instructions": "Sit tall and march.",
    "drawing": {"props": ["chair"], "start": {"pose": "sit"},
                "end": {"pose": "sit", "hip": [120, 90], "knee": [100, 90]},
                "arrows": ["knee"], "cue": "Sit tall", "guide": "upright"},
}


def fax_image(pdf: bytes) -> Image.Image:
    """The PDF's first page as the fax sends it at normal resolution (ink = set pixels)."""
    return render_pages([pdf], FaxFormat("normal"))[0]


def ink(img: Image.Image) -> int:
    return img.histogram()[255]


def _shift(img: Image.Image, dx: int, dy: int) -> Image.Image:
    return ImageChops.offset(img, dx, dy)  # the page's white border takes the wrap-around


def opened(img: Image.Image) -> Image.Image:
    """Morphological opening with a 2 x 2 square: what remains of the ink when
    every stroke thinner than 2 pixels (across or down) is removed."""
    eroded = img
    for dx, dy in ((-1, 0), (0, -1), (-1, -1)):
        eroded = ImageChops.logical_and(eroded, _shift(img, dx, dy))
    dilated = eroded
    for dx, dy in ((1, 0), (0, 1), (1, 1)):
        dilated = ImageChops.logical_or(dilated, _shift(eroded, dx, dy))
    return dilated


def card_pdf(drawing: dict) -> bytes:
    """The drawing at the size an exercise card in the handout gives it (no caption)."""
    return drawing_pdf(drawing, width=CARD_WIDTH, height=CARD_HEIGHT, caption=False)


def test_every_catalogue_exercise_has_a_drawing():
    assert len(CATALOG) >= 70
    assert [e.id for e in CATALOG if not e.drawing] == []


@pytest.mark.parametrize("exercise", CATALOG, ids=lambda e: e.id)
def test_drawing_is_legible_in_a_fax_at_normal_resolution(exercise):
    img = fax_image(card_pdf(dict(exercise.drawing)))
    box = img.getbbox()
    assert box is not None, "nothing drawn"
    width, height = box[2] - box[0], box[3] - box[1]
    # the drawing fills its place: 70 % of the card's height or width (1 pt = 204/72 px across,
    # 98/72 px down)
    assert height >= 0.7 * CARD_HEIGHT * 98 / 72 or width >= 0.7 * CARD_WIDTH * 204 / 72
    coverage = ink(img.crop(box)) / (width * height)
    assert 0.02 <= coverage <= 0.35, f"ink covers {coverage:.1%} of the drawing"
    # lines survive the fax: at least 85 % of the ink is in strokes 2 px thick or more
    kept = ink(ImageChops.logical_and(opened(img), img)) / ink(img)
    assert kept >= 0.85, f"only {kept:.0%} of the ink is in strokes 2 px thick or more"


def test_a_hairline_drawing_fails_the_stroke_check():
    """The stroke check measures something: thin lines do not pass it."""
    import io

    from reportlab.pdfgen.canvas import Canvas

    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(200, 100))
    c.setLineWidth(0.4)
    for k in range(10):
        c.line(10, 10 + 8 * k, 190, 12 + 8 * k)
    c.save()
    img = fax_image(buf.getvalue())
    assert ink(img) and ink(ImageChops.logical_and(opened(img), img)) / ink(img) < 0.5


def test_catalog_gallery_command_writes_one_entry_per_exercise(tmp_path):
    out = tmp_path / "gallery.pdf"
    result = CliRunner().invoke(cli, ["catalog", "--gallery", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{len(CATALOG)} exercises" in result.output
    doc = pdfium.PdfDocument(out.read_bytes())
    try:
        text = "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()
    for exercise in CATALOG:
        assert exercise.id in text
    assert f"{len(CATALOG)}. " in text and f"{len(CATALOG) + 1}. " not in text


def test_a_plugin_exercise_with_its_own_drawing_is_drawn():
    ex = exercise_from_mapping(PLUGIN_EXERCISE, source="lakeside")
    assert ex.drawing["start"]["hip"] == [90.0, 90.0]  # completed from the pose
    img = fax_image(card_pdf(dict(ex.drawing)))
    assert img.getbbox() is not None and ink(img) > 500


def test_a_card_drawing_sits_at_the_right_of_the_card_and_gives_the_width_back():
    from refflow.documents.layout import Flow

    flow = Flow()
    right, top = flow.right, flow.y
    drawing = drawings.CardDrawing(flow, exercise_from_mapping(PLUGIN_EXERCISE).drawing)
    assert flow.right < right - 60  # the first rows wrap beside the drawing
    drawing.update()
    drawing.close()
    assert flow.right == right and flow.y <= top - CARD_HEIGHT
    assert ink(fax_image(flow.finish())) > 500


@pytest.mark.parametrize("bad, message", [
    ("a chair", "drawing must be an object"),
    ({"start": {"pose": "handstand"}}, "drawing.start.pose is not one of"),
    ({"start": {"pose": "sit", "knee": 400}}, "drawing.start.knee must be a number"),
    ({"start": {"pose": "sit"}, "props": ["trampoline"]}, "drawing.props must be a list of"),
    ({"start": {"pose": "sit"}, "arrows": ["knee"]}, "no end position"),
    ({"end": {"pose": "sit"}}, "drawing.start is missing"),
    ({"start": {"pose": "sit", "wings": 2}}, "unknown key 'wings'"),
])
def test_a_bad_drawing_in_a_plugin_exercise_is_refused_at_catalogue_load(bad, message):
    with pytest.raises(CatalogError, match="'lakeside_chair_march': .*" + message):
        exercise_from_mapping({**PLUGIN_EXERCISE, "drawing": bad}, source="lakeside")


def test_every_prop_and_point_in_the_vocabulary_can_be_drawn():
    for prop in drawing_data.PROPS:
        data = drawing_data.validate_drawing({"props": [prop], "start": {"pose": "stand"},
                                              "end": {"pose": "sit"}, "arrows": ["hand"]})
        drawings.drawing_pdf(data)
    for point in drawing_data.POINTS:
        data = drawing_data.validate_drawing({"start": {"pose": "stand"}, "end": {"pose": "sit"},
                                              "arrows": [point]})
        drawings.drawing_pdf(data)
    for pose in drawing_data.POSES:
        drawings.drawing_pdf(drawing_data.validate_drawing({"start": {"pose": pose}}))


def _gallery_text(pdf: bytes) -> str:
    doc = pdfium.PdfDocument(pdf)
    try:
        return "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()


def test_catalog_gallery_includes_the_plugins_exercises(tmp_path, monkeypatch):
    from refflow.config import load_settings
    from refflow.plugins import hookimpl
    from refflow.plugins.manager import get_plugin_manager

    class Lakeside:
        @hookimpl
        def refflow_exercise_catalog(self):
            return [PLUGIN_EXERCISE,
                    {**PLUGIN_EXERCISE, "id": "lakeside_bad", "drawing": {"start": {"pose": "fly"}}}]

    # a plugin selection of this test's own, so the cached manager it registers on is its own
    monkeypatch.setenv("REFFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REFFLOW_DISABLED_PLUGINS", "gallery-test-none")
    pm = get_plugin_manager(load_settings(secret_key="unused"))
    pm.register(Lakeside(), name="lakeside")
    try:
        out = tmp_path / "gallery.pdf"
        result = CliRunner().invoke(cli, ["catalog", "--gallery", str(out)])
    finally:
        pm.unregister(name="lakeside")
    assert result.exit_code == 0, result.output
    assert f"{len(CATALOG) + 1} exercises, 1 from plugins" in result.output
    assert "left out: plugin lakeside: exercise 'lakeside_bad'" in result.output
    text = _gallery_text(out.read_bytes())
    assert f"{len(CATALOG) + 1}. Seated marching" in text
    assert "lakeside_chair_march (plugin lakeside)" in text and "lakeside_bad" not in text
    assert "(no drawing)" not in text


# Furniture the person stands at, sits on or steps onto: drawn clear of the body (a prop
# held in the hands, a bike sat astride or a doorway stepped through may cross it).
FURNITURE = {"counter", "rail", "step", "box", "chair", "wall", "machine", "rower", "leg_press"}
ASTRIDE = {"bike", "doorway", "band", "poles", "club", "strap"}


def _edges(shape: tuple) -> list:
    if shape[0] == "line":
        return [(shape[1], shape[2])]
    if shape[0] == "rect":
        _, x, y, w, h = shape
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        return list(zip(corners, corners[1:] + corners[:1]))
    return []


def _crossing(a, b, p, q, margin: float = 0.02):
    """Where segments a-b and p-q cross, away from their ends (touching is allowed)."""
    (x1, y1), (x2, y2), (x3, y3), (x4, y4) = a, b, p, q
    d = (x2 - x1) * (y4 - y3) - (y2 - y1) * (x4 - x3)
    if abs(d) < 1e-12:
        return None
    t = ((x3 - x1) * (y4 - y3) - (y3 - y1) * (x4 - x3)) / d
    u = ((x3 - x1) * (y2 - y1) - (y3 - y1) * (x2 - x1)) / d
    ta, tp = margin / (math.dist(a, b) or 1), margin / (math.dist(p, q) or 1)
    if ta < t < 1 - ta and tp < u < 1 - tp:
        return x1 + t * (x2 - x1), y1 + t * (y2 - y1)
    return None


@pytest.mark.parametrize("exercise", [e for e in CATALOG if FURNITURE & set(e.drawing["props"])
                                      and not ASTRIDE & set(e.drawing["props"])], ids=lambda e: e.id)
def test_furniture_never_crosses_the_figure(exercise):
    scene = Scene(dict(exercise.drawing))
    for k, body in enumerate(scene.bodies):
        for kind, shape in scene.static + scene.frame_props(k):
            for p, q in _edges(shape) if kind == "prop" else []:
                for a, b in scene.figure_lines(k):
                    at = _crossing(a, b, p, q)
                    # a hand on the counter or rail grips it
                    assert at is None or min(math.dist(at, h) for h in body.hands) < 0.04, (
                        f"a {shape[0]} crosses the figure at {at} in position {k + 1}")


def test_the_review_s_crossings_are_in_the_furniture_check():
    checked = {e.id for e in CATALOG if FURNITURE & set(e.drawing["props"])
               and not ASTRIDE & set(e.drawing["props"])}
    assert {"tandem_walk", "heel_walk", "toe_walk", "step_up", "stair_walking", "box_jumps",
            "squat_to_chair", "lat_pulldown_machine"} <= checked


def test_a_drawing_crossed_by_a_prop_fails_the_furniture_check():
    """The crossing check sees a crossing: a counter placed through the legs."""
    scene = Scene(dict(next(e for e in CATALOG if e.id == "tandem_walk").drawing))
    legs = [(a, b) for a, b in scene.figure_lines(0)][:2]
    assert any(_crossing(a, b, (-0.3, 0.1), (0.6, 0.1)) for a, b in legs)


STANDING = [e for e in CATALOG if e.drawing["view"] == "side" and "end" in e.drawing
            and e.drawing["start"]["pose"] == e.drawing["end"]["pose"] == "stand"]
FLOOR = [e for e in CATALOG if all(
    f["pose"] in drawing_data.FLOOR_POSES for f in (e.drawing["start"], e.drawing.get("end") or {
        "pose": e.drawing["start"]["pose"]}))]


def _standing_scale(width: float, height: float) -> float:
    scales = sorted(drawing_scale(dict(e.drawing), width, height, caption=False) for e in STANDING)
    return scales[len(scales) // 2]


@pytest.mark.parametrize("exercise", [e for e in FLOOR if "end" in e.drawing] + [
    e for e in CATALOG if e.id == "leg_press_machine"], ids=lambda e: e.id)
def test_a_body_on_the_floor_is_drawn_in_one_picture_and_big(exercise):
    """Lying and kneeling bodies are wide: the start and end share one picture, so the
    person is drawn half as big again as a standing one, and the drawing uses the
    card's width (or, with a leg raised high, its height)."""
    assert exercise.drawing["layout"] == "overlay"
    scale = drawing_scale(dict(exercise.drawing), CARD_WIDTH, CARD_HEIGHT, caption=False)
    assert scale >= 1.5 * _standing_scale(CARD_WIDTH, CARD_HEIGHT)
    box = fax_image(card_pdf(dict(exercise.drawing))).getbbox()
    width, height = (box[2] - box[0]) / (CARD_WIDTH * 204 / 72), (box[3] - box[1]) / (
        CARD_HEIGHT * 98 / 72)
    assert width >= 0.7 or height >= 0.8, f"uses {width:.0%} of the width, {height:.0%} of the height"


@pytest.mark.parametrize("size", [(CARD_WIDTH, CARD_HEIGHT), (252, 114)], ids=["card", "gallery"])
def test_a_single_floor_position_is_not_drawn_bigger_than_the_others(size):
    """A drawing with one position lying down has the whole box: it is drawn at most
    as big as the two-position floor drawings, twice a standing person at most."""
    single = [e for e in FLOOR if "end" not in e.drawing]
    assert single
    largest_pair = max(drawing_scale(dict(e.drawing), *size, caption=False) for e in FLOOR
                       if "end" in e.drawing)
    for e in single:
        assert drawing_scale(dict(e.drawing), *size, caption=False) <= largest_pair + 1e-6
    for e in CATALOG:
        assert drawing_scale(dict(e.drawing), *size, caption=False) <= 2.0 * _standing_scale(
            *size) + 1e-6, e.id


def test_a_curved_spine_rounds_the_back_and_is_validated():
    cat = drawing_data.validate_drawing({"start": {"pose": "hands_knees", "spine": 60}})["start"]
    flat = drawing_data.validate_drawing({"start": {"pose": "hands_knees"}})["start"]
    assert flat["spine"] == 0.0
    rounded, straight = side_body(cat), side_body(flat)
    assert straight.back()[1] == pytest.approx((straight.pelvis[1] + straight.chest[1]) / 2)
    assert rounded.back()[1] > straight.back()[1] + 0.03  # on all fours: the back arches up
    cat_camel = next(e for e in CATALOG if e.id == "cat_camel").drawing
    assert cat_camel["start"]["spine"] < 0 < cat_camel["end"]["spine"]
    assert cat_camel["arrows"] == ["back"]
    # the curve is drawn: the same pose with a straight back inks differently
    assert fax_image(card_pdf(dict(cat_camel))).tobytes() != fax_image(card_pdf(
        drawing_data.validate_drawing({**cat_camel, "start": {"pose": "hands_knees"},
                                       "end": {"pose": "hands_knees"}}))).tobytes()


@pytest.mark.parametrize("bad, message", [
    ({"start": {"pose": "hands_knees", "spine": 120}}, "drawing.start.spine must be a number"),
    ({"view": "front", "start": {"pose": "stand", "spine": 20}}, "side view only"),
    ({"start": {"pose": "sit"}, "layout": "stacked"}, "drawing.layout is not one of"),
])
def test_a_bad_spine_or_layout_is_refused(bad, message):
    with pytest.raises(drawing_data.DrawingError, match=message):
        drawing_data.validate_drawing(bad)


def test_the_band_pull_apart_stands_with_the_feet_apart():
    body = Scene(dict(next(e for e in CATALOG if e.id == "band_pull_apart").drawing)).bodies[0]
    assert body.ankles[0][0] - body.ankles[1][0] > 0.15


def test_drawing_data_from_an_older_plan_is_still_drawn_side_by_side():
    """A plan saved before 'layout' and 'spine' existed carries neither: it draws, apart."""
    bridge = dict(next(e for e in CATALOG if e.id == "glute_bridge").drawing)
    old = {k: v for k, v in bridge.items() if k != "layout"}
    old["start"] = {k: v for k, v in bridge["start"].items() if k != "spine"}
    old["end"] = {k: v for k, v in bridge["end"].items() if k != "spine"}
    assert ink(fax_image(card_pdf(old))) > 500
    assert drawing_scale(old, CARD_WIDTH, CARD_HEIGHT) < drawing_scale(bridge, CARD_WIDTH, CARD_HEIGHT)
