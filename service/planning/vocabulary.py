"""Recognising conditions, diagnoses and medications.

Referrals name conditions as free text ("afib", "Parkinson's disease") or as
ICD-10-CM codes ("I48.91"). The rules only need a handful of *concepts*
(cardiac disease, neurological condition, inflammatory arthritis, ...); this
module maps text and codes onto those concepts. Anything it cannot map is
returned as unrecognised so the engine can put it in a ``caution`` flag for
the reviewer instead of silently ignoring it.

Matching is deliberately simple and conservative: whole-word phrase matching
on normalised text (a longer phrase beats a shorter one it contains, so
"unstable angina" is not also "angina"), and longest-prefix matching on codes.
Negations ("no history of stroke") are *not* understood: they over-match,
which errs towards review, never towards release.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

# --------------------------------------------------------------------------
# Concepts. Each: label (generic, shown in flags), ICD-10-CM prefixes, phrases.


class Concept(NamedTuple):
    label: str
    codes: tuple[str, ...]
    phrases: tuple[str, ...]


CONDITIONS: dict[str, Concept] = {
    # ---- bone (diagnosis scope) ----
    "osteoporosis": Concept(
        "osteoporosis",
        ("M80", "M81", "Z87.310"),
        ("osteoporosis", "osteoporotic", "postmenopausal osteoporosis", "fragility fracture"),
    ),
    "osteopenia": Concept(
        "osteopenia / low bone mass",
        ("M85.8",),
        ("osteopenia", "osteopaenia", "low bone mass", "low bone density", "low bmd"),
    ),
    "high_fracture_risk": Concept(
        "high fracture risk",
        (),
        ("high fracture risk", "high risk of fracture", "fracture risk high", "elevated fracture risk"),
    ),
    "vertebral_fracture": Concept(
        "vertebral fracture",
        ("M48.5", "S22.0", "S32.0", "M80.08", "M80.88"),
        ("vertebral fracture", "compression fracture", "vertebral compression fracture",
         "spinal fracture", "collapsed vertebra", "wedge fracture"),
    ),
    "hyperkyphosis": Concept(
        "hyperkyphosis",
        ("M40.0", "M40.2"),
        ("kyphosis", "hyperkyphosis", "dowager s hump", "dowagers hump"),
    ),
    # ---- urgent ----
    "unstable_cardiac": Concept(
        "unstable cardiopulmonary condition",
        ("I20.0", "I21", "I22", "I24", "I26", "I30", "I33", "I40", "I41", "I51.4", "I71.0",
         "Q87.4", "I82.4", "I50.21", "I50.23", "I50.31", "I50.33", "I50.41", "I50.43",
         "R07.1", "R07.2", "R07.89", "R07.9", "R55", "I46"),
        ("unstable angina", "acute coronary syndrome", "acs", "acute mi",
         "acute myocardial infarction", "recent heart attack", "recent myocardial infarction",
         "recent mi", "decompensated heart failure", "acute heart failure",
         "uncontrolled arrhythmia", "severe aortic stenosis", "symptomatic aortic stenosis",
         "aortic dissection", "marfan", "marfan syndrome", "myocarditis", "pericarditis",
         "endocarditis", "pulmonary embolism", "pulmonary embolus", "deep vein thrombosis",
         "dvt", "chest pain", "exertional chest pain", "syncope", "fainting", "blackouts"),
    ),
    "acute_illness": Concept(
        "acute systemic illness",
        ("R50", "A40", "A41", "J10", "J11", "J12", "J13", "J14", "J15", "J16", "J17", "J18",
         "U07.1", "N10"),
        ("fever", "febrile", "acute infection", "systemic infection", "sepsis", "pneumonia",
         "influenza", "flu", "covid", "covid 19", "acute illness"),
    ),
    "spinal_red_flag": Concept(
        "spinal red-flag symptoms",
        ("G83.4", "G95.2", "M46.2", "M46.3", "M46.4", "C79.5", "R63.4"),
        ("cauda equina", "saddle anaesthesia", "saddle anesthesia", "saddle numbness",
         "new bladder dysfunction", "new bowel incontinence", "bladder or bowel change",
         "progressive leg weakness", "progressive leg numbness", "spinal cord compression",
         "cord compression", "unexplained weight loss", "discitis", "spinal infection",
         "vertebral osteomyelitis", "bone metastases", "bone metastasis", "spinal metastases",
         "spinal metastasis"),
    ),
    "cancer": Concept(
        "active cancer",
        tuple(f"C{n:02d}" for n in range(97)),
        ("cancer", "malignancy", "carcinoma", "metastatic", "myeloma", "multiple myeloma",
         "lymphoma", "leukaemia", "leukemia", "sarcoma", "tumour", "tumor"),
    ),
    "immunosuppression": Concept(
        "immunosuppression",
        ("D84", "D80", "D81", "D82", "D83", "B20", "Z94"),
        ("immunosuppressed", "immunosuppression", "immunocompromised", "hiv", "transplant"),
    ),
    # ---- review ----
    "cardiac_disease": Concept(
        "cardiovascular disease",
        ("I20", "I25", "I50", "I34", "I35", "I36", "I37", "I38", "I42", "I44", "I45", "I47",
         "I48", "I49", "Z95.0", "Z95.1", "Z95.2", "Z95.5", "Z95.81", "Z86.79"),
        ("coronary artery disease", "cad", "ischaemic heart disease", "ischemic heart disease",
         "heart disease", "angina", "stable angina", "heart failure", "chf", "congestive heart failure",
         "atrial fibrillation", "afib", "a fib", "af", "arrhythmia", "heart block", "pacemaker",
         "icd", "defibrillator", "implantable defibrillator", "valve disease",
         "valvular heart disease", "aortic stenosis", "mitral regurgitation", "heart valve",
         "old mi", "prior mi", "previous mi", "history of mi", "heart attack",
         "myocardial infarction", "previous heart attack", "cardiomyopathy", "stent", "cabg",
         "bypass surgery"),
    ),
    "hypertension": Concept(
        "hypertension",
        ("I10", "I11", "I12", "I13", "I15"),
        ("hypertension", "high blood pressure", "htn", "hbp", "essential hypertension"),
    ),
    "uncontrolled_hypertension": Concept(
        "uncontrolled hypertension",
        ("I16",),
        ("uncontrolled hypertension", "poorly controlled hypertension", "hypertensive crisis",
         "hypertensive urgency", "uncontrolled blood pressure", "malignant hypertension"),
    ),
    "neuro_vestibular": Concept(
        "neurological or vestibular condition",
        ("G20", "G21", "G35", "G40", "G60", "G61", "G62", "G63", "G64", "E11.4", "E10.4",
         "I63", "I69", "Z86.73", "H81", "R42", "I95.1", "H54", "G11", "G12"),
        ("parkinson", "parkinson s", "parkinsons", "parkinson s disease", "parkinsonism",
         "stroke", "cva", "tia", "transient ischaemic attack", "transient ischemic attack",
         "multiple sclerosis", "ms", "peripheral neuropathy", "neuropathy",
         "diabetic neuropathy", "vertigo", "bppv", "vestibular", "labyrinthitis",
         "meniere", "menieres", "dizziness", "orthostatic hypotension", "postural hypotension",
         "visual impairment", "low vision", "blindness", "macular degeneration", "epilepsy",
         "seizures", "ataxia", "motor neurone disease", "als"),
    ),
    "cognitive": Concept(
        "cognitive impairment",
        ("F01", "F02", "F03", "G30", "G31", "R41.81", "R41.84"),
        ("dementia", "alzheimer", "alzheimers", "alzheimer s", "cognitive impairment",
         "mild cognitive impairment", "mci", "memory loss", "cognitive decline"),
    ),
    "inflammatory_arthritis": Concept(
        "inflammatory arthritis",
        ("M05", "M06", "M07", "M08", "M45", "L40.5", "M32", "M35.3"),
        ("rheumatoid arthritis", "ra", "inflammatory arthritis", "ankylosing spondylitis",
         "psoriatic arthritis", "lupus", "sle", "polymyalgia rheumatica", "pmr",
         "rheumatoid", "ra flare"),
    ),
    "osteoarthritis": Concept(
        "osteoarthritis",
        ("M15", "M16", "M17", "M18", "M19", "M47"),
        ("osteoarthritis", "oa", "arthritis", "degenerative joint disease", "knee arthritis",
         "hip arthritis", "spondylosis"),
    ),
    "severe_osteoarthritis": Concept(
        "severe osteoarthritis",
        (),
        ("severe osteoarthritis", "severe oa", "severe knee osteoarthritis",
         "severe hip osteoarthritis", "end stage osteoarthritis", "bone on bone"),
    ),
    "metabolic_uncontrolled": Concept(
        "uncontrolled metabolic disease",
        ("E16.0", "E16.1", "E16.2", "E11.64", "E10.64", "E11.65", "E10.65", "E05"),
        ("uncontrolled diabetes", "poorly controlled diabetes", "hypoglycaemia",
         "hypoglycemia", "hypos", "hyperthyroidism", "thyrotoxicosis", "graves disease",
         "uncontrolled thyroid"),
    ),
    "diabetes": Concept(
        "diabetes",
        ("E10", "E11", "E13"),
        ("diabetes", "diabetes mellitus", "type 2 diabetes", "type 1 diabetes", "t2dm", "t1dm",
         "dm2", "niddm", "iddm"),
    ),
    "surgery": Concept(
        "recent surgery or surgical precautions",
        ("Z96.64", "Z96.65", "Z96.66", "Z47.1", "Z98.1", "Z48"),
        ("hip replacement", "knee replacement", "joint replacement", "total hip arthroplasty",
         "total knee arthroplasty", "tha", "tka", "recent surgery", "post op", "postoperative",
         "spinal fusion", "kyphoplasty", "vertebroplasty", "surgical precautions",
         "hip precautions"),
    ),
    "unsteadiness": Concept(
        "unsteadiness or repeated falls",
        ("R26.81", "R26.89", "R29.6", "Z91.81", "W19", "W01", "W18"),
        ("unsteady", "unsteadiness", "unsteady on feet", "fear of falling", "history of falls",
         "frequent falls", "recurrent falls", "repeated falls", "poor balance",
         "balance problems", "gait disorder", "falls"),
    ),
    "respiratory": Concept(
        "chronic lung disease",
        ("J44", "J45", "J43", "J84"),
        ("copd", "emphysema", "chronic bronchitis", "asthma", "pulmonary fibrosis",
         "interstitial lung disease"),
    ),
    "pregnancy": Concept(
        "pregnancy",
        ("Z33", "Z34", "O"),
        ("pregnant", "pregnancy"),
    ),
    "premenopausal": Concept(
        "premenopausal",
        (),
        ("premenopausal", "pre menopausal"),
    ),
    # ---- recognised, no rule needs them ----
    "other_known": Concept(
        "other recognised condition",
        ("E78", "E03", "K21", "F32", "F33", "F41", "E66", "E55", "N95", "Z78.0", "G47.0",
         "N40", "H40", "H25", "H90", "H91", "N39.4", "R32", "D64", "N18", "K59", "M54",
         "Z85", "Z79", "E83.5", "M25"),
        ("hyperlipidaemia", "hyperlipidemia", "high cholesterol", "dyslipidaemia",
         "dyslipidemia", "hypothyroidism", "underactive thyroid", "gerd", "reflux", "gord",
         "depression", "anxiety", "obesity", "overweight", "vitamin d deficiency",
         "menopause", "postmenopausal", "insomnia", "bph", "glaucoma", "cataract",
         "cataracts", "hearing loss", "urinary incontinence", "incontinence", "anaemia",
         "anemia", "chronic kidney disease", "ckd", "constipation", "low back pain",
         "back pain", "history of cancer", "breast cancer in remission", "joint pain"),
    ),
}

URGENT_CONCEPTS = ("unstable_cardiac", "acute_illness", "spinal_red_flag")
BONE_DIAGNOSES = ("osteoporosis", "osteopenia", "high_fracture_risk")

# --------------------------------------------------------------------------
# Medications: class, prednisolone-equivalent factor for glucocorticoids.


class Drug(NamedTuple):
    drug_class: str
    pred_factor: float = 0.0


_MED_TABLE: dict[str, Drug] = {}


def _meds(drug_class: str, names: str, factor: float = 0.0) -> None:
    for name in names.split(","):
        _MED_TABLE[name.strip()] = Drug(drug_class, factor)


_meds("glucocorticoid", "prednisone, prednisolone, deltasone", 1.0)
_meds("glucocorticoid", "methylprednisolone, medrol, triamcinolone", 1.25)
_meds("glucocorticoid", "dexamethasone", 6.67)
_meds("glucocorticoid", "hydrocortisone, cortef", 0.25)
_meds("glucocorticoid", "cortisone", 0.2)
_meds("glucocorticoid", "deflazacort", 0.83)
_meds("glucocorticoid", "budesonide, betamethasone", 0.0)  # factor unknown -> dose unknown
_meds("glucocorticoid", "steroid, steroids, oral steroids, corticosteroid, corticosteroids, "
      "glucocorticoid, glucocorticoids", 0.0)
_meds("inhaled_steroid", "fluticasone, beclomethasone, mometasone, inhaled steroid, "
      "steroid inhaler, budesonide inhaler")
_meds("bone_agent", "alendronate, alendronic acid, fosamax, risedronate, actonel, ibandronate, "
      "zoledronic acid, zoledronate, reclast, aclasta, denosumab, prolia, teriparatide, forteo, "
      "abaloparatide, tymlos, romosozumab, evenity, raloxifene, evista, calcium, "
      "calcium carbonate, calcium citrate, vitamin d, vitamin d3, cholecalciferol, "
      "ergocalciferol, calcitriol, estradiol, hrt, hormone replacement therapy, estrogen, oestrogen")
_meds("beta_blocker", "metoprolol, atenolol, bisoprolol, propranolol, carvedilol, nebivolol, "
      "labetalol, sotalol")
_meds("anticoagulant", "warfarin, coumadin, apixaban, eliquis, rivaroxaban, xarelto, dabigatran, "
      "edoxaban, heparin, enoxaparin, clopidogrel, plavix, ticagrelor")
_meds("fall_risk", "diazepam, lorazepam, alprazolam, clonazepam, temazepam, zolpidem, zopiclone, "
      "oxycodone, morphine, tramadol, codeine, hydrocodone, fentanyl, quetiapine, risperidone, "
      "olanzapine, haloperidol, gabapentin, pregabalin, amitriptyline, nortriptyline, trazodone, "
      "mirtazapine, doxazosin, tamsulosin, oxybutynin")
_meds("hypoglycaemic", "insulin, glipizide, glyburide, glibenclamide, glimepiride, gliclazide")
_meds("immunosuppressant", "methotrexate, azathioprine, mycophenolate, tacrolimus, ciclosporin, "
      "cyclosporine, adalimumab, etanercept, infliximab, tocilizumab, rituximab")
_meds("aromatase_inhibitor", "letrozole, anastrozole, exemestane")
_meds("other_known", "lisinopril, ramipril, enalapril, perindopril, losartan, valsartan, "
      "irbesartan, candesartan, telmisartan, amlodipine, nifedipine, diltiazem, verapamil, "
      "hydrochlorothiazide, hctz, chlorthalidone, indapamide, furosemide, spironolactone, "
      "metformin, sitagliptin, empagliflozin, dapagliflozin, semaglutide, liraglutide, "
      "atorvastatin, simvastatin, rosuvastatin, pravastatin, ezetimibe, levothyroxine, "
      "thyroxine, omeprazole, pantoprazole, lansoprazole, esomeprazole, famotidine, aspirin, "
      "acetaminophen, paracetamol, ibuprofen, naproxen, celecoxib, diclofenac, sertraline, "
      "citalopram, escitalopram, fluoxetine, venlafaxine, duloxetine, donepezil, memantine, "
      "levodopa, carbidopa, tamoxifen, allopurinol, montelukast, salbutamol, albuterol, "
      "tiotropium, finasteride, vitamin b12, folic acid, iron, ferrous sulfate, magnesium, "
      "multivitamin, fish oil, omega 3")

_WORD = re.compile(r"[^a-z0-9]+")
_DOSE = re.compile(r"(\d+(?:\.\d+)?)\s*mg", re.IGNORECASE)
_CODE = re.compile(r"^[A-TV-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?$")


def normalise_text(text: str) -> str:
    return " " + _WORD.sub(" ", text.lower()).strip() + " "


def normalise_code(text: str) -> str | None:
    code = text.strip().upper()
    if not _CODE.match(code):
        return None
    if len(code) > 3 and "." not in code:
        code = code[:3] + "." + code[3:]
    return code


def _build_phrase_index() -> list[tuple[str, str]]:
    out = []
    for key, concept in CONDITIONS.items():
        for phrase in concept.phrases:
            out.append((normalise_text(phrase), key))
    out.sort(key=lambda item: (-len(item[0]), item[0]))
    return out


def _build_code_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for key, concept in CONDITIONS.items():
        for code in concept.codes:
            index.setdefault(code, key)
    return index


_PHRASES = _build_phrase_index()
_CODES = _build_code_index()
_MED_PHRASES = sorted(((normalise_text(n), d) for n, d in _MED_TABLE.items()),
                      key=lambda item: (-len(item[0]), item[0]))


def match_code(code: str) -> str | None:
    """The concept of an (already normalised) ICD-10-CM code, by longest prefix."""
    for end in range(len(code), 0, -1):
        key = _CODES.get(code[:end])
        if key is not None:
            return key
    return None


@lru_cache(maxsize=4096)
def match_condition(text: str) -> frozenset[str]:
    """Concepts named by one condition entry (free text or an ICD-10-CM code)."""
    code = normalise_code(text)
    if code is not None:
        key = match_code(code)
        return frozenset((key,)) if key else frozenset()
    norm = normalise_text(text)
    found: set[str] = set()
    matched: list[str] = []
    for phrase, key in _PHRASES:  # longest first
        if phrase in norm and not any(phrase.strip() in longer for longer in matched):
            matched.append(phrase)
            found.add(key)
    return frozenset(found)


class MedMatch(NamedTuple):
    drug_class: str | None
    pred_factor: float
    dose_mg: float | None


@lru_cache(maxsize=4096)
def match_medication(name: str) -> MedMatch:
    norm = normalise_text(name)
    dose = None
    m = _DOSE.search(name)
    if m:
        dose = float(m.group(1))
    for phrase, drug in _MED_PHRASES:
        if phrase in norm:
            return MedMatch(drug.drug_class, drug.pred_factor, dose)
    return MedMatch(None, 0.0, dose)


SPINAL_SITE_WORDS = ("back", "spine", "spinal", "lumbar", "thoracic", "vertebra", "vertebral",
                     "neck", "cervical", "sacral", "sacrum", "coccyx", "lumbosacral", "rib")


@lru_cache(maxsize=1024)
def is_spinal_site(site: str) -> bool:
    norm = normalise_text(site)
    return any(f" {w}" in norm for w in SPINAL_SITE_WORDS)


def concept_label(key: str) -> str:
    return CONDITIONS[key].label
