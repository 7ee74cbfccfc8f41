"""Received faxes: the fax inbox.

A fax reaches refflow by ``refflow fax receive FILE`` (HylaFAX's ``faxrcvd``
hook), by the scheduler fetching a fax server's received queue (a transport's
``receive()``), or by a provider's inbound webhook (a transport's
``parse_inbound()``). Each is stored once (by its SHA-256), read by a worker
(Tesseract OCR of every page; on refflow's own referral form the barcode and
the boxed fields), and waits in the staff Fax inbox until a person creates a
referral from it, attaches it to an existing referral, or archives it.

Modules:

- ``pages``     the stored fax as page images (square pixels) and PNGs
- ``ocr``       Tesseract through tesserocr: a page's text, a field's text, confidences
- ``barcode``   the referral form's 2D barcode, read with zxing-cpp
- ``form_reader`` refflow's referral form: find it, register it, read each field
- ``reading``   what the worker stores in ``received_faxes.reading`` (``read_fax``)
- ``draft``     form fields → a referral payload for the API's validation
- ``inbox``     store, list, read, create a referral, attach, archive, purge

A received fax is PHI: its image, caller and text never go into logs,
metrics or URLs (ids only), and every staff access is audited.
"""
