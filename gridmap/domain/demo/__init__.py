"""The demo city: grids, buildings and people (:mod:`.city`) and its risk elements, visits and
reports (:mod:`.risk`), generated from a seed inside the real Zhengzhou boundaries."""
