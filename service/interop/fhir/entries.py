"""A Bundle's entries: where each one is (its Bundle path and its
resource-relative path, for OperationOutcome expressions), and references
resolved inside the Bundle."""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.reference import Reference

from refflow.interop.fhir.outcome import FhirError, Issue


@dataclass
class Where:
    """Where a value came from: its Bundle path and its resource-relative path."""

    bundle: str
    resource: str

    def at(self, element: str) -> Where:
        return Where(f"{self.bundle}.{element}", f"{self.resource}.{element}")

    @property
    def expression(self) -> tuple[str, ...]:
        return (self.bundle, self.resource)


@dataclass
class Entry:
    index: int
    resource: object

    @property
    def type(self) -> str:
        return self.resource.get_resource_type()

    @property
    def where(self) -> Where:
        return Where(f"Bundle.entry[{self.index}].resource", self.type)


class Entries:
    """One Bundle's entries, found by type or by a reference to them (a
    ``urn:uuid:`` full URL, an absolute URL or ``Type/id``)."""

    def __init__(self, bundle: Bundle) -> None:
        self.all: list[Entry] = []
        self.by_reference: dict[str, Entry] = {}
        for index, entry in enumerate(bundle.entry or []):
            if entry.resource is None:
                continue
            item = Entry(index, entry.resource)
            self.all.append(item)
            keys = []
            if entry.fullUrl:
                keys.append(entry.fullUrl)
                if not entry.fullUrl.startswith("urn:"):  # http://ehr/fhir/Patient/1 -> Patient/1
                    keys.append("/".join(entry.fullUrl.rstrip("/").split("/")[-2:]))
            if entry.resource.id:
                keys.append(f"{item.type}/{entry.resource.id}")
            for key in keys:
                self.by_reference.setdefault(key, item)

    def of_type(self, resource_type: str) -> list[Entry]:
        return [e for e in self.all if e.type == resource_type]

    def resolve(self, reference: Reference | None) -> Entry | None:
        if reference is None or not reference.reference:
            return None
        target = reference.reference
        found = self.by_reference.get(target)
        if found is None and "://" in target:
            found = self.by_reference.get("/".join(target.rstrip("/").split("/")[-2:]))
        return found

    def check_patient(self, entry: Entry, patient: Entry) -> None:
        """Refuse a resource about another Patient of the Bundle than the
        referral's (a subject that resolves to nothing in the Bundle is taken
        to be the patient's)."""
        target = self.resolve(getattr(entry.resource, "subject", None))
        if target is not None and target is not patient:
            raise FhirError(422, Issue("the resource is about another patient than the "
                                       "ServiceRequest's subject",
                                       entry.where.at("subject").expression, "value"))
