"""Documents for a referral: the patient handout PDF, the chart / referrer
summary PDF and the fax (cover page + summary) as TIFF Class F.

Pure rendering: no Flask, Celery or database here. Callers pass a validated
``refflow.intake.schemas.Referral``, the plan engine's plan dict and a
``ClinicInfo``; every function returns bytes.
"""

from refflow.documents.clinic import ClinicInfo
from refflow.documents.fax import pdf_to_fax_tiff
from refflow.documents.handout import render_handout
from refflow.documents.render import DOCUMENT_NAMES, render_all, render_fax
from refflow.documents.summary import render_summary

__all__ = [
    "DOCUMENT_NAMES",
    "ClinicInfo",
    "pdf_to_fax_tiff",
    "render_all",
    "render_fax",
    "render_handout",
    "render_summary",
]
