"""The FHIR identifiers refflow reads and writes: the media type and version,
the code systems (their canonical URIs) and the code sets a Bundle is read
with. Fracture codes have their own module (``fractures``)."""

from __future__ import annotations

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"

NPI = "http://hl7.org/fhir/sid/us-npi"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
LIST_EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
PA_CODES = "http://hl7.org/fhir/us/physical-activity/CodeSystem/pa-temporary-codes"
SDOHCC_TEMP = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
# BSeR (Bidirectional Services eReferral) STU1 1.0.0, the published version:
# the referral's business status a referrer's EHR understands.
BSER_STATUS = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
BSER_DISPLAY = {
    "2.0": "Service Request Created",
    "3.0": "Service Request Accepted",
    "4.0": "Service Request Declined",
    "5.x": "Service Request Fulfillment Initiated",
    "6.0": "Service Request Fulfillment Cancelled",
    "7.0": "Service Request Fulfillment Completed",
}

# LOINC codes of DXA T-scores (every site, either side); the lowest is the referral's.
T_SCORE_CODES = frozenset({
    "38263-0",  # DXA Femur [T-score] Bone density
    "80947-5", "80948-3",  # DXA Femur - right / left [T-score]
    "38264-8",  # DXA Hip [T-score] Bone density
    "80945-9", "80946-7",  # DXA Hip - right / left [T-score]
    "38267-1",  # DXA Lumbar spine [T-score] Bone density
    "38265-5",  # DXA Radius and Ulna [T-score] Bone density
    "80943-4", "80944-2",  # DXA Radius and Ulna - right / left [T-score]
    "38266-3",  # DXA Calcaneus [T-score] Bone density
    "80949-1", "80950-9",  # DXA Calcaneus - right / left [T-score]
    "85390-3", "85388-7", "85389-5",  # DXA Humerus, right, left [T-score]
})
# SNOMED CT codes of the bone diagnoses refflow plans for (ICD-10-CM codes and
# texts are recognised by the plan engine's own vocabulary).
BONE_SNOMED = frozenset({
    "64859006",   # Osteoporosis (disorder)
    "203438009",  # Vertebral osteoporosis (disorder)
    "312894000",  # Osteopenia (disorder)
})
# Condition.clinicalStatus -> the referral's condition status: a condition
# that came back is current ("active"); one inactive, in remission or
# resolved is past ("resolved"), so at most a caution.
CLINICAL_STATUS = {"active": "active", "recurrence": "active", "relapse": "active",
                   "inactive": "resolved", "remission": "resolved", "resolved": "resolved"}
# SNOMED CT routes of administration -> the referral's medication route
ROUTES_SNOMED = {
    "26643006": "oral", "447694001": "inhaled", "18679011000001101": "inhaled",
    "6064005": "topical", "54485002": "eye", "78421000": "injection", "34206005": "injection",
    "47625008": "injection",
}
