"""livecd-tui: turn an installed Linux system into a bootable live ISO."""

__version__ = "0.1.0"
