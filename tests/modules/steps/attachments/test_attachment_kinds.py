"""What an attachment is, from its bytes: the image signatures, and which SVGs are plain pictures."""

from __future__ import annotations

import struct

import pytest

from steps.attachments.kinds import AVIF, GIF, JPEG, PNG, WEBP, binary_kind, looks_like_svg, svg_problem


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    return struct.pack(">I", 16 + 4 * len(compatible)) + b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", PNG),
        (b"\xff\xd8\xff\xdb\x00", JPEG),
        (b"GIF87a\x01\x00", GIF),
        (b"RIFF\x00\x00\x00\x00WEBPVP8L", WEBP),
        (ftyp(b"avif", b"mif1"), AVIF),
        (ftyp(b"avis"), AVIF),
        (ftyp(b"mif1", b"miaf", b"avif"), AVIF),  # a compatible brand is enough
        (ftyp(b"heic", b"mif1"), None),  # HEIF, not AVIF
        (ftyp(b"isom", b"mp42"), None),  # an MP4 video
        (struct.pack(">I", 400) + b"ftypavif", None),  # a box longer than what was read
        (b"\x89PNX\r\n", None),
        (b"RIFF\x00\x00\x00\x00WAVE", None),
        (b"", None),
    ],
)
def test_signatures(head, kind):
    assert binary_kind(head) is kind


@pytest.mark.parametrize(
    "text",
    [
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b'\xef\xbb\xbf<?xml version="1.0"?><!-- made by hand --><svg>',
        b"\n  <svg\n width='1'>",
    ],
)
def test_an_svg_is_xml_whose_first_element_is_svg(text):
    assert looks_like_svg(text)


@pytest.mark.parametrize("text", [b"<html><svg></svg></html>", b"<svgx/>", b"plain text <svg>"])
def test_what_is_not_an_svg(text):
    assert not looks_like_svg(text)


WRAP = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">{}</svg>'


@pytest.mark.parametrize(
    ("inner", "problem"),
    [
        ("<script>alert(1)</script>", "<script> element"),
        ("<foreignObject><div/></foreignObject>", "<foreignobject> element"),
        ('<rect onclick="steal()"/>', "event handler (onclick)"),
        ('<a href="javascript:alert(1)"><rect/></a>', "javascript: link"),
        ('<animate attributeName="href" to="java\nscript:alert(1)"/>', "javascript: link"),
        ('<image xlink:href="https://tracker.example/p.png"/>', "refers to something outside itself (href="),
        ('<rect style="fill: url(https://x.example/a)"/>', "refers to something outside itself (style="),
        ("<style>@import 'https://x.example/a.css';</style>", "its style loads something outside itself"),
        ("<rect", "not well-formed XML"),
    ],
)
def test_an_svg_with_anything_active_is_not_a_plain_picture(inner, problem):
    found = svg_problem(WRAP.format(inner).encode())
    assert found is not None and problem in found


def test_a_doctype_is_refused_before_any_parsing():
    bomb = b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>'
    assert svg_problem(bomb) == "it declares a DOCTYPE or entities"


def test_a_plain_svg_with_inner_references_and_embedded_images_passes():
    inner = (
        '<defs><linearGradient id="g"/></defs><rect fill="url(#g)" width="2"/><use href="#g"/>'
        '<image xlink:href="data:image/png;base64,iVBORw0KGgo="/><style>rect { fill: url(#g) }</style>'
    )
    assert svg_problem(WRAP.format(inner).encode()) is None
