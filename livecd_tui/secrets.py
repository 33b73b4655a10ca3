"""Secrets found by their content, wherever they are and whatever the file is called.

The scrub's path rules (:mod:`livecd_tui.scrub`) know where secrets usually live; this module
knows what they look like: private keys (PEM, OpenSSH, PGP, PuTTY), WireGuard keys, Wi-Fi
PSKs and passwords (wpa_supplicant, NetworkManager, iwd, ifupdown), OpenVPN static keys, ppp
and ipsec secrets, Kerberos keytabs, password hashes in the shadow format outside
``/etc/shadow``, cloud and registry credentials (AWS keys, GCP service accounts, docker auths,
kubeconfig tokens and client keys, k3s tokens), ``.netrc``, ``.pgpass``, ``.git-credentials``,
Bluetooth pairing keys.

Each rule is cheap to rule out: a few literal byte strings (found with ``bytes.find``, which
runs at memory speed) must be in the file before its regular expression runs at all. A file
is read at most once, and only its head (:data:`HEAD_LIMIT`) unless its name says it is key
material; ELF binaries and compressed files are skipped by their magic bytes. The scan runs
in one worker process per CPU (the regular expressions hold Python's lock, so threads
would not run them in parallel).

A hit in a text file under ``etc/`` that is only ``key = value`` settings (an interfaces file
with a ``wpa-psk`` line) can be packed with the values replaced (:func:`redact`); any other
file that holds a secret is left out. Nothing here writes anything: the scrub decides.
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import re
import stat
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Bytes read from a file that is not key material by its name: secrets sit in small files
#: or at the top of config files; big files are data, documents or programs.
HEAD_LIMIT = 256 * 1024
#: Bytes read from a file whose name says it may be key material (.pem, .key, .keytab...).
KEY_LIMIT = 8 * 1024 * 1024
#: Names (suffixes) of files read up to KEY_LIMIT.
KEY_SUFFIXES = (
    ".pem",
    ".key",
    ".keytab",
    ".asc",
    ".gpg",
    ".ovpn",
    ".conf",
    ".json",
    ".yaml",
    ".yml",
    ".p8",
    ".pk8",
    ".ppk",
    ".crt",
    ".cnf",
    ".netdev",
    ".psk",
    ".kubeconfig",
)
#: Magic bytes of files that hold no text secret (programs, compressed data, images).
SKIP_MAGIC = (
    b"\x7fELF",
    b"\x1f\x8b",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",
    b"BZh",
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"hsqs",
    b"\x04\x22\x4d\x18",
    b"GIF8",
    b"\x00asm",
    b"\xca\xfe\xba\xbe",
    b"!<arch>\n",
)
#: What a replaced secret value becomes.
REDACTED = b"REMOVED-BY-LIVECD-TUI"


@dataclass(frozen=True)
class Rule:
    """One kind of secret: how it is recognised."""

    name: str
    why: str
    #: Literal bytes of which at least one must be in the file before ``regex`` runs.
    triggers: tuple[bytes, ...]
    regex: re.Pattern[bytes]
    #: True: each match's group ``v`` is a value that can be replaced in place.
    value: bool = False
    #: Extra test on (path relative to the root, data, match); False rejects the match.
    check: Callable[[str, bytes, re.Match[bytes]], bool] | None = None
    #: Triggers are looked for in the lower-cased data.
    nocase: bool = False
    #: False: a weak format (a line that code and documents also write), not looked for in
    #: usr/, whose files come from packages (test data and examples, not this machine's).
    strong: bool = True
    #: Looked for in binary files (a NUL byte in the first 4 KiB); the others only in text.
    binary: bool = False


@dataclass(frozen=True)
class Hit:
    """A rule that matched a file, and where (for value rules, the value's span)."""

    rule: str
    why: str
    start: int
    end: int
    value: bool


@dataclass(frozen=True)
class Result:
    """What the scan found in one file."""

    path: str
    hits: tuple[Hit, ...]
    #: The file's content with each value replaced, when it can be packed so; else None.
    redacted: bytes | None = None

    @property
    def rules(self) -> str:
        """The rules that matched, for the report: ``pem-private-key, wifi-psk``."""
        return ", ".join(dict.fromkeys(h.rule for h in self.hits))

    @property
    def why(self) -> str:
        return "; ".join(dict.fromkeys(h.why for h in self.hits))


def _m(pattern: bytes, flags: int = 0) -> re.Pattern[bytes]:
    return re.compile(pattern, re.MULTILINE | flags)


#: A value as config files write it: quoted, or a word that is not a variable or a template.
_VALUE = rb'(?P<v>"[^"\n]+"|\'[^\'\n]+\'|[^\s"\'$%<{(#;][^\s#;]*)'
_B64_LINE = rb"[A-Za-z0-9+/=]{40,}"


def _not_example(_rel: str, _data: bytes, match: re.Match[bytes]) -> bool:
    return b"EXAMPLE" not in match.group(0)


def _not_account_file(rel: str, _data: bytes, _match: re.Match[bytes]) -> bool:
    # /etc/shadow and friends are the accounts' own: the scrub locks or keeps them.
    return rel not in ("etc/shadow", "etc/gshadow", "etc/passwd", "etc/group")


def _all_lines(line: bytes) -> Callable[[str, bytes, re.Match[bytes]], bool]:
    """A check that the file is small and every line that is not a comment or blank has the
    format ``line``, and one at least does. Line by line, stopping at the first that does
    not (one regular expression over the whole file backtracked without end)."""
    first = re.compile(rb"\A(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*" + line + rb"[ \t]*\r?(?:\n|\Z)")
    whole_line = re.compile(line)

    def check(_rel: str, data: bytes, _match: re.Match[bytes]) -> bool:
        if len(data) > 64 * 1024 or first.match(data) is None:
            return False
        for raw in data.split(b"\n"):
            text = raw.strip()
            if text and not text.startswith(b"#") and whole_line.fullmatch(text) is None:
                return False
        return True

    return check


#: Lines that say a file configures a Wi-Fi or 802.1X network.
_WIFI = re.compile(
    rb"network\s*=\s*\{|^\[(?:wifi-security|802-1x|vpn-secrets|Security)\]|"
    rb"^[ \t]*(?:wpa-|iface[ \t]|ssid=|interface=)",
    re.M,
)


def _wifi(_rel: str, data: bytes, _match: re.Match[bytes]) -> bool:
    return _WIFI.search(data) is not None


def _kubeconfig(_rel: str, data: bytes, match: re.Match[bytes]) -> bool:
    return (
        match.group(0).lstrip().startswith(b"client-key-data")
        or re.search(rb"^kind:\s*Config\s*$", data, re.M) is not None
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "pem-private-key",
        "PEM private key",
        (b"-----BEGIN ",),
        _m(
            rb"-----BEGIN (?!OPENSSH )(?:[A-Z0-9]+ )*PRIVATE KEY-----\r?\n"
            rb"(?:[A-Za-z-]+: [^\n]*\r?\n)*\r?\n?" + _B64_LINE
        ),
    ),
    Rule(
        "openssh-private-key",
        "OpenSSH private key",
        (b"-----BEGIN ",),
        _m(rb"-----BEGIN OPENSSH PRIVATE KEY-----\r?\n" + _B64_LINE),
    ),
    Rule(
        "pgp-private-key",
        "PGP private key block",
        (b"-----BEGIN ",),
        _m(
            rb"-----BEGIN PGP PRIVATE KEY BLOCK-----\r?\n(?:[A-Za-z-]+: [^\n]*\r?\n)*\r?\n"
            + _B64_LINE
        ),
    ),
    Rule(
        "putty-private-key",
        "PuTTY private key",
        (b"PuTTY-User-Key-File-",),
        _m(rb"^PuTTY-User-Key-File-\d+: .*\n(?:.*\n){0,40}?Private-Lines: \d+"),
    ),
    Rule(
        "openvpn-static-key",
        "OpenVPN static key",
        (b"-----BEGIN ",),
        _m(rb"-----BEGIN OpenVPN Static key V\d-----\r?\n[0-9a-fA-F]{32}"),
    ),
    Rule(
        "wireguard-private-key",
        "WireGuard private or preshared key",
        (b"PrivateKey", b"PresharedKey"),
        _m(
            rb"^[ \t]*(?:PrivateKey|PresharedKey)[ \t]*=[ \t]*"
            rb"(?P<v>[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=)[ \t]*\r?$"
        ),
        value=True,
    ),
    Rule(
        "wifi-psk",
        "Wi-Fi pre-shared key or passphrase",
        (b"psk", b"passphrase"),
        _m(
            rb"^[ \t]*(?:(?:psk|wpa_passphrase|Passphrase|PreSharedKey)[ \t]*=[ \t]*|"
            rb"(?:wpa-psk|wpa-passphrase)[ \t]+)" + _VALUE,
            re.IGNORECASE,
        ),
        value=True,
        nocase=True,
        strong=False,
        check=_wifi,
    ),
    Rule(
        "network-password",
        "network or 802.1X password",
        (b"password", b"wep", b"passwd"),
        _m(
            rb"^[ \t]*(?:(?:password|EAP-Password|EAP-[A-Z0-9]+-Phase2-Password|"
            rb"private[-_]key[-_]passw(?:or)?d|wep[-_]key\d|leap-password|password-raw)"
            rb"[ \t]*=[ \t]*|wpa-password[ \t]+)" + _VALUE,
            re.IGNORECASE,
        ),
        value=True,
        nocase=True,
        strong=False,
        check=_wifi,
    ),
    Rule(
        "ipsec-secret",
        "IPsec or ppp secret",
        (b"PSK", b"EAP", b"XAUTH", b"NTLM"),
        _m(rb"^[^#\n]*:[ \t]*(?:PSK|EAP|XAUTH|NTLM)[ \t]+(?P<v>\"[^\"\n]+\"|0[xs][^\s]+)"),
        value=True,
        strong=False,
    ),
    Rule(
        "ppp-secrets",
        "ppp CHAP/PAP secrets",
        (b"Secrets for authentication using",),
        _m(
            rb"^# Secrets for authentication using (?:CHAP|PAP)(?:.*\n){0,40}?[ \t]*[^#\s]\S*[ \t]+"
            rb"\S+[ \t]+\S+"
        ),
        strong=False,
    ),
    Rule(
        "kerberos-keytab",
        "Kerberos keytab",
        (b"\x05\x02",),
        _m(rb"\A\x05\x02"),
        check=lambda _rel, data, _match: _is_keytab(data),
        binary=True,
    ),
    Rule(
        "shadow-hash",
        "password hash (shadow format)",
        (
            b"$1$",
            b"$2a$",
            b"$2b$",
            b"$2x$",
            b"$2y$",
            b"$5$",
            b"$6$",
            b"$y$",
            b"$gy$",
            b"$7$",
            b"$apr1$",
            b"$sha1$",
            b"$md5$",
        ),
        _m(
            rb"^[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?:(?:!|\*)?"
            rb"\$(?:1|2[abxy]|5|6|y|gy|7|apr1|sha1|md5)\$[./A-Za-z0-9$=,]{16,}(?::|\r?$)"
        ),
        check=_not_account_file,
        strong=False,
    ),
    Rule(
        "aws-access-key",
        "AWS access key",
        (b"AKIA", b"ASIA", b"aws_secret_access_key"),
        _m(
            rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])|"
            rb"aws_secret_access_key[ \t]*[=:][ \t]*[A-Za-z0-9/+]{40}"
        ),
        check=_not_example,
    ),
    Rule(
        "gcp-service-account",
        "Google Cloud service account key",
        (b"-----BEGIN ",),
        _m(rb'"private_key"\s*:\s*"-----BEGIN [A-Z ]*PRIVATE KEY-----\\n[A-Za-z0-9+/=]{20}'),
    ),
    Rule(
        "docker-auth",
        "container registry credentials",
        (b'"auth', b"identitytoken"),
        _m(rb'"auths"\s*:\s*\{[^{}]*\{[^{}]*"(?:auth|identitytoken)"\s*:\s*"[^"\s]{8,}"'),
    ),
    Rule(
        "kubeconfig-credential",
        "kubeconfig token or client key",
        (b"client-key-data", b"token:"),
        _m(
            rb"^[ \t]*(?:client-key-data:[ \t]*[A-Za-z0-9+/=]{20,}|token:[ \t]*[^\s\"']{16,}|"
            rb"token:[ \t]*[\"'][^\s\"']{16,}[\"'])"
        ),
        check=_kubeconfig,
        strong=False,
    ),
    Rule(
        "k3s-token",
        "k3s cluster token",
        (b"K10",),
        _m(rb"K10[0-9a-f]{40,}::[a-z]+:[0-9a-zA-Z]{16,}"),
    ),
    Rule(
        "netrc",
        "netrc login with a password",
        (b"machine", b"default"),
        _m(
            rb"^[ \t]*(?:machine[ \t]+\S+(?:\s+(?:login|account)\s+\S+)*|"
            rb"default\s+login\s+\S+)\s+password\s+\S+"
        ),
        strong=False,
    ),
    Rule(
        "pgpass",
        "PostgreSQL password file",
        (b":",),
        _m(rb"\A"),
        strong=False,
        check=_all_lines(
            rb"(?:[^:\\\s]|\\.)+:(?:\d+|\*):(?:[^:\\\s]|\\.)+:"
            rb"(?:[^:\\\s]|\\.)+:(?:[^:\\\n]|\\.)+"
        ),
    ),
    Rule(
        "git-credentials",
        "URLs with passwords (git credential store)",
        (b"://",),
        _m(rb"\A"),
        strong=False,
        check=_all_lines(rb"[a-z][a-z0-9+.-]*://[^:/\s@]+:[^@\s/]+@\S+"),
    ),
    Rule(
        "bluetooth-link-key",
        "Bluetooth pairing key",
        (b"LinkKey", b"LongTermKey"),
        _m(
            rb"^\[(?:LinkKey|LongTermKey|PeripheralLongTermKey|SlaveLongTermKey)\]\s*\n"
            rb"Key=[0-9A-Fa-f]{32}"
        ),
        strong=False,
    ),
)


def _is_keytab(data: bytes) -> bool:
    """A Kerberos keytab (version 0x0502): the first entry's length, component count and
    realm make sense."""
    if len(data) < 16 or data[:2] != b"\x05\x02":
        return False
    size, components, realm_len = struct.unpack(">iHH", data[2:10])
    if size <= 0 or size > len(data) - 6 or not 1 <= components <= 16 or not 0 < realm_len < 256:
        return False
    realm = data[10 : 10 + realm_len]
    return len(realm) == realm_len and all(32 < c < 127 for c in realm)


def _rules_for(
    binary: bool, vendor: bool
) -> tuple[tuple[Rule, ...], tuple[bytes, ...], tuple[bytes, ...]]:
    """The rules for one kind of file, and their triggers (as is, and lower-case)."""
    rules = tuple(r for r in RULES if r.binary == binary and (r.strong or not vendor))
    return (
        rules,
        tuple(dict.fromkeys(t for r in rules if not r.nocase for t in r.triggers)),
        tuple(dict.fromkeys(t for r in rules if r.nocase for t in r.triggers)),
    )


#: (binary, in usr/) -> the rules, their triggers, their lower-case triggers.
_BY_KIND = {(b, v): _rules_for(b, v) for b in (False, True) for v in (False, True)}


def scan_bytes(rel: str, data: bytes) -> list[Hit]:
    """The rules that match ``data`` (the content, or the head, of the file at ``rel``)."""
    hits: list[Hit] = []
    rules, triggers, nocase = _BY_KIND[b"\0" in data[:4096], rel.startswith("usr/")]
    # Each trigger looked for once (bytes.find runs at memory speed); a rule runs only when
    # one of its triggers is there.
    found = {t for t in triggers if t in data}
    if nocase:
        lower = data.lower()
        found.update(t for t in nocase if t in lower)
    for rule in rules:
        if not any(t in found for t in rule.triggers):
            continue
        for match in rule.regex.finditer(data):
            if rule.check is not None and not rule.check(rel, data, match):
                continue
            if rule.value:
                if match.group("v").strip(b"\"'") == REDACTED:
                    continue  # replaced by livecd-tui already
                hits.append(Hit(rule.name, rule.why, *match.span("v"), True))
            else:
                hits.append(Hit(rule.name, rule.why, *match.span(), False))
                break  # one is enough: the file goes
    return hits


def redact(data: bytes, hits: Sequence[Hit]) -> bytes:
    """``data`` with each value hit replaced (quotes kept)."""
    out = []
    last = 0
    for hit in sorted({(h.start, h.end) for h in hits if h.value}):
        start, end = hit
        if start < last:
            continue
        value = data[start:end]
        quote = value[:1] if value[:1] in (b'"', b"'") and value.endswith(value[:1]) else b""
        out += [data[last:start], quote + REDACTED + quote]
        last = end
    out.append(data[last:])
    return b"".join(out)


def can_redact(rel: str, hits: Sequence[Hit], complete: bool) -> bool:
    """Whether the file may be packed with its values replaced: a config file in ``/etc``
    read whole, whose every hit is a value in a setting."""
    return complete and rel.startswith("etc/") and bool(hits) and all(h.value for h in hits)


def read_limit(rel: str) -> int:
    return KEY_LIMIT if rel.lower().endswith(KEY_SUFFIXES) else HEAD_LIMIT


def scan_file(root: str, rel: str) -> Result | None:
    """Scan one regular file (never following a link); None when it holds no secret or
    cannot be read."""
    try:
        fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        limit = read_limit(rel)
        head = os.read(fd, 4096)
        if not head or head.startswith(SKIP_MAGIC):
            return None
        chunks = [head]
        size = len(head)
        while size < limit + 1:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return scan_data(rel, b"".join(chunks))


def scan_data(rel: str, data: bytes) -> Result | None:
    """Scan a file's content (``data``: all of it, or more than :func:`read_limit` bytes of
    its head); None when it holds no secret."""
    if data.startswith(SKIP_MAGIC):
        return None
    limit = read_limit(rel)
    hits = scan_bytes(rel, data[:limit])
    if not hits:
        return None
    redacted = redact(data, hits) if can_redact(rel, hits, len(data) <= limit) else None
    return Result(rel, tuple(hits), redacted)


def _scan_batch(root: str, rels: Sequence[str]) -> list[Result]:
    return [r for r in (scan_file(root, rel) for rel in rels) if r is not None]


#: Below this many files the scan runs in this process (workers cost more than they save).
POOL_MIN_FILES = 2000


def scan_files(root: Path | str, rels: Iterable[str], jobs: int | None = None) -> list[Result]:
    """Scan the regular files ``rels`` (paths relative to ``root``) on all CPUs; the
    results sorted by path.

    The files are shared out to one worker process per CPU (the rules hold Python's lock,
    so threads would take turns). Each worker is ``python -m livecd_tui.secrets ROOT``,
    which reads its paths on stdin and answers with its results: a fresh interpreter that
    imports only this module (multiprocessing would fork a process that runs threads, or
    import the program's main module again in each worker)."""
    paths = list(rels)
    jobs = jobs or os.cpu_count() or 1
    root = str(root)
    if jobs == 1 or len(paths) < POOL_MIN_FILES:
        return sorted(_scan_batch(root, paths), key=lambda r: r.path)
    shares = [paths[i::jobs] for i in range(jobs)]  # interleaved: big dirs spread out
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        found = list(pool.map(lambda share: _scan_in_worker(root, share), shares))
    return sorted((r for share in found for r in share), key=lambda r: r.path)


def _scan_in_worker(root: str, paths: list[str]) -> list[Result]:
    """One share of the scan in a worker process; in this one if no worker can be had."""
    # Here, not at the top: the workers import this module and need no sh (46 ms each).
    from livecd_tui import procs

    data = b"\0".join(os.fsencode(p) for p in paths)
    try:
        proc = procs.run([sys.executable, "-m", "livecd_tui.secrets", root], input=data)
        if proc.returncode == 0:
            results = pickle.loads(proc.out)
            if isinstance(results, list):
                return results
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        pass
    return _scan_batch(root, paths)


def _worker() -> int:
    """``python -m livecd_tui.secrets ROOT``: scan the NUL-separated paths on stdin, write
    the results (a pickled list) to stdout."""
    # The module by its name, so the results pickle as livecd_tui.secrets.Result, not as
    # this __main__'s.
    from livecd_tui import secrets

    data = sys.stdin.buffer.read()
    paths = [os.fsdecode(p) for p in data.split(b"\0") if p]
    sys.stdout.buffer.write(pickle.dumps(secrets._scan_batch(sys.argv[1], paths)))
    return 0


def regular_files(root: Path) -> list[str]:
    """Every regular file below ``root`` (links not followed), relative to it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    out.append(os.path.relpath(path, root))
            except OSError:
                continue
    return out


def normalise_allow(paths: Iterable[str]) -> set[str]:
    """``system.scrub.allow`` entries as paths relative to the root (``/etc/x`` -> ``etc/x``)."""
    return {os.path.normpath(p).strip("/") for p in paths if p.strip("/")}


if __name__ == "__main__":
    sys.exit(_worker())
