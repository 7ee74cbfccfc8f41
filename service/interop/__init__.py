"""Interoperability: how EHRs and referring offices' systems talk to refflow.

- ``fhir``      FHIR R4 (``fhir.resources`` R4B models): a referral Bundle in
                (ServiceRequest, Patient, requester, Conditions, T-score
                Observation, MedicationStatements, Task) → the referral JSON the
                API validates; a referral out as its Task (BSeR business
                status), ServiceRequest, and the plan summary
                (DocumentReference / Binary); errors as OperationOutcome.
- ``webhooks``  Standard Webhooks: practices' endpoints, the events made from
                the referral timeline (ids and status only, never PHI), signed
                with ``standardwebhooks``, sent and retried through the outbox,
                with a log and re-send.
"""
