"""Fracture history from FHIR: which Condition codes are fractures, and where
(the referral's fracture ``site``), and the List that says "no known
fractures".

A Condition coded as a fracture is *placed* when its code says the site
(vertebral, hip, wrist, humerus, pelvis, rib, ankle; any other bone is
``other``), and *unplaced* when it says a fracture but not where (ICD-10-CM
M80.x0 "unspecified site", a history-of-fracture Z code, SNOMED CT "Fracture
of bone", or only words with "fracture"). refflow writes a fracture history
only when it can place every fracture a Bundle names: one unplaced fracture
leaves the history unknown, which the plan engine treats as the cautious case.

ICD-10-CM M80 (osteoporosis with current pathological fracture) is a
fragility fracture by definition: ``low_trauma`` true. The S codes (injuries)
and most SNOMED CT fracture concepts do not say how the bone broke, so
``low_trauma`` is left out (unknown: the engine counts it as low trauma).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.codeableconcept import CodeableConcept

from refflow.interop.fhir.codes import SNOMED
from refflow.interop.fhir.datatypes import concept_words, icd10_codes

# SNOMED CT 125605004 |Fracture of bone (disorder)|: the code of a List of the
# patient's fractures; empty with emptyReason "nilknown", it says "none known".
FRACTURE_LIST_CODE = "125605004"
NIL_KNOWN = "nilknown"

# ICD-10-CM M80.0 / M80.8: the sixth character (after "M80.0") is the site.
M80_SITES = {
    "1": "other",      # shoulder
    "2": "humerus",
    "3": "wrist",      # forearm: the osteoporotic forearm fracture is the distal radius
    "4": "other",      # hand
    "5": "hip",        # femur (its inclusion term: "of hip")
    "6": "other",      # lower leg
    "7": "ankle",      # ankle and foot
    "8": "vertebral",  # vertebra(e)
    "A": "other",      # other site
    "B": "pelvis",
}
# ICD-10-CM codes (by prefix, the longest wins) that say where a fracture is.
ICD10_SITES = {
    **{f"S12.{n}": "vertebral" for n in "0123456"},  # first to seventh cervical vertebra
    "S22.0": "vertebral",  # thoracic vertebra
    "S22.1": "vertebral",  # multiple fractures of thoracic spine (ICD-10)
    "S32.0": "vertebral",  # lumbar vertebra
    "M48.4": "vertebral",  # fatigue fracture of vertebra
    "M48.5": "vertebral",  # collapsed vertebra
    "S72.0": "hip",  # neck of femur
    "S72.1": "hip",  # pertrochanteric
    "S72.2": "hip",  # subtrochanteric
    "S52.5": "wrist",  # lower end of radius
    "S52.6": "wrist",  # lower end of ulna
    "S42.2": "humerus",  # upper end
    "S42.3": "humerus",  # shaft
    "S42.4": "humerus",  # lower end
    **{f"S32.{n}": "pelvis" for n in "1234568"},  # sacrum, coccyx, ilium, acetabulum,
    #                                               pubis, ischium, other parts of pelvis
    "S22.3": "rib",  # one rib
    "S22.4": "rib",  # multiple ribs
    "S22.5": "rib",  # flail chest
    "S82.5": "ankle",  # medial malleolus
    "S82.6": "ankle",  # lateral malleolus
    "S82.84": "ankle",  # bimalleolar
    "S82.85": "ankle",  # trimalleolar
    "S82.86": "ankle",  # Maisonneuve's
    "S82.87": "ankle",  # pilon
}
# ICD-10-CM fracture categories: a code in one of them not placed above is a
# fracture of another bone ...
ICD10_FRACTURE_CATEGORIES = ("S02", "S12", "S22", "S32", "S42", "S52", "S62", "S72", "S82",
                             "S92", "M80", "M48.4", "M48.5", "M84.3", "M84.4", "M84.5",
                             "M84.6", "Z87.31", "Z87.81")
# ... unless the code does not say where: unspecified parts, pathological and
# stress fractures (their sites are coded otherwise), and histories of fracture.
ICD10_UNPLACED = ("S12.9", "S22.9", "S32.9", "M84.3", "M84.4", "M84.5", "M84.6", "Z87.31",
                  "Z87.81")
# SNOMED CT fracture concepts (each checked against published code lists: the
# NHS fragility fracture refset FF_COD on OpenCodelists, the BHF Data Science
# Centre's fracture code list, SNOMED International's fracture template).
# code -> (site, low_trauma); site None: a fracture, site not said.
SNOMED_FRACTURES: dict[str, tuple[str | None, bool | None]] = {
    "42942008": ("vertebral", None),   # Compression fracture of vertebral column
    "207938004": ("vertebral", None),  # Closed fracture thoracic vertebra
    "207949005": ("vertebral", None),  # Open fracture thoracic vertebra
    "207957008": ("vertebral", None),  # Closed fracture lumbar vertebra
    "207965006": ("vertebral", None),  # Open fracture lumbar vertebra
    "269062008": ("vertebral", None),  # Closed fracture of cervical spine
    "269070003": ("vertebral", None),  # Open fracture of cervical spine
    "5913000": ("hip", None),          # Fracture of neck of femur
    "359817006": ("hip", None),        # Closed fracture of hip
    "361118003": ("hip", None),        # Open fracture of hip
    "431031001": ("hip", True),        # Osteoporotic fracture of neck of femur
    "704334005": ("hip", True),        # Osteoporotic fracture of proximal femur
    "704330001": ("hip", True),        # Osteoporotic fracture of femur (as M80.05)
    "263199001": ("wrist", None),      # Fracture of distal end of radius
    "43295006": ("humerus", None),     # Closed fracture of humerus
    "89294002": ("humerus", None),     # Open fracture of humerus
    "77493009": ("pelvis", None),      # Fracture of pelvis
    "91037003": ("pelvis", None),      # Closed fracture of pelvis
    "15474008": ("pelvis", None),      # Open fracture of pelvis
    "13695006": ("pelvis", None),      # Fracture of pubic rami
    "207974008": ("pelvis", None),     # Closed fracture sacrum
    "207977001": ("pelvis", None),     # Open fracture sacrum
    "33737001": ("rib", None),         # Fracture of rib
    "60667009": ("rib", None),         # Closed fracture of rib
    "45910007": ("rib", None),         # Open fracture of rib
    "16114001": ("ankle", None),       # Fracture of ankle
    "42188001": ("ankle", None),       # Closed fracture of ankle
    "48187004": ("ankle", None),       # Open fracture of ankle
    "704328003": ("ankle", True),      # Osteoporotic fracture of ankle
    "704329006": ("other", True),      # Osteoporotic fracture of clavicle
    "704332009": ("other", True),      # Osteoporotic fracture of bone of foot
    "125605004": (None, None),         # Fracture of bone
    "443165006": (None, True),         # Osteoporotic fracture of bone
}


@dataclass(frozen=True)
class FractureCode:
    """What a Condition's code says of a fracture: its ``site`` (None: not
    said), ``low_trauma`` (None: not said) and the coding that says it (None:
    only the words do)."""

    site: str | None
    low_trauma: bool | None
    coding: int | None


def fracture_of(concept: CodeableConcept) -> FractureCode | None:
    """The fracture a Condition's code names, or None when it names none.
    ICD-10-CM decides first (it is a classification: a code outside the
    fracture categories is no fracture), then SNOMED CT, then the words of a
    concept coded in neither."""
    icd = icd10_codes(concept)
    for code, k in icd:
        found = _icd10_fracture(code)
        if found is not None:
            return FractureCode(*found, coding=k)
    for k, coding in enumerate(concept.coding or []):
        if coding.system == SNOMED and coding.code in SNOMED_FRACTURES:
            return FractureCode(*SNOMED_FRACTURES[coding.code], coding=k)
    if icd:
        return None
    if any("fractur" in word.lower() for word in concept_words(concept)):
        return FractureCode(None, None, None)
    return None


def _icd10_fracture(code: str) -> tuple[str | None, bool | None] | None:
    if code.startswith(("M80.0", "M80.8")):
        return M80_SITES.get(code[5:6]), True  # M80.00 (unspecified site): not placed
    if not code.startswith(ICD10_FRACTURE_CATEGORIES):
        return None
    if code.startswith("M80"):
        return None, True
    for end in range(len(code), 3, -1):
        if code[:end] in ICD10_SITES:
            return ICD10_SITES[code[:end]], None
    if len(code) < 5 or code.startswith(ICD10_UNPLACED):
        return None, None  # a category alone (S72) or a code that does not say where
    return "other", None
