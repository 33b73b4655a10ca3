"""Secrets as they look on real systems, each with a value found nowhere else, and lookalikes
that hold none (public keys, certificates, commented examples). Shared by the rule tests and
the integration test that plants them in a root."""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """One secret file's content, the rule that must find it, and its unique value."""

    kind: str
    rule: str
    content: bytes
    #: Bytes only this sample holds: must never be in the image.
    unique: bytes
    #: Packed with the value replaced when it is a setting under /etc (else left out).
    value: bool = False


def _b64(seed: str, n: int) -> str:
    """``n`` base64 characters derived from ``seed`` (different for every seed)."""
    out = b""
    i = 0
    while len(out) < n:
        out += base64.b64encode(hashlib.sha512(f"{seed}/{i}".encode()).digest())
        i += 1
    return out[:n].decode().replace("=", "A")


def _hex(seed: str, n: int) -> str:
    out = ""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}/{i}".encode()).hexdigest()
        i += 1
    return out[:n]


def _pem(label: str, seed: str) -> tuple[bytes, bytes]:
    lines = [_b64(f"{seed}{i}", 64) for i in range(6)]
    text = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"
    return text.encode(), lines[2].encode()


def _wg_key(seed: str) -> str:
    return _b64(seed, 42) + "A="


def keytab(seed: str) -> bytes:
    """A Kerberos keytab (format 0x0502) with one entry whose key is unique."""
    realm, name = b"EXAMPLE.COM", b"host"
    key = hashlib.sha256(seed.encode()).digest()
    body = (
        struct.pack(">HH", 1, len(realm))
        + realm
        + struct.pack(">H", len(name))
        + name
        + struct.pack(">IIBHH", 1, 1700000000, 2, 18, len(key))
        + key
    )
    return b"\x05\x02" + struct.pack(">i", len(body)) + body


def samples(seed: str) -> list[Sample]:
    """One of each kind of secret; ``seed`` makes the values unique."""
    out = []
    for kind, label in (
        ("pem-rsa", "RSA PRIVATE KEY"),
        ("pem-pkcs8", "PRIVATE KEY"),
        ("pem-ec", "EC PRIVATE KEY"),
        ("pem-encrypted", "ENCRYPTED PRIVATE KEY"),
    ):
        content, unique = _pem(label, f"{seed}{kind}")
        out.append(Sample(kind, "pem-private-key", content, unique))
    content, unique = _pem("OPENSSH PRIVATE KEY", f"{seed}openssh")
    out.append(Sample("openssh", "openssh-private-key", content, unique))
    body = [_b64(f"{seed}pgp{i}", 64) for i in range(5)]
    out.append(
        Sample(
            "pgp",
            "pgp-private-key",
            (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nComment: backup\n\n"
                + "\n".join(body)
                + "\n-----END PGP PRIVATE KEY BLOCK-----\n"
            ).encode(),
            body[1].encode(),
        )
    )
    priv = _b64(f"{seed}putty", 60)
    out.append(
        Sample(
            "putty",
            "putty-private-key",
            (
                "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: me\n"
                f"Public-Lines: 2\n{_b64(seed + 'pub', 60)}\nAAAA\nPrivate-Lines: 1\n"
                f"{priv}\nPrivate-MAC: 00\n"
            ).encode(),
            priv.encode(),
        )
    )
    hexkey = [_hex(f"{seed}ovpn{i}", 32) for i in range(16)]
    out.append(
        Sample(
            "openvpn-static",
            "openvpn-static-key",
            (
                "#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----"
                "\n" + "\n".join(hexkey) + "\n-----END OpenVPN Static key V1-----\n"
            ).encode(),
            hexkey[3].encode(),
        )
    )
    wg = _wg_key(f"{seed}wg")
    out.append(
        Sample(
            "wireguard",
            "wireguard-private-key",
            (
                f"[Interface]\nPrivateKey = {wg}\nAddress = 10.9.0.2/24\nListenPort = "
                f"51820\n\n[Peer]\nPublicKey = {_wg_key(seed + 'peer')}\n"
                "AllowedIPs = 0.0.0.0/0\nEndpoint = vpn.example.org:51820\n"
            ).encode(),
            wg.encode(),
            value=True,
        )
    )
    netdev = _wg_key(f"{seed}netdev")
    out.append(
        Sample(
            "netdev",
            "wireguard-private-key",
            (
                f"[NetDev]\nName=wg1\nKind=wireguard\n\n[WireGuard]\nPrivateKey={netdev}\n"
                "ListenPort=51821\n"
            ).encode(),
            netdev.encode(),
            value=True,
        )
    )
    psk = f"wifi pass {_hex(seed + 'wpa', 12)}"
    out.append(
        Sample(
            "wpa-supplicant",
            "wifi-psk",
            (
                "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\nupdate_config=1\n"
                f'network={{\n\tssid="home"\n\tpsk="{psk}"\n\tkey_mgmt=WPA-PSK\n}}\n'
            ).encode(),
            psk.encode(),
            value=True,
        )
    )
    nm = _hex(seed + "nm", 20)
    out.append(
        Sample(
            "networkmanager",
            "wifi-psk",
            (
                "[connection]\nid=office\ntype=wifi\n\n[wifi]\nssid=office\n\n"
                f"[wifi-security]\nkey-mgmt=wpa-psk\npsk={nm}\n"
            ).encode(),
            nm.encode(),
            value=True,
        )
    )
    iwd = _hex(seed + "iwd", 18)
    out.append(
        Sample(
            "iwd", "wifi-psk", f"[Security]\nPassphrase={iwd}\n".encode(), iwd.encode(), value=True
        )
    )
    ifpsk = _hex(seed + "ifupdown", 22)
    out.append(
        Sample(
            "interfaces",
            "wifi-psk",
            (
                "auto lo\niface lo inet loopback\n\nallow-hotplug wlan0\niface wlan0 inet "
                f"dhcp\n    wpa-ssid home\n    wpa-psk {ifpsk}\n"
            ).encode(),
            ifpsk.encode(),
            value=True,
        )
    )
    eap = _hex(seed + "eap", 16)
    out.append(
        Sample(
            "eap-password",
            "network-password",
            (
                'network={\n\tssid="corp"\n\tkey_mgmt=WPA-EAP\n\teap=PEAP\n'
                f'\tidentity="bob"\n\tpassword="{eap}"\n}}\n'
            ).encode(),
            eap.encode(),
            value=True,
        )
    )
    chap = _hex(seed + "chap", 14)
    out.append(
        Sample(
            "chap-secrets",
            "ppp-secrets",
            (
                "# Secrets for authentication using CHAP\n# client\tserver\tsecret\t\t\t"
                f"IP addresses\nbob\t*\t{chap}\t*\n"
            ).encode(),
            chap.encode(),
        )
    )
    ipsec = _hex(seed + "ipsec", 20)
    out.append(
        Sample(
            "ipsec-secrets",
            "ipsec-secret",
            f'# ipsec.secrets\n%any vpn.example.org : PSK "{ipsec}"\n'.encode(),
            ipsec.encode(),
            value=True,
        )
    )
    tab = keytab(seed)
    out.append(Sample("keytab", "kerberos-keytab", tab, tab[-32:]))
    hashed = (
        "$6$"
        + _b64(seed + "salt", 16).replace("+", ".")
        + "$"
        + _b64(seed + "hash", 86).replace("+", ".")
    )
    out.append(
        Sample(
            "shadow-backup",
            "shadow-hash",
            f"root:{hashed}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n".encode(),
            hashed.encode(),
        )
    )
    apr = (
        "$apr1$"
        + _b64(seed + "apr", 8).replace("+", ".")
        + "$"
        + _b64(seed + "aprh", 22).replace("+", ".")
    )
    out.append(Sample("htpasswd", "shadow-hash", f"admin:{apr}\n".encode(), apr.encode()))
    akid = "AKIA" + _hex(seed + "akid", 16).upper()
    secret = _b64(seed + "aws", 40)
    out.append(
        Sample(
            "aws",
            "aws-access-key",
            (
                f"[default]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n"
                "region = eu-west-1\n"
            ).encode(),
            secret.encode(),
        )
    )
    gcp = _b64(seed + "gcp", 64)
    out.append(
        Sample(
            "gcp",
            "gcp-service-account",
            (
                '{\n  "type": "service_account",\n  "project_id": "demo",\n'
                '  "private_key_id": "abc",\n  "private_key": "-----BEGIN PRIVATE KEY-----'
                f'\\n{gcp}\\n-----END PRIVATE KEY-----\\n",\n'
                '  "client_email": "svc@demo.iam.gserviceaccount.com"\n}\n'
            ).encode(),
            gcp.encode(),
        )
    )
    auth = base64.b64encode(f"bob:{_hex(seed + 'docker', 16)}".encode()).decode()
    out.append(
        Sample(
            "docker",
            "docker-auth",
            (
                '{\n\t"auths": {\n\t\t"registry.example.org": {\n\t\t\t"auth": "'
                f'{auth}"\n\t\t}}\n\t}}\n}}\n'
            ).encode(),
            auth.encode(),
        )
    )
    ckey = _b64(seed + "kube", 80)
    out.append(
        Sample(
            "kubeconfig-key",
            "kubeconfig-credential",
            (
                "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://"
                "10.0.0.1:6443\n  name: k\nusers:\n- name: admin\n  user:\n"
                f"    client-certificate-data: {_b64(seed + 'cert', 40)}\n"
                f"    client-key-data: {ckey}\n"
            ).encode(),
            ckey.encode(),
        )
    )
    token = _hex(seed + "kubetoken", 40)
    out.append(
        Sample(
            "kubeconfig-token",
            "kubeconfig-credential",
            (
                f"apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    token: {token}\n"
            ).encode(),
            token.encode(),
        )
    )
    k3s = f"K10{_hex(seed + 'k3s', 64)}::server:{_hex(seed + 'k3ss', 32)}"
    out.append(Sample("k3s-token", "k3s-token", f"{k3s}\n".encode(), k3s.encode()))
    netrc = _hex(seed + "netrc", 16)
    out.append(
        Sample(
            "netrc",
            "netrc",
            f"machine ftp.example.org\n  login bob\n  password {netrc}\n".encode(),
            netrc.encode(),
        )
    )
    pgpass = _hex(seed + "pgpass", 16)
    out.append(
        Sample(
            "pgpass",
            "pgpass",
            f"# app database\ndb.example.org:5432:app:bob:{pgpass}\n".encode(),
            pgpass.encode(),
        )
    )
    gitcred = _hex(seed + "git", 16)
    out.append(
        Sample(
            "git-credentials",
            "git-credentials",
            f"https://bob:{gitcred}@git.example.org\n".encode(),
            gitcred.encode(),
        )
    )
    link = _hex(seed + "bt", 32).upper()
    out.append(
        Sample(
            "bluetooth",
            "bluetooth-link-key",
            (
                "[General]\nName=Phone\nTrusted=true\n\n[LinkKey]\n"
                f"Key={link}\nType=4\nPINLength=0\n"
            ).encode(),
            link.encode(),
        )
    )
    return out


#: Files that look like secrets and are not: (relative path, content).
LOOKALIKES: list[tuple[str, bytes]] = [
    ("etc/ssl/certs/site.pem", _pem("CERTIFICATE", "cert")[0]),
    (
        "etc/ssh/ssh_host_ed25519_key.pub",
        b"ssh-ed25519 " + _b64("hostpub", 68).encode() + b" root@host\n",
    ),
    ("srv/keys/public.pem", _pem("PUBLIC KEY", "pub")[0]),
    ("srv/keys/rsa-public.pem", _pem("RSA PUBLIC KEY", "rsapub")[0]),
    (
        "opt/app/README",
        b"Put your key in a file that starts with\n-----BEGIN RSA PRIVATE KEY-----"
        b"\n...\n-----END RSA PRIVATE KEY-----\nand point key_file at it.\n",
    ),
    (
        "etc/wireguard/example.conf",
        b"[Interface]\n# PrivateKey = "
        + _wg_key("commented").encode()
        + b"\nPrivateKey = <your key here>\n[Peer]\nPublicKey = "
        + _wg_key("peerpub").encode()
        + b"\n",
    ),
    (
        "etc/wpa_supplicant/example.conf",
        b'network={\n\tssid="example"\n#\tpsk="very secret"\n\tkey_mgmt=NONE\n}\n',
    ),
    ("opt/app/settings.py", b'psk = "this is not a network file"\npassword = get_password()\n'),
    ("opt/app/aws-example.md", b"Example: aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"),
    ("etc/passwd", b"root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n"),
    (
        "etc/inittab",
        b"id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\n1:2345:respawn:/sbin/getty 38400 tty1\n",
    ),
    ("etc/ipsec.conf", b"conn home\n  leftauth=pubkey\n  leftcert=me.pem\n"),
    ("opt/app/ipsec-rsa.secrets", b": RSA mykey.pem\n"),
    (
        "opt/app/notes.txt",
        b"Clone with https://user:password@example.org when asked.\n"
        b"The machine has a password prompt.\n",
    ),
    ("opt/app/values.yaml", b"auth:\n  token: ${TOKEN}\n  token: short\n"),
    ("opt/app/not-a-keytab.bin", b"\x05\x02\x00\x00\x00\x01\x00" + bytes(40)),
    ("etc/shadow-like.txt", b"root:*:19000:0:99999:7:::\nbob:!:19000:0:99999:7:::\n"),
    ("opt/app/hash-doc.txt", b"Hashes look like $6$salt$hash in /etc/shadow.\n"),
]
