"""``runyard image``: the images runyard runs and makes — the base image (built offline), the local ones."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from runyard.cli.common import app, console, friendly, size_text

image_app = typer.Typer(help="Container images: build the base image offline, list the engine's images.",
                        no_args_is_help=True)
app.add_typer(image_app, name="image")


@image_app.command("build-base")
@friendly
def build_base(
    tag: Optional[str] = typer.Option(None, "--tag", "-t", help="Image name (default runyard/base:bookworm)."),
    suite: str = typer.Option("bookworm", "--suite", help="Debian release."),
    package: Optional[list[str]] = typer.Option(None, "--package", "-p", help="A Debian package to add (repeatable); "
                                                "python3, python3-venv, openmpi-bin and ca-certificates are always in."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Debian mirror (default: the one apt uses here)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Where the root file system tarball is kept "
                                         "(default ~/.cache/runyard/images)."),
    force: bool = typer.Option(False, "--force", help="Build again even when the image or its tarball exists."),
) -> None:
    """Make the base image runyard runs containers of, with no registry: mmdebstrap from the apt mirror, then an
    import into the engine. Run it in any image of yours: `--docker-image runyard/base:bookworm`."""
    from runyard.environments import BASE_IMAGE
    from runyard.environments.images import BASE_PACKAGES, build_base as make

    packages = list(dict.fromkeys([*BASE_PACKAGES, *(package or [])]))
    make(tag or BASE_IMAGE, suite, packages, mirror, cache, force,
         say=lambda line: console.print(line, highlight=False, markup=False))


@image_app.command("list")
@friendly
def list_images() -> None:
    """The engine's images (runyard never pulls: a run's image must be one of these)."""
    from runyard.environments import engine

    found = engine()
    table = Table("image", "id", "size", "made by runyard")
    for image in sorted(found.call("GET", "/images/json")[1] or [], key=lambda i: (i.get("RepoTags") or [""])[0]):
        ours = "yes" if (image.get("Labels") or {}).get("runyard.kind") or any(
            t.startswith("runyard/") for t in image.get("RepoTags") or []) else ""
        for tag in image.get("RepoTags") or ["<none>"]:
            table.add_row(tag, image["Id"][7:19], size_text(image.get("Size", 0)), ours)
    console.print(table)
