"""Signed short URLs for the QR codes on grid, building and unit-entrance walls (网格二维码).

Pure: no I/O.  A code holds ``{base}/g/{code}?s={sig}`` (``&k=b`` for a building, ``&k=u`` for a
unit entrance ``B-CODE-U``, ``&v=N`` for a key version other than 1).  ``sig`` is the first 9 bytes
(72 bits, 12 base64url characters) of HMAC-SHA256 over ``kind:code:version`` under the server's
secret: short enough to keep the QR code small (version 4–5), too long to guess at the rate the
scanned page allows.  Because the code is inside the MAC, a sticker copied to another grid's URL
fails like a forged one.  Key versions let an office retire every sticker of an old key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote

from ..errors import InputError
from .values import shown

KINDS = {"g": "grid", "b": "building", "u": "unit"}
KIND_LABELS = {"g": "网格", "b": "楼栋", "u": "单元"}
SIG_BYTES = 9
_SIG = re.compile(r"[A-Za-z0-9_-]{12}")
_CODE = re.compile(r"[0-9A-Za-z_-]{1,40}")


class BadSignature(InputError):
    """A scanned code whose signature does not match (forged, or copied to another grid) (403)."""

    status = 403
    code = "bad_signature"


@dataclass(frozen=True)
class Target:
    """What a QR code points at: ``kind`` (g, b or u), the code, and the key version it is signed with."""

    kind: str
    code: str
    version: int = 1


def _check(target: Target) -> None:
    if target.kind not in KINDS:
        raise InputError(f"unknown QR kind {shown(target.kind)}: one of {', '.join(KINDS)}")
    if not _CODE.fullmatch(target.code):
        raise InputError(f"{shown(target.code)} is not a grid, building or unit code")
    if not 1 <= target.version <= 999:
        raise InputError(f"QR key version {target.version} must be 1..999")


def sign(target: Target, secret: bytes) -> str:
    """The 12-character signature of ``target`` under ``secret``; InputError for a malformed target."""
    _check(target)
    msg = f"{target.kind}:{target.code}:{target.version}".encode()
    digest = hmac.new(secret, msg, hashlib.sha256).digest()[:SIG_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def url(target: Target, secret: bytes, base: str = "") -> str:
    """The URL a QR code holds: ``{base}/g/{code}?s=…`` with ``k`` and ``v`` only when not the default."""
    sig = sign(target, secret)
    extra = ("" if target.kind == "g" else f"&k={target.kind}") + (
        "" if target.version == 1 else f"&v={target.version}"
    )
    return f"{base.rstrip('/')}/g/{quote(target.code)}?s={sig}{extra}"


def parse(code: str, args) -> tuple[Target, str]:
    """The target and signature of a scanned request (``args``: its query, a mapping); InputError when
    the signature is missing or malformed, or ``k``/``v`` are not allowed values."""
    sig = args.get("s") or ""
    if not sig:
        raise InputError("链接不完整，请重新扫描墙上的二维码 / this link has no signature (s=…): scan the code again")
    if not _SIG.fullmatch(sig):
        raise InputError("链接已损坏，请重新扫描墙上的二维码 / this link's signature is malformed: scan the code again")
    version = args.get("v", "1")
    if not str(version).isdigit():
        raise InputError(f"key version v={shown(version)} must be a number")
    target = Target(args.get("k", "g"), code, int(version))
    _check(target)
    return target, sig


def verify(target: Target, sig: str, secrets: dict[int, bytes]) -> Target:
    """``target`` when ``sig`` is its signature under the key of its version; BadSignature otherwise
    (a forged code, a code copied to another grid, or a retired key)."""
    secret = secrets.get(target.version)
    if secret is None:
        raise BadSignature(
            "此二维码已停用，请联系社区更换 / this QR code's key has been retired: ask the community for a new code"
        )
    if not hmac.compare_digest(sign(target, secret), sig):
        raise BadSignature(
            f"此二维码与{KIND_LABELS[target.kind]} {target.code} 不符，可能是伪造或从别处复制的，不能通过它上报 / "
            f"this QR code does not belong to {KINDS[target.kind]} {target.code}: it may have been forged "
            "or copied from another place; nothing can be reported through it"
        )
    return target


def unit_code(building: str, unit: int) -> str:
    """The code of a unit entrance: the building code, ``-U`` and the unit number."""
    return f"{building}-U{int(unit)}"


def split_unit(code: str) -> tuple[str, int]:
    """``B-CODE-U3`` → (``B-CODE``, 3); InputError for a code that is not a unit entrance."""
    head, sep, n = code.rpartition("-U")
    if not sep or not head or not n.isdigit():
        raise InputError(f"{shown(code)} is not a unit-entrance code (BUILDING-Un)")
    return head, int(n)
