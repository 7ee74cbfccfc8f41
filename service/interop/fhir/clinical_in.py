"""The clinical part of a referral Bundle, read into the referral JSON: the
bone diagnosis and the other conditions (Conditions and the ServiceRequest's
reasonCode), the fracture history (fracture Conditions, or a List saying none
are known), the lowest DXA T-score, the medications and the goals. Each
field's origin is kept for refflow's field errors."""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.servicerequest import ServiceRequest

from refflow.interop.fhir.codes import (
    BONE_SNOMED,
    CLINICAL_STATUS,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    LIST_EMPTY_REASON,
    LOINC,
    RXNORM,
    SNOMED,
    T_SCORE_CODES,
)
from refflow.interop.fhir.datatypes import (
    codes,
    concept_text,
    concept_words,
    date_text,
    icd10_codes,
    is_day,
    mg_per_day,
    route,
)
from refflow.interop.fhir.entries import Entries, Entry, Where
from refflow.interop.fhir.fractures import FRACTURE_LIST_CODE, NIL_KNOWN, fracture_of
from refflow.interop.fhir.outcome import FhirError, Issue
from refflow.planning.vocabulary import BONE_DIAGNOSES, match_code, match_condition


def _is_bone(concept: CodeableConcept) -> bool:
    """Whether a condition is one refflow plans for (osteoporosis, osteopenia,
    high fracture risk): by ICD-10-CM code, SNOMED CT code or its words."""
    if any(match_code(code) in BONE_DIAGNOSES for code, _ in icd10_codes(concept)):
        return True
    if codes(concept, SNOMED) & BONE_SNOMED:
        return True
    return any(match_condition(w) & set(BONE_DIAGNOSES) for w in concept_words(concept))


@dataclass
class _FractureHistory:
    """The fractures a Bundle names (None: the history is not known) and the
    Conditions they came from (not repeated among the other conditions)."""

    fractures: list[dict] | None
    conditions: list[object]


class ClinicalReader:
    """The clinical resources of a Bundle about one patient; ``origins``
    (shared with the rest of the reading) records where each field came from."""

    def __init__(self, entries: Entries, origins: dict[str, Where], patient: Entry) -> None:
        self.entries = entries
        self.origins = origins
        self.patient = patient

    def read(self, sr: ServiceRequest,
             where: Where) -> tuple[dict | None, dict, list[str]]:
        """The referral's ``diagnosis``, ``clinical`` and ``goals``."""
        history = self._fracture_history()
        diagnosis, conditions = self._conditions(sr, where, history.conditions)
        clinical: dict = {}
        t_score = self._t_score()
        if t_score is not None:
            clinical["t_score"] = t_score
        if history.fractures is not None:
            clinical["fractures"] = history.fractures
        if conditions:
            clinical["conditions"] = conditions
        medications = self._medications()
        if medications:
            clinical["medications"] = medications
        return diagnosis, clinical, self._goals()

    def _stated_conditions(self) -> list[Entry]:
        """The Conditions of the Bundle with a code, neither refuted nor entered
        in error (each about the referral's patient)."""
        out = []
        for entry in self.entries.of_type("Condition"):
            c = entry.resource
            verification = codes(c.verificationStatus, CONDITION_VERIFICATION)
            if verification & {"refuted", "entered-in-error"} or c.code is None:
                continue
            self.entries.check_patient(entry, self.patient)
            out.append(entry)
        return out

    def _conditions(self, sr: ServiceRequest, where: Where,
                    fractures: list[object]) -> tuple[dict | None, list[dict]]:
        """The bone diagnosis (osteoporosis, osteopenia) and the other conditions,
        from the ServiceRequest's reasonCode and every Condition in the Bundle
        (a fracture read into the fracture history is not repeated as a
        condition)."""
        # (where, where its code is, the code, the Condition or None for a reasonCode)
        found: list[tuple[Where, Where, CodeableConcept, object | None]] = []
        for k, concept in enumerate(sr.reasonCode or []):
            at = where.at(f"reasonCode[{k}]")
            found.append((at, at, concept, None))
        for entry in self._stated_conditions():
            found.append((entry.where, entry.where.at("code"), entry.resource.code,
                          entry.resource))
        self.origins["diagnosis"] = where.at("reasonCode")
        if not found:
            return None, []
        bone = [item for item in found if _is_bone(item[2])]
        chosen = bone or found[:1]  # none in scope: the first reason, for the engine to hold
        diagnosis_codes: list[str] = []
        texts: list[str] = []
        for _, code_at, concept, _ in chosen:
            for code, k in icd10_codes(concept):
                if code not in diagnosis_codes:
                    self.origins[f"diagnosis.codes.{len(diagnosis_codes)}"] = \
                        code_at.at(f"coding[{k}].code")
                    diagnosis_codes.append(code)
            text = concept_text(concept)
            if text and text not in texts:
                texts.append(text)
        diagnosis: dict = {"codes": diagnosis_codes} if diagnosis_codes else {}
        if texts:
            diagnosis["text"] = "; ".join(texts)
            self.origins["diagnosis.text"] = chosen[0][1]
        self.origins["diagnosis"] = chosen[0][0]
        others = [item for item in found if all(item is not c for c in chosen)
                  and all(item[3] is not f for f in fractures)]
        conditions = [self._condition(at, code_at, concept, condition, n)
                      for n, (at, code_at, concept, condition) in enumerate(others)]
        return diagnosis, conditions

    def _condition(self, at: Where, code_at: Where, concept: CodeableConcept, condition,
                   n: int) -> dict:
        key = f"clinical.conditions.{n}"
        self.origins[key] = at
        out: dict = {}
        text = concept_text(concept)
        if text:
            out["text"] = text
            self.origins[f"{key}.text"] = code_at
        icd = icd10_codes(concept)
        if icd:
            out["code"] = icd[0][0]
            self.origins[f"{key}.code"] = code_at.at(f"coding[{icd[0][1]}].code")
        if condition is not None:
            clinical = codes(condition.clinicalStatus, CONDITION_CLINICAL)
            status = next((CLINICAL_STATUS[c] for c in clinical if c in CLINICAL_STATUS), None)
            if status:
                out["status"] = status
                self.origins[f"{key}.status"] = at.at("clinicalStatus")
            if is_day(condition.onsetDateTime):  # a partial date is not a day
                out["since"] = date_text(condition.onsetDateTime)
                self.origins[f"{key}.since"] = at.at("onsetDateTime")
        return out

    def _fracture_history(self) -> _FractureHistory:
        """The fractures the Conditions name, each with its site, its onset as
        the date and low_trauma when the code says so; none, when a List of
        fractures (SNOMED CT 125605004) is empty with emptyReason nilknown;
        not known otherwise, or when a Condition names a fracture without
        saying where (``fractures``)."""
        placed: list[tuple[Entry, object]] = []
        for entry in self._stated_conditions():
            fracture = fracture_of(entry.resource.code)
            if fracture is None:
                continue
            if fracture.site is None:
                return _FractureHistory(None, [])  # a fracture refflow cannot place
            placed.append((entry, fracture))
        if not placed:
            nil = self._no_known_fractures()
            if nil is None:
                return _FractureHistory(None, [])
            self.origins["clinical.fractures"] = nil.where.at("emptyReason")
            return _FractureHistory([], [])
        out = []
        for n, (entry, fracture) in enumerate(placed):
            key, c = f"clinical.fractures.{n}", entry.resource
            code_at = entry.where.at("code")
            if fracture.coding is not None:
                code_at = code_at.at(f"coding[{fracture.coding}].code")
            self.origins[key] = entry.where
            item: dict = {"site": fracture.site}
            self.origins[f"{key}.site"] = code_at
            if is_day(c.onsetDateTime):
                item["date"] = date_text(c.onsetDateTime)
                self.origins[f"{key}.date"] = entry.where.at("onsetDateTime")
            if fracture.low_trauma is not None:
                item["low_trauma"] = fracture.low_trauma
                self.origins[f"{key}.low_trauma"] = code_at
            out.append(item)
        self.origins["clinical.fractures"] = placed[0][0].where
        return _FractureHistory(out, [entry.resource for entry, _ in placed])

    def _no_known_fractures(self) -> Entry | None:
        """The List saying the patient has no known fractures, if one does."""
        for entry in self.entries.of_type("List"):
            listed = entry.resource
            if FRACTURE_LIST_CODE not in codes(listed.code, SNOMED) \
                    or listed.status != "current":
                continue
            self.entries.check_patient(entry, self.patient)
            if NIL_KNOWN not in codes(listed.emptyReason, LIST_EMPTY_REASON):
                continue
            if listed.entry:
                raise FhirError(422, Issue("a List with an emptyReason has no entries "
                                           "(FHIR invariant lst-1)",
                                           entry.where.at("entry").expression, "invariant"))
            return entry
        return None

    def _t_score(self) -> float | None:
        """The lowest DXA T-score of the Observations (or their components)."""
        lowest: tuple[float, Where] | None = None
        for entry in self.entries.of_type("Observation"):
            o = entry.resource
            if o.status in ("entered-in-error", "cancelled"):
                continue
            values = []
            if codes(o.code, LOINC) & T_SCORE_CODES and o.valueQuantity is not None:
                values.append((o.valueQuantity.value, entry.where.at("valueQuantity.value")))
            for k, part in enumerate(o.component or []):
                if codes(part.code, LOINC) & T_SCORE_CODES and part.valueQuantity is not None:
                    values.append((part.valueQuantity.value,
                                   entry.where.at(f"component[{k}].valueQuantity.value")))
            values = [(v, at) for v, at in values if v is not None]
            if values:
                self.entries.check_patient(entry, self.patient)
            for value, at in values:
                if lowest is None or value < lowest[0]:
                    lowest = (value, at)
        if lowest is None:
            return None
        self.origins["clinical.t_score"] = lowest[1]
        return float(lowest[0])

    def _medications(self) -> list:
        out = []
        for entry in self.entries.of_type("MedicationStatement"):
            m, where = entry.resource, entry.where
            if m.status in ("entered-in-error", "not-taken"):
                continue
            self.entries.check_patient(entry, self.patient)
            key = f"clinical.medications.{len(out)}"
            self.origins[key] = where
            concept, concept_at = m.medicationCodeableConcept, where.at("medicationCodeableConcept")
            if concept is None:
                medication = self.entries.resolve(m.medicationReference)
                if medication is not None and medication.type == "Medication":
                    concept, concept_at = medication.resource.code, medication.where.at("code")
            name = concept_text(concept, prefer=RXNORM) if concept is not None else None
            if not name:
                raise FhirError(422, Issue("the medication needs a name (a text or a display)",
                                           concept_at.expression, "required"))
            item: dict = {"name": name}
            self.origins[f"{key}.name"] = concept_at
            dosage = (m.dosage or [None])[0]
            per_day = mg_per_day(dosage)
            if per_day is not None:
                item["dose_mg_per_day"] = per_day
                self.origins[f"{key}.dose_mg_per_day"] = where.at("dosage[0]")
            given = route(dosage.route) if dosage is not None and dosage.route else None
            if given:
                item["route"] = given
                self.origins[f"{key}.route"] = where.at("dosage[0].route")
            start = m.effectivePeriod.start if m.effectivePeriod else m.effectiveDateTime
            if is_day(start):
                item["since"] = date_text(start)
                self.origins[f"{key}.since"] = where.at(
                    "effectivePeriod.start" if m.effectivePeriod else "effectiveDateTime")
            out.append(item if len(item) > 1 else name)
        return out

    def _goals(self) -> list[str]:
        out = []
        for entry in self.entries.of_type("Goal"):
            g = entry.resource
            if g.lifecycleStatus in ("cancelled", "entered-in-error", "rejected", "completed"):
                continue
            text = g.description.text if g.description else None
            if text and text.strip():
                self.entries.check_patient(entry, self.patient)
                self.origins[f"goals.{len(out)}"] = entry.where.at("description.text")
                out.append(text.strip())
        return out

