"""Exercise drawings: every catalogue exercise drawn, legible in a fax at
normal resolution (204 x 98 dpi, bilevel, through refflow's own PDF -> fax
conversion), a gallery PDF, and a plugin's exercise with its own drawing."""

from __future__ import annotations

import pypdfium2 as pdfium
import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops

from refflow.cli import cli
from refflow.documents import drawings
from refflow.documents.drawings import CARD_HEIGHT, CARD_WIDTH, drawing_pdf
from refflow.documents.fax import FaxFormat, render_pages
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
