"""The attachments of a command, made ready before its agent runs: where from (sources), fetched with
limits (fetch), what they are (kinds), under which names (names), into the checkout (place).

Every attachment is fetched and checked before the checkout is touched; one refused refuses them all
(`INVALID_ATTACHMENT`, naming which and why; the later steps are skipped) and leaves nothing behind.
"""

from __future__ import annotations

import logging
from typing import Any

from steps.attachments.fetch import AttachmentUnavailable, fetch, make_client
from steps.attachments.kinds import kind_of
from steps.attachments.names import UPLOADS, UniqueNames, command_folder, safe_stem
from steps.attachments.place import PlacementRefused, place, staging_folder
from steps.attachments.sources import AttachmentRefused, Source, resolve, shown
from steps.base import StepContext, StepError
from steps.git.layout import git_dir_for
from supervisor.contract.codes import ErrorCode

log = logging.getLogger("steps.attachments")


def refusal(reason: str) -> StepError:
    return StepError(ErrorCode.INVALID_ATTACHMENT, reason, ends_command=True)


def place_attachments(ctx: StepContext) -> list[dict[str, Any]]:
    """Fetch, check and place the command's attachments; what was placed, as the response lists it."""
    attachments, config = ctx.command.attachments, ctx.config.attachments
    if not attachments:
        return []
    if len(attachments) > config.max_files:
        raise refusal(f"{len(attachments)} attachments, at most {config.max_files} accepted (ATTACHMENTS_MAX_FILES)")
    sources: list[Source] = []
    for index, attachment in enumerate(attachments):
        try:
            sources.append(resolve(index, attachment, config, ctx.command.client_id))
        except AttachmentRefused as refused:
            raise refusal(f"{shown(index, attachment)}: {refused}") from None

    folder = command_folder(ctx.command.command_id)
    client = make_client(ctx.config)
    names = UniqueNames()
    placed: list[dict[str, Any]] = []
    with staging_folder(git_dir_for(ctx.checkout) / "webordinary" / "attachments") as staged:
        for source in sources:
            part = staged / f".{source.index}.part"
            try:
                size = fetch(client, source, config.max_bytes, part).size
                kind = kind_of(part, config.allow_svg)
            except AttachmentRefused as refused:
                raise refusal(f"{source.shown}: {refused}") from None
            except AttachmentUnavailable as failed:
                raise StepError(ErrorCode.INTERNAL, f"{source.shown}: {failed}", ends_command=True) from None
            name = names.take(safe_stem(source.sent_name, source.key, source.index), kind.extension)
            part.rename(staged / name)
            placed.append(_listed(source, folder, name, size, kind.content_type))
        try:
            place(ctx.checkout, staged, folder)
        except PlacementRefused as refused:
            raise refusal(f"the attachments cannot be placed: {refused}; nothing was written") from None
    log.info("attachments placed", extra={"files": [item["path"] for item in placed]})
    _warn_if_ignored(ctx, placed)
    return placed


def _listed(source: Source, folder: str, name: str, size: int, content_type: str) -> dict[str, Any]:
    """One placed file, as the response's `attachments` and the agent's note give it."""
    site_path = f"/{'/'.join(UPLOADS[1:])}/{folder}/{name}"
    item = {"name": name, "path": f"{'/'.join(UPLOADS)}/{folder}/{name}", "sitePath": site_path}
    item |= {"bytes": size, "contentType": content_type}
    if source.sent_name and source.sent_name != name:
        item["sentAs"] = source.sent_name
    return item


def _warn_if_ignored(ctx: StepContext, placed: list[dict[str, Any]]) -> None:
    """The commit respects the site's .gitignore: say so when it would leave the attachments out."""
    result = ctx.git.run("check-ignore", "--", *(item["path"] for item in placed), ok_codes=range(256))
    ignored = result.stdout.split() if result.exit_code == 0 else []  # 1: none ignored; else git could not tell
    if ignored:
        ctx.warnings.append(
            f"the site's .gitignore ignores {', '.join(ignored)}: on the preview, but not committed with the command"
        )
