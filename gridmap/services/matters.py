"""The matter catalogue in force: ``matters.toml`` (and the CSV it names) in the layers folder,
parsed and checked once per change of the files; the working calendar it defines."""

from __future__ import annotations

import csv
import io
import shutil
import tomllib
from functools import lru_cache
from pathlib import Path

from ..domain.demo import matters as demo_matters
from ..domain.events import catalogue as cat
from ..domain.events import catalogue_check
from ..domain.events.clock import WorkCalendar
from ..errors import InputError

FILE = "matters.toml"


def _texts(toml_path: Path) -> tuple[str, str | None, str | None]:
    """(TOML text, CSV text or None, CSV name); InputError naming a file that cannot be read."""
    try:
        text = toml_path.read_text("utf-8")
    except OSError as exc:
        raise InputError(f"{toml_path}: cannot read the matter catalogue ({exc.strerror})") from None
    try:
        name = tomllib.loads(text).get("matters_csv")
    except tomllib.TOMLDecodeError:
        return text, None, None  # parse() reports the syntax error with the file name
    if not name:
        return text, None, None
    csv_path = toml_path.parent / str(name)
    try:
        return text, csv_path.read_text("utf-8-sig"), str(csv_path)
    except OSError as exc:
        raise InputError(f"{toml_path}: matters_csv {name!r}: cannot read {csv_path} ({exc.strerror})") from None


def parse(
    toml_text: str, *, source: str = "matters.toml", csv_text: str | None = None, csv_source: str = "matters.csv"
) -> cat.Catalogue:
    """The catalogue from the TOML's text and the CSV's text (if any); InputError as :func:`catalogue_check.check`."""
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML: {exc}") from None
    columns, rows = None, None
    if csv_text is not None:
        reader = csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff")))
        columns, rows = list(reader.fieldnames or ()), []
        for row in reader:
            rows.append((row, reader.line_num))
    return catalogue_check.check(
        data, toml_text, source=source, csv_columns=columns, csv_rows=rows, csv_source=csv_source
    )


def demo_csv_text() -> str:
    """The demo catalogue (:mod:`gridmap.domain.demo.matters`) as CSV text, header first."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cat.CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(demo_matters.rows())
    return buf.getvalue()


def _stamp(path: Path) -> tuple:
    files = [path, *(p for p in path.parent.glob("*.csv"))]
    return tuple((str(p), p.stat().st_mtime_ns) for p in files if p.exists())


def load(layers_dir: Path) -> cat.Catalogue:
    """The catalogue of ``layers_dir/matters.toml`` (re-read when a file there changes); InputError
    naming file, line and key for a bad entry."""
    path = Path(layers_dir) / FILE
    return _load(path, _stamp(path))


@lru_cache(maxsize=8)
def _load(path: Path, _stamp: tuple) -> cat.Catalogue:  # the mtimes in the key: an edited file is re-read
    text, csv_text, csv_name = _texts(path)
    return parse(text, source=str(path), csv_text=csv_text, csv_source=csv_name or "matters.csv")


def calendar(catalogue: cat.Catalogue, tz: str) -> WorkCalendar:
    """The working calendar of the catalogue's working hours in ``tz``."""
    return WorkCalendar(catalogue.defaults.work_hours, tz)


def check(source: Path, layers_dir: Path) -> cat.Catalogue:
    """A catalogue checked whole, as :func:`install` would take it, without installing it: a TOML (its CSV
    found beside it), or a CSV of matters with the TOML in force; InputError naming file, line and key."""
    return _checked(source, layers_dir)[0]


def install(source: Path, layers_dir: Path) -> cat.Catalogue:
    """Check a catalogue (a matters.toml, or a CSV of matters to use with the TOML in force) and make it
    the one in force; nothing is copied when it has a problem (InputError)."""
    checked, copies = _checked(source, layers_dir)
    for src, dst in copies:
        shutil.copyfile(src, dst)
    return checked


def _checked(source: Path, layers_dir: Path) -> tuple[cat.Catalogue, list[tuple[Path, Path]]]:
    """:func:`check`'s catalogue, and the files :func:`install` copies into ``layers_dir`` (from, to)."""
    source = Path(source)
    target = Path(layers_dir) / FILE
    if source.suffix.lower() == ".csv":
        toml_text = target.read_text("utf-8")
        try:
            csv_text = source.read_text("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{source}: cannot read the matters CSV ({getattr(exc, 'strerror', None) or exc})"
            ) from None
        checked = parse(toml_text, source=str(target), csv_text=csv_text, csv_source=str(source))
        name = tomllib.loads(toml_text).get("matters_csv") or "matters.csv"
        return checked, [(source, target.parent / name)]
    if source.suffix.lower() != ".toml":
        raise InputError(f"{source}: a matter catalogue is a .toml file (its CSV beside it) or a .csv of matters")
    text, csv_text, csv_name = _texts(source)
    checked = parse(text, source=str(source), csv_text=csv_text, csv_source=csv_name or "matters.csv")
    csv_copy = [(Path(csv_name), target.parent / Path(csv_name).name)] if csv_name else []
    return checked, [(source, target), *csv_copy]
    text, csv_text, csv_name = _texts(source)
    checked = parse(text, source=str(source), csv_text=csv_text, csv_source=csv_name or "matters.csv")
    shutil.copyfile(source, target)
    if csv_name:
        shutil.copyfile(csv_name, target.parent / Path(csv_name).name)
    return checked
