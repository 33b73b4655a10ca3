"""The files the live medium's check verifies (``livecd.check``) and their sums, recorded
at build time in the initrd's livecd.conf as ``LIVECD_SUMS``, with the system image's
layers (``LIVECD_LAYERS``) the init script stacks on the base."""

from __future__ import annotations

from pathlib import Path

from livecd_tui import layers, layout
from livecd_tui.build import Build
from livecd_tui.manifest import file_sha256
from livecd_tui.steps import shell_quote

__all__ = ["file_sha256", "media_conf", "media_conf_lines", "media_files", "system_images"]


def system_images(build: Build) -> list[str]:
    """The system stage's images (names in its dir and in the CD's live dir): the base,
    then its layers, oldest first."""
    state = layers.load_state(build.done_dir("system"))
    return [image.file for image in state.images] if state else [layers.BASE]


def media_files(build: Build) -> list[tuple[str, Path]]:
    """The files the media check reads: (path on the CD, the stage output it is a copy of),
    the system image and its layers first, then the /etc archive when the build makes one."""
    system = build.done_dir("system")
    files = [(layout.live_file(name), system / name) for name in system_images(build)]
    archive = build.method.writable.archive_name()
    if archive:
        files.append((layout.live_file(archive), build.done_dir("writable") / archive))
    return files


def media_conf(build: Build) -> str:
    """livecd.conf's LIVECD_LAYERS (the layers' paths on the CD, oldest first) and
    LIVECD_SUMS (one ``sha256sum`` line per file the media check verifies). The system
    stage recorded its images' sums; the archive's is taken here."""
    state = layers.load_state(build.done_dir("system"))
    recorded = {image.file: image.sha256 for image in state.images} if state else {}
    sums = "\n".join(
        f"{recorded.get(path.name) or file_sha256(path)}  {on_cd}"
        for on_cd, path in media_files(build)
    )
    stacked = " ".join(layout.live_file(name) for name in system_images(build)[1:])
    # Single quotes, as the script's printf writes them: the values hold none.
    return f"LIVECD_LAYERS='{stacked}'\nLIVECD_SUMS='{sums}'\n"


def media_conf_lines(build: Build, conf: Path) -> list[str]:
    """media_conf as bash: appends the two lines to *conf* from the system stage's
    SHA256SUMS (written by ``python -m livecd_tui.layers finish``)."""
    recorded = shell_quote(build.done_dir("system") / layers.SUMS)
    live = layout.live_file("")
    lines = [
        f"sums=$(sed 's|  |  {live}|' {recorded})",
        f"stacked=$(sed -n '2,$s|^[0-9a-f]*  |{live}|p' {recorded} | tr '\\n' ' ')",
    ]
    archive = build.method.writable.archive_name()
    if archive:
        path = shell_quote(build.done_dir("writable") / archive)
        lines.append(
            f"sums=\"$sums\"$'\\n'\"$(sha256sum < {path} | cut -d ' ' -f 1)  "
            f'{layout.live_file(archive)}"'
        )
    lines.append(
        f'printf "LIVECD_LAYERS=\'%s\'\\nLIVECD_SUMS=\'%s\'\\n" "${{stacked% }}" "$sums" '
        f">> {shell_quote(conf)}"
    )
    return lines
