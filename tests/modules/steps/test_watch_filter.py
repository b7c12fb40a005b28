"""bin/watch's filter (steps/cli/watch.py): the build output is ignored by its place, not its name."""

from __future__ import annotations

from pathlib import Path

from watchfiles import Change

from steps.cli.watch import SiteFilter


def test_the_build_output_and_astro_cache_are_ignored_by_place_not_by_name(tmp_path):
    site = tmp_path / "site"
    keep = SiteFilter(site, "dist")
    at = lambda relative: str(site.resolve() / relative)  # noqa: E731
    assert not keep(Change.modified, at("dist/index.html"))
    assert not keep(Change.added, at(".astro/content.d.ts"))
    assert not keep(Change.modified, at("node_modules/astro/x.js"))  # watchfiles' own defaults still apply
    assert keep(Change.modified, at("src/components/dist/Card.astro"))  # a folder of the site's own
    assert keep(Change.modified, at("src/pages/index.astro"))
    assert keep(Change.modified, at("distillery.txt"))


def test_a_nested_build_dir_is_ignored_where_it_is(tmp_path):
    keep = SiteFilter(tmp_path, "out/site")
    assert not keep(Change.modified, str(Path(tmp_path.resolve(), "out/site/index.html")))
    assert keep(Change.modified, str(Path(tmp_path.resolve(), "out/other.txt")))
