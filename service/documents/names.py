"""The names a referral's documents go by everywhere (API, document store,
channels, routes): fixed, so that no patient detail ever ends up in a file
name. Importing this module imports no renderer."""

HANDOUT = "handout.pdf"
SUMMARY = "summary.pdf"
FAX = "fax.tiff"
DOCUMENT_NAMES = (HANDOUT, SUMMARY, FAX)

CONTENT_TYPES = {HANDOUT: "application/pdf", SUMMARY: "application/pdf", FAX: "image/tiff"}
