"""Grid people, pure: roles, phones and their masks, ID-card numbers, roster checks, coverage and load."""

from __future__ import annotations

import pytest

from gridmap.domain import coverage, party, people
from gridmap.errors import InputError

KEY = b"k" * 32
GOOD_ID = "11010519491231002X"  # GB 11643's worked example


@pytest.mark.parametrize(
    "given, canonical",
    [
        ("13812345678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("0371-67881234", "0371-67881234"),
        ("(0371) 6788 1234", "0371-67881234"),
        ("010-12345678", "010-12345678"),
        ("02112345678", "021-12345678"),
        ("0371-67881234转801", "0371-67881234-801"),
    ],
)
def test_phone_numbers_take_one_form(given, canonical):
    assert people.normalise_phone(given) == canonical


@pytest.mark.parametrize("bad", ["12345678901", "1381234567", "67881234", "03716788123", "phone", "+1 212 555 0100"])
def test_not_a_phone_number_is_named(bad):
    with pytest.raises(InputError, match="not a"):
        people.normalise_phone(bad)


def test_masks_keep_only_the_ends():
    assert people.mask_phone("13812345678") == "138****5678"
    assert people.mask_phone("0371-67881234") == "0371-****1234"
    assert people.mask_phone("0371-67881234-801") == "0371-****1234"
    assert people.mask_phone(None) is None


def test_id_card_check_digit_and_birth_date():
    assert people.check_id_card(GOOD_ID.lower()) == GOOD_ID
    with pytest.raises(InputError, match="check digit"):
        people.check_id_card(GOOD_ID[:-1] + "1")
    with pytest.raises(InputError, match="birth date"):
        people.check_id_card("110105194913310021")
    with pytest.raises(InputError, match="17 digits") as err:
        people.check_id_card("1101051949")
    assert "1101051949" not in err.value.message  # error messages show a masked number


def test_id_card_hash_is_keyed_and_never_holds_the_number():
    h = people.hash_id_card(GOOD_ID, KEY)
    assert h == people.hash_id_card(GOOD_ID.lower(), KEY)
    assert h != people.hash_id_card(GOOD_ID, b"other key" * 4)
    assert GOOD_ID not in h and "19491231" not in h


def test_roles_accept_chinese_labels():
    assert people.check_role("网格员") == "grid_worker"
    assert people.check_role("楼长") == "building_lead"
    assert people.check_role("party_member") == "party_member"
    with pytest.raises(InputError, match="unknown role 'boss'.*grid_leader"):
        people.check_role("boss")


PLACES = people.Places(
    grids={"C1": "community", "Y1": "courtyard", "M1": "micro", "M2": "micro"},
    buildings={"Y1B001": ("Y1", [1, 2])},
    orgs=frozenset({"P1"}),
)


def test_roster_names_every_bad_row():
    rows = [
        {"grid": "M1", "role": "网格员", "name": "张伟", "phone": "13812345678", "id_card": GOOD_ID},
        {"grid": "M9", "role": "grid_worker", "name": "李娜", "phone": "13912345678"},
        {"grid": "M2", "role": "boss", "name": "王芳", "phone": "13712345678"},
        {"grid": "M1", "role": "grid_worker", "name": "张伟", "phone": "13812345678", "id_card": GOOD_ID},
        {"grid": "M2", "role": "grid_worker", "name": "刘洋", "phone": "12345"},
        {"grid": "Y1", "role": "grid_worker", "name": "陈静", "phone": "13612345678"},
        {"building": "Y1B001", "unit": "3", "role": "单元长", "name": "赵磊", "phone": "13512345678"},
        {"building": "Y1B001", "unit": "2", "role": "单元长", "name": "赵磊", "phone": "13512345678"},
        {"grid": "C1", "role": "党组织书记", "name": "周敏", "org": "P9"},
        {"grid": "M2", "role": "volunteer", "name": " ", "phone": "13412345678"},
    ]
    posts, problems = people.check_roster(rows, PLACES, KEY)
    by_row = {p["row"]: p["problem"] for p in problems}
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7, 9, 10]
    assert by_row[2] == "unknown grid 'M9'"
    assert by_row[3].startswith("unknown role 'boss'")
    assert by_row[4] == "duplicate: 张伟 as grid_worker here repeats row 1"
    assert "'12345' is not a Chinese mobile" in by_row[5]
    assert by_row[6] == "a grid_worker serves a micro or special grid, Y1 is a courtyard"
    assert by_row[7] == "unknown unit '3' of building Y1B001"
    assert by_row[9] == "unknown party organisation 'P9'"
    assert by_row[10] == "missing name"
    assert [(p["name"], p["role"], p["unit"]) for p in posts] == [
        ("张伟", "grid_worker", None),
        ("赵磊", "unit_lead", 2),
    ]
    assert posts[0]["id_hash"].startswith("h1:") and GOOD_ID not in str(posts[0])


def test_roster_duplicate_of_a_current_post():
    row = {"grid": "M1", "role": "grid_worker", "name": "张伟", "phone": "138 1234 5678"}
    current = people.post_key(people.check_row(row, PLACES, KEY))
    posts, problems = people.check_roster([row], PLACES, KEY, existing=[current])
    assert posts == [] and problems[0]["problem"].endswith("repeats a current post")


def test_chinese_headers():
    assert people.canonical_columns(["网格编码", "职务", "姓名", "联系电话", "身份证号"]) == {
        "网格编码": "grid",
        "职务": "role",
        "姓名": "name",
        "联系电话": "phone",
        "身份证号": "id_card",
    }


def test_coverage_summary_counts_each_kind_of_gap():
    gaps = [
        {"code": "C2", "problem": coverage.NO_ORG},
        {"code": "M4", "problem": coverage.NO_WORKER},
        {"code": "X1", "problem": coverage.NO_WORKER},
    ]
    totals = {"needing": 5, "communities": 2, "workers": 3, "overloaded": 1}
    assert coverage.summary(gaps, totals) == {
        "grids_needing_worker": 5,
        "grids_without_worker": 2,
        "communities": 2,
        "communities_without_org": 1,
        "workers": 3,
        "overloaded": 1,
    }


def test_party_organisations_name_every_bad_row():
    rows = [
        {"code": "P1", "name": "锦艺社区党委", "kind": "党委", "grids": "C1"},
        {"code": "P2", "name": "第一党支部", "kind": "党支部", "parent": "P1", "grids": "Y1；M1、M2"},
        {"code": "P3", "name": "第一党小组", "kind": "group", "parent": "P2", "grids": "M9"},
        {"code": "P2", "name": "重复", "kind": "branch", "parent": "P1"},
        {"code": "P4", "name": "倒挂", "kind": "branch", "parent": "P5"},
        {"code": "P5", "name": "小组", "kind": "党小组", "parent": "P0"},
        {"code": "P6", "name": "未知", "kind": "cell"},
    ]
    orgs, problems = party.check_orgs(rows, PLACES.grids, current={"P0": "group"})
    assert [o["code"] for o in orgs] == ["P1", "P2", "P4", "P5"]
    assert orgs[1]["grids"] == ["Y1", "M1", "M2"]
    assert [(p["row"], p["problem"]) for p in problems] == [
        (3, "unknown grid 'M9'"),
        (4, "duplicate: organisation P2 repeats row 2"),
        (5, "a 党支部 cannot sit under a 党小组 (P5)"),
        (6, "a 党小组 cannot sit under a 党小组 (P0)"),
        (
            7,
            "unknown organisation kind 'cell': one of committee (党委), general_branch (党总支), branch (党支部), "
            "group (党小组)",
        ),
    ]
