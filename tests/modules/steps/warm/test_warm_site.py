"""Which sites build warm, and what a warm server's fingerprint notices (steps/warm/site.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fake_astro import make_site

from steps.warm.site import fingerprint, why_not_warm

DEFAULT = ("npm", "run", "build")


def scripts(checkout: Path, **found: str) -> None:
    (checkout / "package.json").write_text(json.dumps({"name": "site", "scripts": found}))


def test_only_a_plain_astro_build_behind_the_default_command_builds_warm(tmp_path):
    site = make_site(tmp_path / "site")
    assert why_not_warm(site, DEFAULT) is None
    assert "BUILD_COMMAND" in why_not_warm(site, ("npm", "run", "build:prod"))
    scripts(site, build="  astro   build ")
    assert why_not_warm(site, DEFAULT) is None
    scripts(site, build="astro check && astro build")
    assert 'not "astro build"' in why_not_warm(site, DEFAULT)
    scripts(site, build="astro build", prebuild="node scripts/fetch-data.mjs")
    assert "prebuild" in why_not_warm(site, DEFAULT)
    (site / "package.json").unlink()
    os.symlink("/etc/passwd", site / "package.json")  # the job's link is never followed
    assert "symbolic link" in why_not_warm(site, DEFAULT)
    (site / "package.json").unlink()
    (site / "package.json").write_text("[1, 2]")
    assert 'not "astro build"' in why_not_warm(site, DEFAULT)


@pytest.mark.parametrize(
    ("change", "noticed"),
    [
        ("src/pages/index.astro", False),  # read afresh by each build
        ("src/content/post.md", False),
        ("public/logo.svg", False),
        ("dist/index.html", False),  # the build's own output
        (".astro/types.d.ts", False),
        ("src/lib/consts.mjs", True),  # the config may import it natively: node would keep it
        ("src/lib/helpers.ts", True),
        ("astro.config.mjs", True),
        ("tsconfig.json", True),
        (".env", True),  # any top-level file
        ("node_modules/.package-lock.json", True),  # npm installed again
    ],
)
def test_the_fingerprint_changes_with_what_a_long_lived_node_would_keep(tmp_path, change, noticed):
    site = make_site(tmp_path / "site")
    for name in ("src/pages/index.astro", "src/content/post.md", "public/logo.svg", "dist/index.html"):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text("before")
    before = fingerprint(site, "dist")
    assert fingerprint(site, "dist") == before
    (site / change).parent.mkdir(parents=True, exist_ok=True)
    (site / change).write_text("after, a different size")
    assert (fingerprint(site, "dist") != before) is noticed


def test_a_link_in_the_checkout_is_never_followed(tmp_path):
    site = make_site(tmp_path / "site")
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    os.symlink(outside, site / "src" / "elsewhere")
    before = fingerprint(site, "dist")
    (outside / "deep" / "module.mjs").write_text("not the site's")
    assert fingerprint(site, "dist") == before


def test_the_build_folder_removed_before_each_build_changes_nothing(tmp_path):
    site = make_site(tmp_path / "site")
    (site / "dist").mkdir()
    before = fingerprint(site, "dist")
    (site / "dist").rmdir()  # the build step removes the old output: the checkout's own times change
    assert fingerprint(site, "dist") == before
