"""Split a courtyard into micro-grids of 50-70 households (Zhengzhou's rule).

No library holds a two-sided household band while tiling the parent (spopt's max-p has
only a floor, GerryChain needs a fixed number of parts, METIS has no lower bound), so the
partitioner is gridmap's own:

1. **Items.** Each stairwell unit (单元) is one item at its entrance: a building's units sit
   side by side along its long axis, the entrance at the middle of the unit's slice.  A unit
   with more than ``max`` households is split by floors into the fewest chunks of at most
   ``max`` (the report lists them); no other unit is ever split.
2. **How many grids.** With ``H`` households, any ``k`` with ``k*min <= H <= k*max`` can hold
   the band; gridmap takes the one nearest ``H / 60``.  When no ``k`` can (fewer than 50;
   71-99; 141-149 for 50-70) the total is *infeasible* and the policy decides: ``over`` keeps
   one grid above ``max``, ``under`` one below ``min``, ``keep`` (the default) whichever is
   nearer the band.  Every other grid stays in the band.
3. **Recursive bisection with exact counts.** A region holding ``k`` grids is cut by a
   straight line into two regions holding ``k1 = k // 2`` and ``k - k1``, such that each side's
   households fit the sum of its grids' bands (``k1*min <= left <= k1*max`` and likewise on
   the right).  Those windows nest, so every leaf lands in its band.  Cuts are tried in 12
   directions (offset by the seed) at every position between two consecutive entrances whose
   count fits; a cut is kept only if each side's entrances lie in one connected piece (pieces
   without entrances join the neighbour they share an edge with), and the best is the one
   whose two sides are most compact (Polsby-Popper) and nearest the target split.
4. **Fallback.** When straight cuts cannot (coarse units in a row, concave outlines), the courtyard
   is cut into the entrances' Voronoi cells, and sides come from cutting one edge of random
   spanning trees of the cells' adjacency (both sides stay connected); if that fails too, empty
   filler cells between the entrances let a grid reach round another, and a region that no tree cut
   fits gets *subset cuts*: groupings of its units whose household sums fit both sides (a knapsack,
   most compact first), each drawn by joining one side's units through empty cells, so a grid can
   take a unit from across a U (:func:`.subsets.subset_cuts`).  Then come the other grid counts that can
   hold the band; when all have failed, each gets one more filler search with the subset cuts first
   in every region of at most ``SUBSET_ITEMS`` units.  Only then do the policy's plans of
   :meth:`Band.plans` come in, and the report says ``units too coarse for the band``.  A grid count
   that no grouping of the units fits by household sums alone is not searched (:func:`.subsets.packable`).
   Every search is bounded (``BUDGET``, ``TREES``, ``SUBSET_BUDGET``, ``PACK_STEPS``).
5. **Geometry.** Cuts are straight lines in metres (a plane affine to lon/lat, so they are
   straight in storage too), applied to the stored courtyard itself: the outline's vertices are
   untouched and the pieces tile it exactly.

Quality figures: Polsby-Popper ``4 pi A / P^2`` in EPSG:4547, and a visiting time (see
:class:`VisitModel`).
"""

from __future__ import annotations

from .geometry import polsby_popper, tour_length
from .items import items_of, unit_entrances
from .model import POLICIES, Band, BuildingIn, Item, Plan, VisitModel
from .search import partition

__all__ = [
    "POLICIES",
    "Band",
    "BuildingIn",
    "Item",
    "Plan",
    "VisitModel",
    "items_of",
    "partition",
    "polsby_popper",
    "tour_length",
    "unit_entrances",
]
