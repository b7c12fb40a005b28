"""What an attachment is, told by its bytes (never by its name or the sender's contentType).

Images only: PNG, JPEG, GIF, WebP, AVIF, and SVG when ATTACHMENTS_ALLOW_SVG is set. An SVG opened on its
own runs its scripts with the site's origin, so an allowed SVG is still refused when it holds anything
active: a script, an event handler, foreignObject or other embedding, a javascript: link, a reference to
anything outside itself, or a DOCTYPE (entities).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from steps.attachments.sources import AttachmentRefused

SNIFF_BYTES = 4096  # enough for every signature, and for an SVG's prologue


@dataclass(frozen=True)
class Kind:
    extension: str  # what the placed file's name ends with
    content_type: str


PNG = Kind("png", "image/png")
JPEG = Kind("jpg", "image/jpeg")
GIF = Kind("gif", "image/gif")
WEBP = Kind("webp", "image/webp")
AVIF = Kind("avif", "image/avif")
SVG = Kind("svg", "image/svg+xml")
AVIF_BRANDS = {b"avif", b"avis"}


def binary_kind(head: bytes) -> Kind | None:
    """The image format these first bytes begin, if any."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp" and _avif_brands(head):
        return AVIF
    return None


def _avif_brands(head: bytes) -> bool:
    """An ISO-BMFF `ftyp` box whose major or a compatible brand is avif or avis."""
    (size,) = struct.unpack(">I", head[:4])
    if size < 16 or size > len(head) or size % 4:
        return False
    brands = [head[8:12]] + [head[offset : offset + 4] for offset in range(16, size, 4)]
    return any(brand in AVIF_BRANDS for brand in brands)


def looks_like_svg(head: bytes) -> bool:
    """XML (an optional declaration, comments, doctype) whose first element is <svg."""
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    prologue = r"\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*"
    return re.match(prologue + r"<svg[\s>/]", text, re.DOTALL) is not None


ACTIVE_ELEMENTS = {"script", "foreignobject", "iframe", "embed", "object", "handler", "listener", "audio", "video"}
LINKING = {"href", "src"}
URL_REFERENCE = re.compile(r"url\(\s*['\"]?\s*([^)'\"\s]*)|@import", re.IGNORECASE)


def _outside(reference: str) -> bool:
    """Whether a link or url() points outside the SVG (a fragment or an embedded image does not)."""
    return not reference.strip().startswith(("#", "data:image/"))


def svg_problem(data: bytes) -> str | None:
    """Why this SVG is not a plain picture, if it is not."""
    text = data.decode("utf-8", "replace")
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        return "it declares a DOCTYPE or entities"
    try:
        root = ElementTree.fromstring(data)  # noqa: S314  no DOCTYPE (above): no entity, nothing fetched
    except ElementTree.ParseError as error:
        return f"it is not well-formed XML ({error})"
    for element in root.iter():
        name = str(element.tag).rsplit("}", 1)[-1].lower()
        if name in ACTIVE_ELEMENTS:
            return f"it holds a <{name}> element"
        for attribute, value in element.attrib.items():
            local = attribute.rsplit("}", 1)[-1].lower()
            if local.startswith("on"):
                return f"it holds an event handler ({local})"
            if "javascript:" in re.sub(r"\s", "", value).lower():
                return "it holds a javascript: link"
            if (local in LINKING and _outside(value)) or _loads_outside(value):
                return f"it refers to something outside itself ({local}={value[:60]!r})"
        if name == "style" and _loads_outside(element.text or ""):
            return "its style loads something outside itself"
    return None


def _loads_outside(text: str) -> bool:
    return any(found.group(0).startswith("@") or _outside(found.group(1)) for found in URL_REFERENCE.finditer(text))


def kind_of(path: Path, allow_svg: bool) -> Kind:
    """The kind of the fetched file at `path` from its bytes; AttachmentRefused when it is no image we take."""
    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    kind = binary_kind(head)
    if kind is not None:
        return kind
    if looks_like_svg(head):
        if not allow_svg:
            raise AttachmentRefused("it is an SVG, and SVGs are not accepted (ATTACHMENTS_ALLOW_SVG)")
        problem = svg_problem(path.read_bytes())
        if problem:
            raise AttachmentRefused(f"it is an SVG that is not a plain picture: {problem}")
        return SVG
    raise AttachmentRefused(f"its bytes are not an image we accept ({describe(head)}): PNG, JPEG, GIF, WebP, AVIF")


def describe(head: bytes) -> str:
    """A few words on what the bytes look like, for the error."""
    if head.startswith(b"\x7fELF"):
        return "an ELF executable"
    if head.startswith(b"%PDF"):
        return "a PDF"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive"
    start = head[:512].lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script")):
        return "HTML"
    if start.startswith(b"<"):
        return "XML or markup"
    return f"starts with {head[:8].hex(' ')}"
