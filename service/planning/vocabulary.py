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

import datetime as dt
import re
from functools import lru_cache
from typing import NamedTuple

from babel import Locale, UnknownLocaleError

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
        "unstable heart condition",
        ("I20.0", "I24", "I51.4", "I71.0",
         "Q87.4", "I50.21", "I50.23", "I50.31", "I50.33", "I50.41", "I50.43", "I46"),
        ("unstable angina", "acute coronary syndrome", "acs", "acute mi",
         "acute myocardial infarction", "recent heart attack", "recent myocardial infarction",
         "recent mi", "decompensated heart failure", "acute heart failure",
         "uncontrolled arrhythmia", "severe aortic stenosis", "symptomatic aortic stenosis",
         "aortic dissection", "marfan", "marfan syndrome", "fast af", "rapid af",
         "uncontrolled af", "uncontrolled atrial fibrillation", "af with rvr", "af rvr",
         "rapid ventricular response"),
    ),
    "heart_inflammation": Concept(
        "myocarditis, pericarditis or endocarditis",
        ("I30", "I33", "I40", "I41"),
        ("myocarditis", "pericarditis", "endocarditis"),
    ),
    # A heart attack is an event: acute when dated recently or called recent,
    # otherwise (undated too) known heart disease, which a clinician clears.
    "heart_attack": Concept(
        "heart attack",
        ("I21", "I22"),
        ("mi", "heart attack", "myocardial infarction", "nstemi", "stemi", "old mi", "prior mi",
         "previous mi", "history of mi", "remote mi", "previous heart attack"),
    ),
    "acute_vascular": Concept(
        "pulmonary embolism, deep vein thrombosis, chest pain or fainting",
        ("I26", "I82.4", "R07.1", "R07.2", "R07.89", "R07.9", "R55"),
        ("pulmonary embolism", "pulmonary embolus", "pe", "deep vein thrombosis", "dvt",
         "chest pain", "exertional chest pain", "chest pain on exertion", "syncope",
         "vasovagal syncope", "fainting", "faints", "blackouts", "blackout"),
    ),
    "acute_illness": Concept(
        "acute systemic illness",
        ("R50", "A40", "A41", "J10", "J11", "J12", "J13", "J14", "J15", "J16", "J17", "J18",
         "U07.1", "N10"),
        ("fever", "feverish", "pyrexia", "high temperature", "chest infection",
         "lower respiratory tract infection", "lrti", "acute bronchitis", "acute infection", "systemic infection", "sepsis", "pneumonia",
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
         "cardiomyopathy", "stent", "cabg", "aicd", "icd device", "mitral valve prolapse", "mvp",
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
    "severe_lung_disease": Concept(
        "severe lung disease or long-term oxygen",
        ("J96.1", "Z99.81", "I27", "J84.1", "J43.9"),
        ("home oxygen", "long term oxygen", "long term oxygen therapy", "ltot", "oxygen therapy",
         "on oxygen", "supplemental oxygen", "oxygen dependent", "oxygen at night",
         "ambulatory oxygen", "severe copd", "very severe copd", "end stage copd", "gold 3",
         "gold 4", "gold stage 3", "gold stage 4", "severe emphysema", "pulmonary hypertension",
         "respiratory failure", "chronic respiratory failure", "severe asthma",
         "idiopathic pulmonary fibrosis", "ipf"),
    ),
    "frailty": Concept(
        "frailty",
        ("R54",),
        ("frail", "frailty", "frail elderly", "senile debility", "housebound"),
    ),
    "lives_alone": Concept(
        "lives alone",
        ("Z60.2",),
        ("lives alone", "living alone", "lives on her own", "lives on his own", "lives by herself",
         "lives by himself", "lives on own", "lives independently alone"),
    ),
    "vaccination": Concept(
        "a vaccination (not a condition)",
        ("Z23",),
        (),
    ),
    # what a condition becomes when the referral says it is past, resolved or
    # stable (see ``WHEN_NOT_CURRENT``); no phrase maps here directly
    "past_condition": Concept("a past or resolved condition", (), ()),
    "past_surgery": Concept("joint replacement or surgery in the past", (), ()),
    "inflammatory_arthritis_stable": Concept("inflammatory arthritis, stable", (), ()),
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
_meds("local_steroid", "fluticasone, beclomethasone, mometasone, inhaled steroid, "
      "steroid inhaler, budesonide inhaler, steroid cream, steroid eye drops, clobetasol")
_meds("oxygen", "oxygen, home oxygen, supplemental oxygen, long term oxygen")
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


# "hypertension (ICD-10 I10)": the words "ICD-10" name a code system, not an
# implantable cardioverter-defibrillator; the codes after them are read as codes.
_ICD_MENTION = re.compile(r"\bicd[- ]?(?:10|9)(?:[- ]?cm)?\b:?", re.IGNORECASE)
_CODE_IN_TEXT = re.compile(r"\b[A-TV-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?\b")
_VACCINE_WORDS = (" vaccine ", " vaccines ", " vaccination ", " vaccinations ", " vaccinated ",
                  " immunization ", " immunisation ", " immunized ", " booster ", " jab ",
                  " flu shot ", " covid shot ")


@lru_cache(maxsize=4096)
def match_condition(text: str) -> frozenset[str]:
    """Concepts named by one condition entry (free text or an ICD-10-CM code)."""
    code = normalise_code(text)
    if code is not None:
        key = match_code(code)
        return frozenset((key,)) if key else frozenset()
    found: set[str] = set()
    if _ICD_MENTION.search(text):
        for written in _CODE_IN_TEXT.findall(_ICD_MENTION.sub(" ", text)):
            key = match_code(normalise_code(written))
            if key:
                found.add(key)
        text = _ICD_MENTION.sub(" ", text)
    norm = normalise_text(text)
    if any(w in norm for w in _VACCINE_WORDS):
        return frozenset(("vaccination",))  # "flu vaccine given" is not influenza
    matched: list[str] = []
    for phrase, key in _PHRASES:  # longest first
        if phrase in norm and not any(phrase.strip() in longer for longer in matched):
            matched.append(phrase)
            found.add(key)
    return frozenset(found)


# --------------------------------------------------------------------------
# When a condition happened: "pulmonary embolism 2015, resolved", "RA, no
# flare", "DVT 2 weeks ago". Only an acute or current condition can be an
# absolute contraindication (guidance §3.1); a past one is at most a caution.

# What an episodic concept becomes when the referral says it is past,
# resolved or stable. Concepts not listed are chronic: their status changes
# nothing (a stroke in 2010 is still a neurological condition).
WHEN_NOT_CURRENT: dict[str, str] = {
    "unstable_cardiac": "cardiac_disease",  # e.g. an old aortic dissection: clearance
    "heart_attack": "cardiac_disease",  # an old heart attack is heart disease: clearance
    "heart_inflammation": "past_condition",
    "acute_vascular": "past_condition",
    "acute_illness": "past_condition",
    "spinal_red_flag": "past_condition",
    "metabolic_uncontrolled": "past_condition",
    "uncontrolled_hypertension": "hypertension",
    "surgery": "past_surgery",
    "inflammatory_arthritis": "inflammatory_arthritis_stable",
    "cancer": "past_condition",
    "pregnancy": "past_condition",
}
# Concepts whose date is the date of the event: an old date means past. (The
# date of an arthritis or a cancer is when it began, which says nothing.)
# Concepts that are only acute when the referral says so: what they become
# when current (an undated "MI" is an old one; "MI last month" is not).
WHEN_CURRENT: dict[str, str] = {"heart_attack": "unstable_cardiac"}
DATED_EVENTS = frozenset({"unstable_cardiac", "heart_attack", "heart_inflammation", "acute_vascular", "acute_illness", "spinal_red_flag",
                          "metabolic_uncontrolled", "surgery", "pregnancy"})
RECENT_DAYS = 90  # an event this recent is current (about 12 weeks) [D]
RECENT_SURGERY_DAYS = 365  # surgical precautions can last months [D]

_PAST_WORDS = tuple(normalise_text(w) for w in (
    "resolved", "history of", "h o", "hx of", "hx", "past history", "previous", "previously",
    "prior", "remote", "old", "in remission", "remission", "recovered", "cured", "childhood",
    "as a child", "no recurrence", "ruled out", "excluded", "normal angiogram",
    "normal angiography", "normal coronary angiogram", "normal stress test", "normal echo",
    "normal ecg", "negative", "no evidence of", "long ago", "healed", "completed treatment"))
_STABLE_WORDS = tuple(normalise_text(w) for w in (
    "stable", "controlled", "well controlled", "no flare", "no flares", "not flaring",
    "no active", "not active", "quiescent", "inactive", "settled", "under control", "no recent flare"))
_NOT_STABLE_WORDS = tuple(normalise_text(w) for w in (
    "not controlled", "not yet controlled", "not rate controlled", "not yet rate controlled",
    "poorly controlled", "not well controlled", "not stable", "unstable", "uncontrolled"))
_CURRENT_WORDS = tuple(normalise_text(w) for w in (
    "flare", "flaring", "flare up", "active", "acute", "new", "current", "currently", "ongoing",
    "recent", "recently", "worsening", "unstable", "precautions", "post op", "postoperative",
    "awaiting", "on treatment", "undergoing", "this week", "last week", "this month", "last month",
    "yesterday", "today"))
_AGO = re.compile(r"(\d+)\s*(day|week|month|year)s?\s+ago", re.IGNORECASE)
_AGO_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
_ISO_DATE = re.compile(r"\b((?:19|20)\d{2})-(\d{2})-(\d{2})\b")
_MONTH_NAME_YEAR = re.compile(
    r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+((?:19|20)\d{2})\b",
    re.IGNORECASE)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_YEAR = re.compile(r"\b(\d{1,2})/((?:19|20)\d{2})\b")
_YEAR = re.compile(r"(?<![\d-])((?:19|20)\d{2})(?![\d-])")


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)


class Timing(NamedTuple):
    """What the text of one condition entry says about when it was."""

    said: str | None  # "past", "stable", "current", or None when it says nothing
    on: dt.date | None  # the latest day it names (a year alone: its last day)


@lru_cache(maxsize=4096)
def condition_timing(text: str) -> Timing:
    norm = normalise_text(text)
    days = [dt.date(int(y), int(m), int(d)) for y, m, d in _ISO_DATE.findall(text)
            if 1 <= int(m) <= 12 and 1 <= int(d) <= 31]
    months = [(int(y), int(m)) for m, y in _MONTH_YEAR.findall(text) if 1 <= int(m) <= 12]
    months += [(int(y), _MONTHS.index(m.lower()) + 1) for m, y in _MONTH_NAME_YEAR.findall(text)]
    days += [_month_end(y, m) for y, m in months]
    if not days:
        days = [dt.date(int(y), 12, 31) for y in _YEAR.findall(_ISO_DATE.sub(" ", text))]
    ago = [int(n) * _AGO_DAYS[unit.lower()] for n, unit in _AGO.findall(text)]
    on = max(days) if days else None
    if ago and min(ago) < RECENT_DAYS:
        return Timing("current", on)
    if any(w in norm for w in _PAST_WORDS) or (ago and min(ago) >= RECENT_DAYS):
        return Timing("past", on)
    if any(w in norm for w in _NOT_STABLE_WORDS):
        return Timing("current", on)
    stable = any(w in norm for w in _STABLE_WORDS)
    for w in _STABLE_WORDS:  # "no flare" is not a flare
        norm = norm.replace(w, " ")
    if any(w in norm for w in _CURRENT_WORDS):
        return Timing("current", on)
    return Timing("stable" if stable else None, on)


STATUS_READING = {"active": "current", "flare": "current", "stable": "stable", "resolved": "past"}


def is_current(concept: str, said: str | None, on: dt.date | None, as_of: dt.date) -> bool:
    """Whether ``concept`` is acute or current given what the referral says.

    Unknown is current (the cautious case); chronic concepts are always current."""
    if concept not in WHEN_NOT_CURRENT or said == "current":
        return True
    if said in ("past", "stable"):
        return False
    if on is not None and concept in DATED_EVENTS:
        window = RECENT_SURGERY_DAYS if concept == "surgery" else RECENT_DAYS
        return (as_of - on).days < window
    return concept not in WHEN_CURRENT


def mentions(text: str, concept: str) -> bool:
    """Whether free text (a note, not a condition entry) names ``concept`` by one
    of its phrases: "Widowed, lives alone" mentions ``lives_alone``."""
    norm = normalise_text(text)
    return any(phrase in norm for phrase, key in _PHRASES if key == concept)


class MedMatch(NamedTuple):
    drug_class: str | None
    pred_factor: float
    dose_mg: float | None
    route: str | None  # what the name says: "prednisolone eye drops" is "eye"
    short_course: bool  # "for 5 days", "burst", "taper": taken in courses, not every day
    course_days: int | None  # "for 5 days": 5


# A steroid by these routes acts where it is put (an eye, the skin, the lungs,
# a joint): it does not thin bone the way a daily oral dose does (GC_RISK).
LOCAL_ROUTES = frozenset({"eye", "topical", "inhaled", "injection"})
_ROUTE_WORDS = (
    ("eye", ("eye drops", "eye drop", "eyedrops", "ophthalmic", "eye")),
    ("topical", ("cream", "ointment", "gel", "lotion", "topical", "skin", "scalp")),
    ("inhaled", ("inhaler", "inhaled", "puffer", "nebuliser", "nebulizer", "nasal spray", "nasal",
                 "spray", "mdi")),
    ("injection", ("injection", "injected", "intra articular", "joint injection", "depot", "im",
                   "intramuscular", "shot")),
)
_COURSE_WORDS = tuple(normalise_text(w) for w in (
    "burst", "short course", "course of", "courses", "taper", "tapering", "pulse", "as needed",
    "prn", "when needed", "for flares", "rescue pack", "rescue"))
_FOR_DAYS = re.compile(r"(?:\bfor|\bx|×)\s*(\d+)\s*(day|week)s?\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def match_medication(name: str) -> MedMatch:
    norm = normalise_text(name)
    dose = None
    m = _DOSE.search(name)
    if m:
        dose = float(m.group(1))
    route = next((r for r, words in _ROUTE_WORDS if any(f" {w} " in norm for w in words)), None)
    m = _FOR_DAYS.search(name)
    days = int(m.group(1)) * (7 if m.group(2).lower() == "week" else 1) if m else None
    short = (days is not None and days < 90) or any(w in norm for w in _COURSE_WORDS)
    for phrase, drug in _MED_PHRASES:
        if phrase in norm:
            return MedMatch(drug.drug_class, drug.pred_factor, dose, route, short, days)
    return MedMatch(None, 0.0, dose, route, short, days)


SPINAL_SITE_WORDS = ("back", "spine", "spinal", "lumbar", "thoracic", "vertebra", "vertebral",
                     "neck", "cervical", "sacral", "sacrum", "coccyx", "lumbosacral", "rib")


@lru_cache(maxsize=1024)
def is_spinal_site(site: str) -> bool:
    norm = normalise_text(site)
    return any(f" {w}" in norm for w in SPINAL_SITE_WORDS)


def concept_label(key: str) -> str:
    return CONDITIONS[key].label


@lru_cache(maxsize=64)
def language_name(code: str) -> str:
    """ "es" -> "Spanish" (CLDR names through Babel); the code itself if unknown."""
    try:
        return Locale.parse(code).get_display_name("en") or code
    except (ValueError, UnknownLocaleError):
        return code
