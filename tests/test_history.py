"""A grid's history shows every logged write that touched it: the import that opened it, a partition
or an ``import --replace`` that closed it, and boundary edits (issue #11: partitions and imports
were logged without the codes they touched, so `gridmap history` never showed them)."""

from __future__ import annotations

import json

import cityfactory as cf

YARD = "410199001001001"
MICRO = YARD + "01"
STREET = "410199001"


def actions(cli, client, code):
    """The actions of a grid's history, from the CLI and from the API (they must agree)."""
    res = cli("history", code, "--format", "json")
    assert res.exit_code == 0, res.output
    from_cli = [e["action"] for e in json.loads(res.output)["edits"]]
    from_api = [e["action"] for e in client.get(f"/api/v1/grids/{code}/history").get_json()["edits"]]
    assert from_cli == from_api
    return from_cli


def test_partition_and_import_replace_are_in_the_history(client, cli, tmp_path):
    city = cf.city()
    cf.load(cli, city, tmp_path)
    assert actions(cli, client, MICRO) == ["import micro"]
    res = cli("partition", "--courtyard", YARD, "--reason", "重新划分")
    assert res.exit_code == 0, res.output
    assert actions(cli, client, MICRO) == ["import micro", "partition"]  # closed by it, and opened again
    street = dict(cf.find(city, "street", STREET), name="测试一街道")
    res = cli("import", cf.write([street], tmp_path, "street-renamed"), "--level", "street", "--replace")
    assert res.exit_code == 0, res.output
    assert actions(cli, client, STREET) == ["import street", "import street"]
    assert actions(cli, client, "410199002") == ["import street"]  # not touched by the replace
