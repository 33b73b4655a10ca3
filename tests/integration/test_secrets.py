"""Secrets of a real machine never reach the CD: a root holding 50 of them, of every kind the
content rules know, in the files real systems keep them in and in files named otherwise,
across /etc, /var, /root, /home, /srv and /opt, is built into an ISO (real mksquashfs, tar,
xorriso; no boot). None of their values is in the ISO's bytes, in the unpacked squashfs or in
the /etc archive; each file is in the scrub report; the root is byte for byte what it was;
and the files system.scrub.allow lists are packed as they are, and only they."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.secret_samples import LOOKALIKES, samples
from tests.test_scrub import KERNEL, build, make_secret_root, tree_digest, write_profile

#: Where each secret is planted: as real systems name them, then named otherwise.
PLACES = {
    "etc/ssl/private/server.key": "pem-rsa",
    "etc/letsencrypt/archive/example.org/privkey1.pem": "pem-pkcs8",
    "etc/ssh/ssh_host_ecdsa_key": "pem-ec",
    "root/.ssh/id_ed25519": "openssh",
    "var/lib/git/.ssh/id_rsa": "pem-encrypted",
    "root/.gnupg/private-keys-backup.asc": "pgp",
    "home/alice/.putty/work.ppk": "putty",
    "etc/openvpn/ta.key": "openvpn-static",
    "etc/wireguard/wg0.conf": "wireguard",
    "etc/systemd/network/50-wg1.netdev": "netdev",
    "etc/wpa_supplicant/wpa_supplicant.conf": "wpa-supplicant",
    "etc/NetworkManager/system-connections/office.nmconnection": "networkmanager",
    "var/lib/iwd/home.psk": "iwd",
    "etc/network/interfaces": "interfaces",
    "etc/wpa_supplicant/wpa_supplicant-wlan1.conf": "eap-password",
    "etc/ppp/chap-secrets": "chap-secrets",
    "etc/ipsec.secrets": "ipsec-secrets",
    "etc/krb5.keytab": "keytab",
    "var/backups/shadow.bak": "shadow-backup",
    "etc/apache2/.htpasswd": "htpasswd",
    "root/.aws/credentials": "aws",
    "etc/gcloud/service-account.json": "gcp",
    "root/.docker/config.json": "docker",
    "etc/kubernetes/admin.conf": "kubeconfig-key",
    "home/alice/.kube/config": "kubeconfig-token",
    "var/lib/rancher/k3s/server/token": "k3s-token",
    "home/alice/.netrc": "netrc",
    "home/alice/.pgpass": "pgpass",
    "home/alice/.git-credentials": "git-credentials",
    "var/lib/bluetooth/AA:BB:CC:DD:EE:FF/11:22:33:44:55:66/info": "bluetooth",
    # Named otherwise: only their content says what they are.
    "srv/backup/old-server.txt": "pem-rsa",
    "srv/www/config.bak": "pem-pkcs8",
    "opt/vendor/device-cert": "pem-ec",
    "opt/tools/deploy_key": "openssh",
    "var/lib/app/export.dat": "pgp",
    "root/notes/putty.txt": "putty",
    "srv/vpn/static.txt": "openvpn-static",
    "opt/vpn/tunnel.ini": "wireguard",
    "home/bob/Documents/wifi.txt": "wpa-supplicant",
    "srv/backup/etc-network-interfaces": "interfaces",
    "var/lib/app/krb.dat": "keytab",
    "srv/backup/accounts.2023": "shadow-backup",
    "opt/app/env.production": "aws",
    "home/bob/Downloads/project-123.json": "gcp",
    "var/lib/ci/registry.json": "docker",
    "srv/k8s/cluster.yaml": "kubeconfig-key",
    "opt/k3s/join.txt": "k3s-token",
    "home/bob/secrets/db.txt": "pgpass",
    "var/lib/app/creds.txt": "git-credentials",
    "etc/app/bt-pairing.ini": "bluetooth",
}
#: Those the profile allows, packed as they are: one the content scan finds, one a path rule
#: leaves out, one inside a directory a path rule leaves out.
ALLOWED = ("srv/vpn/static.txt", "etc/ssl/private/server.key", "root/.aws/credentials")


def plant(root: Path) -> tuple[dict[str, bytes], list[str]]:
    """The secrets and the lookalikes in the root: each secret's unique value, and the
    lookalikes planted."""
    by_kind = {s.kind: s for s in samples("integration")}
    unique = {}
    for i, (rel, kind) in enumerate(PLACES.items()):
        # The same kind twice: a second seed, so each file's value is its own.
        sample = by_kind[kind] if i < 30 else {s.kind: s for s in samples(rel)}[kind]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(sample.content)
        unique[rel] = sample.unique
    planted = []
    for rel, content in LOOKALIKES:
        if not (root / rel).exists():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content)
            planted.append(rel)
    return unique, planted


def squashfs_files(image: Path, into: Path) -> dict[str, bytes]:
    subprocess.run(
        ["unsquashfs", "-no-xattrs", "-q", "-n", "-d", str(into), str(image)],
        check=True,
        capture_output=True,
    )
    out = {}
    for dirpath, _dirs, names in os.walk(into):  # links not followed
        for name in names:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                out[str(path.relative_to(into))] = path.read_bytes()
    return out


def archive_files(archive: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            stream = tar.extractfile(member) if member.isreg() else None
            if stream is not None:
                out[member.name] = stream.read()
    return out


@pytest.mark.skipif(KERNEL is None, reason="needs a kernel in /boot")
@pytest.mark.parametrize("strategy", ["classic", "overlay"])
def test_no_secret_reaches_the_iso(tmp_path: Path, strategy: str) -> None:
    assert len(PLACES) >= 40
    root = tmp_path / "root"
    make_secret_root(root)
    unique, lookalikes = plant(root)
    # An absolute link in /etc to a directory outside the root: the scrub of the archive's
    # copy must not follow it (nothing written or removed there, nothing packed from it).
    host = tmp_path / "host" / "keys"
    host.mkdir(parents=True)
    outside = samples("outside")[0]
    (host / "outside.key").write_bytes(outside.content)
    (root / "etc" / "keys").symlink_to(host)
    before = tree_digest(root)
    host_before = tree_digest(host)
    profile = write_profile(
        tmp_path / "secrets.toml",
        root,
        writable={"strategy": strategy},
        **{"system.scrub": {"home": False, "allow": ["/" + a for a in ALLOWED]}},
    )
    profile.write_text(
        profile.read_text().replace(
            'dirs = ["bin", "lib", "sbin", "usr", "home", "root", "var"]',
            'dirs = ["bin", "lib", "sbin", "usr", "home", "root", "var", "srv", "opt"]',
        )
    )
    work = tmp_path / "work"
    result = build(profile, work, "preflight,kernel,system,initrd,writable,bootloader,iso")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert tree_digest(root) == before
    assert tree_digest(host) == host_before

    iso = next((work / "out").glob("*.iso")).read_bytes()
    image = squashfs_files(work / "stages/system/system.squashfs", tmp_path / "unpacked")
    archives = list((work / "stages/writable").glob("etc.tar.*"))
    etc = archive_files(archives[0]) if archives else {}
    if strategy == "classic":
        assert "etc/passwd" in etc and "etc/passwd" not in image
    else:
        assert "etc/passwd" in image
    packed = {**image, **etc}
    report = (work / "out" / "secrets.scrub.txt").read_text()
    assert not [p for p, data in packed.items() if outside.unique in data]
    assert outside.unique not in iso
    for rel, value in unique.items():
        if rel in ALLOWED:
            continue
        assert value not in iso, rel
        assert not [p for p, data in packed.items() if value in data], rel
        assert rel in report, rel
    # The allowed files, and only they, are packed as they are, and the report says why.
    for rel in ALLOWED:
        assert packed[rel] == (root / rel).read_bytes(), rel
        assert f"kept      {rel}" in report, rel
    assert sorted(
        p for p, data in packed.items() if any(v in data for v in unique.values())
    ) == sorted(ALLOWED)
    # A setting in /etc is packed with its value replaced, the rest of the file kept.
    interfaces = packed["etc/network/interfaces"]
    assert b"wpa-psk REMOVED-BY-LIVECD-TUI" in interfaces and b"iface wlan0" in interfaces
    assert b"[Peer]" in packed["etc/wireguard/wg0.conf"]
    # What only looks like a secret is packed as it is.
    assert len(lookalikes) > 10
    for rel in lookalikes:
        assert packed.get(rel) == (root / rel).read_bytes(), rel
    system_log = (work / "logs" / "system.log").read_text()
    assert "checked the image's files: no secret in them but those allowed" in system_log
    if strategy == "classic":
        assert "no secret in it but those allowed" in (work / "logs/writable.log").read_text()
