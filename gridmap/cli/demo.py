"""``gridmap demo``: the demo city on real Zhengzhou boundaries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from ..domain.demo.city import SCALES
from ..services import event_demo, events, users
from ..services.demo import generate, load_demo
from ..services.locator import Locator
from .common import engine, rules, settings
from .users import show_token

SCALE = click.option("--scale", default="guancheng", show_default=True, type=click.Choice(list(SCALES)))
SEED = click.option("--seed", default=20241, show_default=True, type=int)


@click.group()
def demo():
    """The demo city on real Zhengzhou boundaries."""


def _progress():
    bar = tqdm(desc="demo", unit=" step", file=sys.stderr, disable=None)

    def step(label):
        bar.set_postfix_str(label)
        bar.update(1)

    return bar, step


@demo.command("generate")
@SCALE
@SEED
@click.argument("out_dir", type=click.Path(path_type=Path))
def demo_generate(scale, seed, out_dir):
    """Generate the demo city's files into OUT_DIR (with manifest.json)."""
    bar, step = _progress()
    with bar:
        manifest = generate(scale, seed, out_dir, progress=step)
    click.echo(json.dumps(manifest["counts"], ensure_ascii=False))


@demo.command("load")
@SCALE
@SEED
@click.option("--fresh", is_flag=True, help="Empty the grid store first.")
@click.option("--keep", type=click.Path(path_type=Path), help="Keep the generated files in this folder.")
@click.option(
    "--cases-per-micro",
    default=event_demo.PER_MICRO,
    show_default=True,
    type=click.IntRange(min=0),
    help="The event centre's year of demo cases, per micro-grid (0: none).",
)
def demo_load(scale, seed, fresh, keep, cases_per_micro):
    """Generate the demo city and import it in one transaction; then its departments and a year of cases."""
    eng = engine()
    bar, step = _progress()
    with bar:
        result = load_demo(eng, scale, seed, rules=rules(), out_dir=keep, fresh=fresh, progress=step)
    t = result["timings"]
    click.echo(
        f"loaded {scale}: {json.dumps(result['counts'], ensure_ascii=False)} "
        f"(generate {t['generate_s']:.1f} s, load {t['load_s']:.1f} s)"
    )
    if cases_per_micro:
        done = event_demo.load(events.make_centre(settings(), eng, Locator(eng)), seed=seed, per_micro=cases_per_micro)
        click.echo(
            f"event centre: {done['departments']} departments, {done['cases']} cases over the last year "
            f"({done['open']} open now)"
        )
    demo_admin(eng)


def demo_admin(eng) -> None:
    """A database without users gets the demo admin, its token printed once; otherwise say how to get one."""
    admin = users.demo_admin(eng)
    if "existing" in admin:
        existing = admin["existing"]
        name = users.DEMO_ADMIN if any(u["name"] == users.DEMO_ADMIN for u in existing) else "NAME"
        click.echo(
            f"users exist already ({', '.join(u['name'] for u in existing[:5])}"
            f"{', …' if len(existing) > 5 else ''}): no demo token printed; "
            f"`gridmap users token {name}` prints a new one",
            err=True,
        )
        return
    click.echo(
        f"added user {users.DEMO_ADMIN} (role admin) for the demo's write routes; send "
        "'Authorization: Bearer <token>':",
        err=True,
    )
    show_token(admin["token"], users.DEMO_ADMIN)
