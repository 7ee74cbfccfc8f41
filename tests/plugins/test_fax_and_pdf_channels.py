"""The fax channel with the built-in spool transport, and the chart PDF channel."""

from __future__ import annotations

import json
import os

import pytest

from refflow.plugins.channels.base import Delivery, PermanentChannelError, sha256_hex
from refflow.plugins.channels.fax import FaxChannel, SpoolTransport
from refflow.plugins.channels.pdf import PdfChannel
from refflow.plugins.manager import get_plugin_manager


def fax_delivery(tiff: bytes, ident="dlv-fax-1", target="+1 763 555 0198", attempt=1):
    return Delivery(id=ident, referral_id="ref-7", channel="fax", target=target,
                    documents={"fax.tiff": tiff}, subject="Referral plan summary",
                    attempt=attempt)


def test_spool_writes_tiff_then_job_atomically(plugin_settings, helpers):
    tiff = helpers.fax_tiff(pages=3)
    channel = FaxChannel(plugin_settings, pm=get_plugin_manager(plugin_settings))
    result = channel.send(fax_delivery(tiff))
    spool = plugin_settings.fax_spool_dir
    assert sorted(p.relative_to(spool).as_posix() for p in spool.rglob("*")) == [
        "docq", "docq/dlv-fax-1.tif", "sendq", "sendq/dlv-fax-1.json"]  # no temp files left
    job = json.loads((spool / "sendq" / "dlv-fax-1.json").read_text())
    assert job["number"] == "+17635550198"
    assert job["pages"] == 3
    assert job["delivery_id"] == "dlv-fax-1" and job["referral_id"] == "ref-7"
    assert job["document"] == "docq/dlv-fax-1.tif"
    assert job["sha256"] == sha256_hex(tiff) == sha256_hex((spool / job["document"]).read_bytes())
    assert job["created"].endswith("+00:00")
    # TIFF first: the job file is never older than the image it points at.
    assert os.stat(spool / "docq/dlv-fax-1.tif").st_mtime_ns <= os.stat(
        spool / "sendq/dlv-fax-1.json").st_mtime_ns
    assert result.reference == "sendq/dlv-fax-1.json"
    assert result.detail["already_spooled"] is False


def test_spool_is_idempotent_per_delivery(plugin_settings, helpers):
    channel = FaxChannel(plugin_settings, transport=SpoolTransport(plugin_settings.fax_spool_dir))
    first = channel.send(fax_delivery(helpers.fax_tiff()))
    job_path = plugin_settings.fax_spool_dir / "sendq" / "dlv-fax-1.json"
    before = job_path.read_bytes()
    again = channel.send(fax_delivery(helpers.fax_tiff(), attempt=2))
    assert again.reference == first.reference and again.detail["already_spooled"] is True
    assert job_path.read_bytes() == before
    assert len(list((plugin_settings.fax_spool_dir / "sendq").iterdir())) == 1
    assert len(list((plugin_settings.fax_spool_dir / "docq").iterdir())) == 1


def test_bad_numbers_and_documents_are_permanent(plugin_settings, helpers):
    channel = FaxChannel(plugin_settings, pm=get_plugin_manager(plugin_settings))
    for bad in ("12", "+1 555 000", "fax me", ""):
        with pytest.raises(PermanentChannelError) as info:
            channel.validate_target(bad)
        assert info.value.permanent and (not bad or bad not in info.value.message)
    assert channel.validate_target("+44 20 7946 0958") == "+442079460958"
    with pytest.raises(PermanentChannelError, match="TIFF"):
        channel.send(fax_delivery(b"%PDF-1.7 not a tiff"))
    with pytest.raises(PermanentChannelError, match="fax.tiff"):
        channel.send(Delivery("dlv-x", "ref-7", "fax", "+17635550198", {}, "s"))
    with pytest.raises(PermanentChannelError, match="delivery id"):
        channel.send(fax_delivery(helpers.fax_tiff(), ident="../../etc/passwd"))
    assert not (plugin_settings.fax_spool_dir / "sendq").exists()


def test_unknown_fax_transport_is_a_permanent_config_error(plugin_settings, helpers):
    settings = plugin_settings.with_overrides(fax_transport="efax")
    channel = FaxChannel(settings, pm=get_plugin_manager(settings))
    with pytest.raises(PermanentChannelError, match="REFFLOW_FAX_TRANSPORT.*available: .*hylafax.*spool"):
        channel.send(fax_delivery(helpers.fax_tiff()))


def test_pdf_channel_files_the_chart_copy_with_checksum(plugin_settings, helpers):
    pdf = helpers.small_pdf("Chart summary")
    channel = PdfChannel(plugin_settings.documents_dir)
    delivery = Delivery(id="dlv-pdf-1", referral_id="ref-7", channel="pdf", target="",
                        documents={"chart.pdf": pdf}, subject="Chart record")
    result = channel.send(delivery)
    path = plugin_settings.documents_dir / result.detail["path"]
    assert result.detail["path"] == "chart/ref-7/chart-dlv-pdf-1.pdf"
    assert path.read_bytes() == pdf
    assert result.detail["sha256"] == sha256_hex(path.read_bytes())
    again = channel.send(delivery)
    assert again.detail["already_filed"] is True and again.detail["sha256"] == result.detail["sha256"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with pytest.raises(PermanentChannelError):
        channel.validate_target("someone@example.org")
    with pytest.raises(PermanentChannelError, match="not a PDF"):
        channel.send(Delivery("dlv-pdf-2", "ref-7", "pdf", "", {"chart.pdf": b"GIF89a"}, "s"))
