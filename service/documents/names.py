"""The names a referral's documents go by everywhere (API, document store,
channels, routes): fixed, so that no patient detail ever ends up in a file
name. Importing this module imports no renderer."""

HANDOUT = "handout.pdf"
# The referring doctor's one-page summary (also the fax's page after the cover).
SUMMARY = "summary.pdf"
# The clinic's full record of the referral and the plan's reasoning (the chart copy).
CHART = "chart.pdf"
FAX = "fax.tiff"
# The "referral not accepted" letter a clinician's rejection sends the referrer:
# the letter (PDF, also what an email attaches), its fax (cover + letter) and
# its plain text (an email's body).
DECLINE = "decline.pdf"
DECLINE_FAX = "decline.tiff"
DECLINE_TEXT = "decline.txt"
DECLINE_NAMES = (DECLINE, DECLINE_FAX, DECLINE_TEXT)
DOCUMENT_NAMES = (HANDOUT, SUMMARY, CHART, FAX, *DECLINE_NAMES)
# What tells the referring office the outcome: the plan summary (by fax, or
# the PDF a routing plugin may email) and the "referral not accepted" letter.
FOR_THE_REFERRER = (FAX, SUMMARY, DECLINE_FAX, DECLINE)
# The URL of the patient's page (its token) that the handout's QR code carries,
# for the email to the patient: kept with the documents, never listed or served.
PATIENT_LINK = "patient-link.txt"

CONTENT_TYPES = {HANDOUT: "application/pdf", SUMMARY: "application/pdf",
                 CHART: "application/pdf", FAX: "image/tiff",
                 DECLINE: "application/pdf", DECLINE_FAX: "image/tiff",
                 DECLINE_TEXT: "text/plain; charset=utf-8",
                 PATIENT_LINK: "text/plain; charset=utf-8"}
