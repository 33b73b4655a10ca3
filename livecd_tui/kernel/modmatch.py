"""The kernel on the CD and the modules packed with it must come from one build.

A module loads only into the kernel it was built for: ``modprobe`` looks in
``/lib/modules/$(uname -r)`` and the kernel refuses a module whose ``vermagic`` names another
release. An ISO whose kernel and modules differ boots, then finds no drivers, on someone
else's machine. So before a modules dir is packed (into the live system or the initrd), its
name and the ``vermagic`` of one of its modules are compared with the kernel's release, and
a mismatch stops the build naming both releases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livecd_tui.kernel import kconfig, kmod


class ModulesMismatch(Exception):
    """The modules belong to another kernel than the one on the CD."""

    def __init__(self, message: str, kernel_release: str, modules_release: str) -> None:
        super().__init__(message)
        self.kernel_release = kernel_release
        self.modules_release = modules_release


@dataclass(frozen=True)
class ModulesFound:
    """What was compared: the modules dir, and the module whose vermagic was read."""

    modules_dir: Path
    module: str
    vermagic: str

    def describe(self) -> str:
        if not self.module:
            return f"{self.modules_dir}: no module files (everything built in)"
        return (
            f"{self.modules_dir}: named for its release, and {self.module} says "
            f"vermagic={self.vermagic!r}"
        )


def kernel_release(recorded: str, image: Path | None) -> str:
    """The release of the kernel on the CD: what its image's header says (that is what
    ``uname -r`` will print), else what the kernel stage recorded. A header that disagrees
    with the record is itself a mismatch."""
    from_image = kconfig.kernel_release_from_image(image) if image and image.is_file() else None
    if from_image and recorded and from_image != recorded:
        raise ModulesMismatch(
            f"the kernel image {image} is release {from_image}, but the kernel stage "
            f"recorded release {recorded}",
            from_image,
            recorded,
        )
    return from_image or recorded


def check_modules(release: str, modules_dir: Path, what: str) -> ModulesFound:
    """Refuse ``modules_dir`` unless it belongs to the kernel of ``release``.

    ``what`` says where the modules go ("the live system", "the initrd"), for the message.
    """
    modules_dir = Path(modules_dir)
    if modules_dir.name != release:
        raise ModulesMismatch(
            f"the modules for {what} ({modules_dir}) are for release {modules_dir.name}, "
            f"but the kernel on the CD is release {release}",
            release,
            modules_dir.name,
        )
    found = kmod.modules_vermagic(modules_dir)
    if found is None:
        return ModulesFound(modules_dir, "", "")
    module, magic = found
    built_for = magic.split()[0] if magic.split() else ""
    if built_for != release:
        raise ModulesMismatch(
            f"the modules for {what} in {modules_dir} were built for release {built_for} "
            f"({module} has vermagic {magic!r}), but the kernel on the CD is release "
            f"{release}",
            release,
            built_for,
        )
    return ModulesFound(modules_dir, module, magic)
