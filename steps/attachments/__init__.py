"""Attachments (issue 20): the images a message names, fetched by the worker and placed in the checkout
before the agent runs, then named in what the agent is told.

    prepare.py  place_attachments(ctx): the order, and one refusal for all (INVALID_ATTACHMENT)
    sources.py  which bucket and key, under ATTACHMENTS_BUCKET(S)
    fetch.py    S3 with the worker's credentials, the size checked before and while reading
    kinds.py    what the bytes are (PNG, JPEG, GIF, WebP, AVIF; SVG only if allowed, and only a plain one)
    names.py    the command's folder and safe file names
    place.py    into public/uploads/{folder}/ without following links, all or nothing
    note.py     the note appended to the agent's prompt
"""
