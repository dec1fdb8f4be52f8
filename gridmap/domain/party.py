"""Party organisations (党委, 党总支, 党支部, 党小组) over grids: the checks on an organisation list.

Pure: no SQL.  An organisation has a code, a name, a kind, the organisation above it (in the same
file or already current) and the grids it covers (codes separated by ``;``, ``、`` or spaces).
Organisations form a tree: a parent must be of a larger kind (so no loop of parents can arise).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..errors import InputError
from .people import ORG_KINDS
from .values import shown

KIND_ALIASES = {**{label: kind for kind, label in ORG_KINDS.items()}, **{k: k for k in ORG_KINDS}}
#: Rank of each kind: a parent must rank above its child.
RANK = {kind: i for i, kind in enumerate(reversed(tuple(ORG_KINDS)))}
COLUMN_ALIASES = {
    "编码": "code",
    "组织编码": "code",
    "名称": "name",
    "组织名称": "name",
    "类型": "kind",
    "上级": "parent",
    "上级编码": "parent",
    "覆盖网格": "grids",
    "网格": "grids",
}
_SPLIT = re.compile(r"[;；、,，\s]+")


def check_kind(value: str) -> str:
    """The canonical kind for ``value`` (English or Chinese); InputError naming the kinds."""
    kind = KIND_ALIASES.get(str(value).strip())
    if kind is None:
        raise InputError(
            f"unknown organisation kind {shown(value)}: one of " + ", ".join(f"{k} ({v})" for k, v in ORG_KINDS.items())
        )
    return kind


def _cell(row: Mapping, key: str) -> str:
    value = row.get(key)
    return "" if value is None or value != value else str(value).strip()  # NaN != NaN


def check_orgs(rows: Iterable[Mapping], grids: Mapping[str, str], current: Mapping[str, str]):
    """Organisation rows checked: returns (clean orgs, problems ``{"row", "code", "problem"}``).

    ``grids``: current grid codes → level; ``current``: current organisation codes → kind.
    Each clean org is ``{"code", "name", "kind", "parent_code", "grids"}``.
    """
    orgs, problems, seen = [], [], {}
    for i, row in enumerate(rows, start=1):
        code = _cell(row, "code")
        try:
            if not code:
                raise InputError("missing code")
            if code in seen:
                raise InputError(f"duplicate: organisation {code} repeats row {seen[code]}")
            name = _cell(row, "name")
            if not name:
                raise InputError("missing name")
            kind = check_kind(_cell(row, "kind"))
            cover = [g for g in _SPLIT.split(_cell(row, "grids")) if g]
            unknown = [g for g in cover if g not in grids]
            if unknown:
                raise InputError(
                    f"unknown grid {shown(unknown[0])}" + (f" (and {len(unknown) - 1} more)" if unknown[1:] else "")
                )
            orgs.append(
                {
                    "code": code,
                    "name": name,
                    "kind": kind,
                    "parent_code": _cell(row, "parent") or None,
                    "grids": cover,
                    "row": i,
                }
            )
            seen[code] = i
        except InputError as exc:
            problems.append({"row": i, "code": code or None, "problem": exc.message})
    kinds = {**current, **{o["code"]: o["kind"] for o in orgs}}
    for org in orgs:
        parent = org["parent_code"]
        why = None
        if parent and parent not in kinds:
            why = f"unknown parent organisation {shown(parent)}"
        elif parent and RANK[kinds[parent]] <= RANK[org["kind"]]:
            why = f"a {ORG_KINDS[org['kind']]} cannot sit under a {ORG_KINDS[kinds[parent]]} ({parent})"
        if why:
            problems.append({"row": org["row"], "code": org["code"], "problem": why})
    problems.sort(key=lambda p: p["row"])
    return [{k: v for k, v in o.items() if k != "row"} for o in orgs], problems


def canonical_columns(columns: Iterable[str]) -> dict[str, str]:
    """Renames for an organisation file's header (Chinese or English) to the canonical names."""
    return {c: COLUMN_ALIASES.get(str(c).strip(), str(c).strip()) for c in columns}
