"""Documents for a referral: the patient handout PDF, the chart / referrer
summary PDF and the fax (cover page + summary) as TIFF Class F.

Pure rendering: no Flask, Celery or database here. Callers pass a validated
``refflow.intake.schemas.Referral``, the plan engine's plan dict and a
``ClinicInfo``; every function returns bytes.

This package imports nothing: import from the module that defines a name
(``refflow.documents.render``, ``.handout``, ``.summary``, ``.fax``,
``.clinic``, ``.names``, ``.facts``), so that the light modules load without
ReportLab or PDFium.
"""
