"""FHIR errors: an ``Issue`` names what is wrong and where (FHIRPath
expressions), a ``FhirError`` refuses a request with them, and both become an
OperationOutcome (``refflow.web.fhir`` answers it with the HTTP status)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue

# HTTP status -> OperationOutcome issue type
ISSUE_TYPES = {400: "structure", 401: "login", 403: "forbidden", 404: "not-found",
               405: "not-supported", 406: "not-supported", 409: "conflict", 413: "too-costly",
               415: "not-supported", 422: "invalid", 429: "throttled", 500: "exception",
               503: "transient"}


@dataclass(frozen=True)
class Issue:
    """One problem: what is wrong, where (FHIRPath expressions), and its type."""

    message: str
    expression: tuple[str, ...] = ()
    code: str = "invalid"
    diagnostics: str | None = None


class FhirError(Exception):
    """A request refused with an OperationOutcome (``status``: the HTTP status)."""

    def __init__(self, status: int, issues: list[Issue] | Issue) -> None:
        self.issues = [issues] if isinstance(issues, Issue) else issues
        super().__init__("; ".join(i.message for i in self.issues))
        self.status = status


def operation_outcome(issues: Iterable[Issue]) -> OperationOutcome:
    return OperationOutcome(issue=[
        OperationOutcomeIssue(severity="error", code=i.code,
                              details=CodeableConcept(text=i.message),
                              diagnostics=i.diagnostics,
                              expression=list(i.expression) or None)
        for i in issues])


def error_outcome(status: int, message: str, fields: dict | None = None) -> OperationOutcome:
    """The OperationOutcome of an HTTP error: one issue, or one per field."""
    code = ISSUE_TYPES.get(status, "processing")
    issues = [Issue(why, (_body_path(name),), code, diagnostics=message)
              for name, why in (fields or {}).items()] or [Issue(message, (), code)]
    return operation_outcome(issues)


def _body_path(name: str) -> str:
    # the request body's own JSON paths (a NUL in entry[1].resource...): a Bundle's
    return "Bundle" if name in ("body", "(body)") else f"Bundle.{name}"
