"""The files the live medium's check verifies (``livecd.check``) and their sums, recorded
at build time in the initrd's livecd.conf as ``LIVECD_SUMS``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from livecd_tui import layout
from livecd_tui.build import Build
from livecd_tui.steps import shell_quote


def media_files(build: Build) -> list[tuple[str, Path]]:
    """The files the media check reads: (path on the CD, the stage output it is a copy of),
    the system image first, then the /etc archive when the build makes one. A list, so that
    more images (layers) can join."""
    files = [(layout.SQUASHFS, build.done_dir("system") / "system.squashfs")]
    archive = build.method.writable.archive_name()
    if archive:
        files.append((layout.live_file(archive), build.done_dir("writable") / archive))
    return files


def file_sha256(path: Path) -> str:
    """The sha256 of a file's contents, read in blocks (the system image is big)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def media_sums(build: Build) -> str:
    """LIVECD_SUMS: one ``sha256sum`` line (sum, two blanks, path on the CD) per file the
    media check (``livecd.check``) verifies."""
    return "\n".join(f"{file_sha256(path)}  {on_cd}" for on_cd, path in media_files(build))


def media_sums_lines(build: Build, conf: Path) -> list[str]:
    """media_sums as bash: appends the LIVECD_SUMS line to *conf*, as livecd_conf does."""
    files = media_files(build)
    lines = [
        f"sum{i}=$(sha256sum < {shell_quote(path)}) && sum{i}=${{sum{i}%% *}}"
        for i, (_, path) in enumerate(files)
    ]
    words = [f"${{sum{i}}}  {on_cd}" for i, (on_cd, _) in enumerate(files)]
    words[0] = "LIVECD_SUMS='" + words[0]
    words[-1] += "'"
    lines.append("printf '%s\\n' " + " ".join(f'"{w}"' for w in words) + f" >> {shell_quote(conf)}")
    return lines
