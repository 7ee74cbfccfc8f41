"""FHIR R4: a referral Bundle in, the referral out as a Task, a ServiceRequest
and its documents (DESIGN.md "Public contract", issue 18). No Flask here:
``refflow.web.fhir`` serves it.

Everything is parsed and built with the ``fhir.resources`` R4B models (for the
resources used here, R4B and R4 have the same elements, so the JSON is what an
R4 client expects).

- ``codes``: the media type, the FHIR version, code systems and code sets.
- ``outcome``: ``Issue``, ``FhirError`` and the OperationOutcome they become.
- ``datatypes``: reading CodeableConcepts, names, dates and dosages.
- ``fractures``: fracture codes (ICD-10-CM, SNOMED CT) and their sites.
- ``bundle_in``: a Bundle read into the referral JSON, each field's origin kept.
- ``referral_in``: that referral validated and stored, conditional on the
  ServiceRequest's identifier.
- ``resources_out``: Task, ServiceRequest, DocumentReference, Binary, searchset.
- ``capability``: the CapabilityStatement.
"""
