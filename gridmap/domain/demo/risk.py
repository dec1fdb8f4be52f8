"""The demo city's three-colour risk elements, their visits, and citizen reports.

About one element per 18 households, placed inside the micro-grids (vectorised rejection
sampling); kinds, colours, names and reasons drawn from plausible lists; marked by the micro-grid's
grid worker.  Visits go back from a time since the last contact drawn up to 1.35 times the colour's
interval (default rule: 7 / 30 / 90 days), so about a quarter of each colour is overdue when the
city is loaded.  Times are relative to ``anchor`` (the day the demo is generated): same seed and
anchor, same files.  Uses its own random stream, so the city itself is unchanged by this module.
"""

from __future__ import annotations

from datetime import UTC, datetime

import lazy_loader
import numpy as np
import shapely

from ... import geo
from ..risk import COLOURS, KINDS, Rules

pd = lazy_loader.load("pandas")

HOUSEHOLDS_PER_ELEMENT = 18
HOUSEHOLDS_PER_REPORT = 500
KIND_SHARE = (0.35, 0.15, 0.20, 0.12, 0.08, 0.10)
COLOUR_SHARE = (0.08, 0.25, 0.67)
#: Time since the last contact, in intervals of the element's colour: over 1 is overdue.
LATE_SPREAD = 1.35

_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程")
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国志海燕文亮淑珍德福")

# per kind, what its elements are called and why they are marked; {yard} is the courtyard's name, {n} a number
_KIND_TEXT = {
    "person": {
        "red": [
            "社区矫正对象，需每周见面谈话",
            "严重精神障碍患者，监护人年迈",
            "独居失能老人，无人照料",
            "刑满释放人员，安置帮教期内",
            "多次越级上访，情绪激动",
        ],
        "yellow": [
            "独居老人，子女在外地",
            "低保家庭，主要劳动力患病",
            "留守儿童，祖辈监护",
            "长期失业，家庭矛盾较多",
            "残疾人，需定期了解康复情况",
        ],
        "blue": [
            "空巢老人，身体尚可",
            "退役军人，信息登记",
            "高龄老人，日常关注",
            "新迁入住户，常规走访",
            "育龄家庭，常规服务",
        ],
    },
    # every other kind: (name template, its reasons by colour), so a name and its reason match
    "place": [
        (
            "{yard}{n}号楼地下车库",
            {
                "red": ["地下车库住人，无消防设施"],
                "yellow": ["车库杂物堆放，占用疏散通道"],
                "blue": ["车库照明、排水正常，日常巡查"],
            },
        ),
        (
            "{yard}{n}号楼楼道",
            {
                "red": ["楼道私拉电线给电动车充电"],
                "yellow": ["楼道杂物堆放，占用疏散通道"],
                "blue": ["楼道畅通，常规检查"],
            },
        ),
        (
            "{yard}东门出入口",
            {
                "red": ["出入口被占道经营堵死，消防车无法通行"],
                "yellow": ["早晚高峰人车混行，秩序较乱"],
                "blue": ["人员出入较多，日常巡查"],
            },
        ),
        (
            "{yard}电动车集中充电棚",
            {"red": ["充电线路老化，曾有冒烟起火"], "yellow": ["充电车辆超量停放"], "blue": ["充电设施正常，常规检查"]},
        ),
        (
            "{yard}{n}号楼出租屋",
            {
                "red": ["群租房，人员混杂、消防隐患突出"],
                "yellow": ["出租屋人员流动大，登记不全"],
                "blue": ["租户信息已登记，定期走访"],
            },
        ),
        (
            "{yard}配电房",
            {
                "red": ["配电房漏雨，设备受潮"],
                "yellow": ["配电房门锁损坏，闲人可进入"],
                "blue": ["配电设施正常，常规检查"],
            },
        ),
        (
            "{yard}南侧沿街商铺",
            {
                "red": ["商铺后厨油烟管道积油，消防隐患突出"],
                "yellow": ["商铺门前占道经营"],
                "blue": ["重点时段巡查点位"],
            },
        ),
    ],
    "thing": [
        (
            "{yard}燃气调压箱",
            {
                "red": ["燃气调压箱锈蚀，存在泄漏风险"],
                "yellow": ["调压箱周边堆放杂物"],
                "blue": ["燃气设施正常，常规检查"],
            },
        ),
        (
            "{yard}{n}号楼电梯",
            {"red": ["电梯年检过期，多次困人"], "yellow": ["电梯运行异响，已报维保"], "blue": ["电梯已维修，持续观察"]},
        ),
        (
            "{yard}高空广告牌",
            {
                "red": ["广告牌松动，大风天气有坠落风险"],
                "yellow": ["广告牌支架锈蚀"],
                "blue": ["广告牌已加固，纳入日常巡查"],
            },
        ),
        (
            "{yard}消防栓",
            {"red": ["消防栓无水，无法使用"], "yellow": ["消防栓水压不足"], "blue": ["消防栓正常，常规检查"]},
        ),
        (
            "{yard}井盖",
            {"red": ["井盖缺失，已有行人踩空"], "yellow": ["井盖破损，已临时围挡"], "blue": ["井盖已更换，持续观察"]},
        ),
        (
            "{yard}监控探头",
            {"red": ["出入口监控全部损坏"], "yellow": ["监控探头离线"], "blue": ["监控运行正常，常规检查"]},
        ),
        (
            "{yard}围墙",
            {"red": ["围墙开裂外倾，有倒塌风险"], "yellow": ["围墙局部倾斜"], "blue": ["围墙老化，纳入日常巡查"]},
        ),
    ],
    "event": [
        (
            "{yard}{n}号楼邻里纠纷",
            {
                "red": ["邻里矛盾激化，有肢体冲突苗头"],
                "yellow": ["邻里双方各执一词，调解中"],
                "blue": ["邻里纠纷已调解，回访巩固"],
            },
        ),
        (
            "{yard}物业费纠纷",
            {
                "red": ["多户联名拒缴物业费，情绪对立"],
                "yellow": ["物业费争议反复投诉，尚未化解"],
                "blue": ["物业费争议已协商，跟踪回访"],
            },
        ),
        (
            "{yard}装修噪音扰民",
            {
                "red": ["装修噪音引发多户冲突"],
                "yellow": ["装修噪音反复投诉，需协调物业"],
                "blue": ["装修噪音投诉已处理，跟踪回访"],
            },
        ),
        (
            "{yard}停车位纠纷",
            {"red": ["车位争执多次报警"], "yellow": ["车位被长期占用，反复投诉"], "blue": ["车位纠纷已调解，回访巩固"]},
        ),
        (
            "{yard}漏水纠纷",
            {
                "red": ["楼上楼下漏水纠纷激化，扬言报复"],
                "yellow": ["漏水责任双方各执一词，调解中"],
                "blue": ["漏水已维修，跟踪回访"],
            },
        ),
        (
            "{yard}宠物扰民投诉",
            {
                "red": ["犬只伤人，双方矛盾激化"],
                "yellow": ["犬只夜间吠叫，反复投诉"],
                "blue": ["宠物扰民已劝导，跟踪回访"],
            },
        ),
    ],
    "situation": [
        (
            "{yard}加装电梯意见",
            {
                "red": ["低层住户反对加装电梯，拟集体上访"],
                "yellow": ["加装电梯意见集中，需召开议事会"],
                "blue": ["加装电梯意见已记录反馈"],
            },
        ),
        (
            "{yard}老旧小区改造诉求",
            {
                "red": ["改造方案分歧大，网上舆情发酵"],
                "yellow": ["改造诉求反复出现，需持续沟通"],
                "blue": ["改造意见已收集，常规跟进"],
            },
        ),
        (
            "{yard}停车难反映",
            {
                "red": ["停车难引发堵门，居民情绪激动"],
                "yellow": ["停车难反映集中，需协调车位"],
                "blue": ["停车意见已记录反馈"],
            },
        ),
        (
            "{yard}供暖问题反映",
            {"red": ["整栋楼停暖，老人较多"], "yellow": ["供暖温度不达标，反复反映"], "blue": ["供暖意见已转供热公司"]},
        ),
        (
            "{yard}拆迁补偿诉求",
            {
                "red": ["拆迁补偿诉求集中，部分居民拟集体上访"],
                "yellow": ["补偿标准有疑问，需政策解释"],
                "blue": ["补偿政策已解释，常规跟进"],
            },
        ),
        (
            "{yard}物业更换意见",
            {
                "red": ["业主与物业对立，拟强行更换物业"],
                "yellow": ["业主意见分歧，需召开业主大会"],
                "blue": ["物业更换意见已收集"],
            },
        ),
    ],
    "organisation": [
        (
            "{yard}周边{word}商贸有限公司",
            {"red": ["拖欠员工工资，存在群体讨薪风险"], "yellow": ["营业执照即将到期"], "blue": ["证照齐全，定期走访"]},
        ),
        (
            "{word}餐饮店",
            {
                "red": ["无证经营，油烟消防隐患突出"],
                "yellow": ["后厨消防设施不全，需督促整改"],
                "blue": ["证照齐全，常规检查"],
            },
        ),
        (
            "{word}教育培训中心",
            {"red": ["预收学费后关门，非法集资线索"], "yellow": ["办学许可即将到期"], "blue": ["合规经营，定期走访"]},
        ),
        (
            "{word}物业服务有限公司",
            {"red": ["物业撤场，小区无人管理"], "yellow": ["投诉较多，需督促整改"], "blue": ["服务正常，日常联系"]},
        ),
        (
            "{word}养老服务站",
            {"red": ["老人集中居住，消防设施缺失"], "yellow": ["护理人员资质不全"], "blue": ["社会组织，日常联系"]},
        ),
        (
            "{word}志愿服务队",
            {
                "red": ["以志愿服务名义募捐，去向不明"],
                "yellow": ["队伍登记信息不全"],
                "blue": ["志愿服务正常，日常联系"],
            },
        ),
        (
            "{word}便利店",
            {"red": ["向未成年人售酒，屡教不改"], "yellow": ["店外堆货占道"], "blue": ["证照齐全，常规检查"]},
        ),
    ],
}
_WORDS = list("金华阳光明德兴盛和平安康泰福瑞祥嘉禾丰乐景园林翠锦绣春秋新世纪凤凰天地龙湖紫荆银河")

_REPORTS = [
    "小区东门路灯不亮，晚上出行不安全",
    "楼道堆放杂物，堵塞消防通道",
    "电动车在楼道内充电，存在火灾隐患",
    "下水道堵塞，污水外溢",
    "井盖缺失，有人差点踩空",
    "夜间施工噪音扰民",
    "垃圾清运不及时，气味很大",
    "小区门口占道经营，影响通行",
    "楼顶漏水，雨天屋里渗水",
    "电梯经常停运，老人上下楼困难",
    "树枝遮挡路灯和监控",
    "高空抛物，楼下车辆被砸",
    "流浪犬在小区游荡，担心伤人",
    "共享单车乱停乱放堵住路口",
    "供暖温度不达标",
    "燃气味道明显，请尽快排查",
    "广场舞音响声音过大",
    "围墙破损，外来人员随意进出",
    "停车位被长期占用",
    "绿化带被毁种菜",
]


def _sample_in(geoms: np.ndarray, rng, tries: int = 60):
    """One uniform random point inside each geometry (vectorised rejection sampling); a polygon's
    representative point if sampling keeps missing (slivers)."""
    shapely.prepare(geoms)
    b = shapely.bounds(geoms)
    x, y = np.full(len(geoms), np.nan), np.full(len(geoms), np.nan)
    pending = np.arange(len(geoms))
    for _ in range(tries):
        if not len(pending):
            break
        xs = rng.uniform(b[pending, 0], b[pending, 2])
        ys = rng.uniform(b[pending, 1], b[pending, 3])
        inside = shapely.contains_xy(geoms[pending], xs, ys)
        x[pending[inside]], y[pending[inside]] = xs[inside], ys[inside]
        pending = pending[~inside]
    if len(pending):
        p = shapely.point_on_surface(geoms[pending])
        x[pending], y[pending] = shapely.get_x(p), shapely.get_y(p)
    return x, y


def _names(rng, n) -> np.ndarray:
    given = rng.choice(_GIVEN, (n, 2))
    two = rng.random(n) < 0.6
    return np.array(
        [s + g[0] + (g[1] if t else "") for s, g, t in zip(rng.choice(_SURNAMES, n), given, two)], dtype=object
    )


def generate(
    micro: list[dict], people: list[dict], seed: int, anchor: datetime, rules: Rules = Rules()
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(elements, visits, reports) for the demo city's micro-grids (rows with ``code``, ``name``,
    ``households`` and a lon/lat ``geometry``).  Elements carry WKT (points; places as small
    rectangles), visits name their element by row number (``element_row``, from 1)."""
    rng = np.random.default_rng([seed, 5])
    geoms = np.array([m["geometry"] for m in micro], dtype=object)
    households = np.array([m["households"] for m in micro], dtype="float64")
    yard = np.array([m["name"].split("第")[0] for m in micro], dtype=object)
    worker = {p["grid_code"]: p["name"] for p in people if p["role"] == "grid_worker"}
    workers = np.array([worker.get(m["code"], "网格员") for m in micro], dtype=object)

    per = rng.poisson(households / HOUSEHOLDS_PER_ELEMENT)
    owner = np.repeat(np.arange(len(micro)), per)
    n = len(owner)
    x, y = _sample_in(geoms[owner], rng)
    kind = np.asarray(KINDS, dtype=object)[rng.choice(len(KINDS), n, p=KIND_SHARE)]
    colour = np.asarray(COLOURS, dtype=object)[rng.choice(len(COLOURS), n, p=COLOUR_SHARE)]
    # places are small footprints (18-40 m by 12-30 m) around their point, others points
    kx, ky = geo.local_scale()
    w, h = rng.uniform(18, 40, n) / kx / 2, rng.uniform(12, 30, n) / ky / 2
    place = kind == "place"
    wkt = shapely.to_wkt(shapely.points(x, y), rounding_precision=8)
    boxes = shapely.box(x - w, y - h, x + w, y + h)
    wkt[place] = shapely.to_wkt(boxes[place], rounding_precision=8)

    name = np.empty(n, dtype=object)
    reason = np.empty(n, dtype=object)
    numbers = rng.integers(1, 13, n)
    words = rng.choice(_WORDS, (n, 2))
    pick = rng.random((n, 2))
    people_names = _names(rng, n)
    for i in range(n):
        if kind[i] == "person":
            name[i], reasons = people_names[i], _KIND_TEXT["person"]
        else:
            template, reasons = _KIND_TEXT[kind[i]][int(pick[i, 0] * len(_KIND_TEXT[kind[i]]))]
            name[i] = template.format(yard=yard[owner[i]], n=numbers[i], word=words[i, 0] + words[i, 1])
        options = reasons[colour[i]]
        reason[i] = options[int(pick[i, 1] * len(options))]

    # contacts: last one LATE_SPREAD intervals back at most; earlier visits 0.5-1 interval apart
    interval = np.array([rules.visit_days[c] for c in colour], dtype="float64") * 86_400.0
    visits = rng.choice(4, n, p=(0.25, 0.45, 0.2, 0.1))
    since = interval * rng.uniform(0.02, LATE_SPREAD, n)
    rows_el, rows_t, rows_who = [], [], []
    contact = -since  # seconds relative to the anchor
    for k in range(int(visits.max()) if n else 0):
        has = visits > k
        idx = np.flatnonzero(has)
        rows_el.append(idx)
        rows_t.append(contact[idx])
        rows_who.append(workers[owner[idx]])
        contact = np.where(has, contact - interval * rng.uniform(0.5, 1.0, n), contact)
    # marked before the first visit (or at the last contact when never visited)
    marked = np.where(visits > 0, contact, -since)
    anchor_s = anchor.timestamp()

    def iso(seconds):
        return pd.to_datetime(np.round(anchor_s + seconds), unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%S+00:00")

    elements = pd.DataFrame(
        {
            "kind": kind,
            "colour": colour,
            "name": name,
            "reason": reason,
            "marked_by": workers[owner],
            "marked_at": iso(marked),
            "wkt": wkt,
        }
    )
    if rows_el:
        el = np.concatenate(rows_el)
        visits_df = pd.DataFrame(
            {
                "element_row": el + 1,
                "visited_at": iso(np.concatenate(rows_t)),
                "visitor": np.concatenate(rows_who),
                "note": rng.choice(
                    ["已走访，情况稳定", "已走访，提醒整改", "电话回访", "入户走访，记录诉求", "联合物业排查"], len(el)
                ),
            }
        )
        visits_df = visits_df.sort_values(["visited_at", "element_row"], kind="stable").reset_index(drop=True)
    else:
        visits_df = pd.DataFrame(columns=["element_row", "visited_at", "visitor", "note"])

    # citizen reports: a few per community, open or closed, within the last 90 days
    r_per = rng.poisson(households / HOUSEHOLDS_PER_REPORT)
    r_owner = np.repeat(np.arange(len(micro)), r_per)
    rx, ry = _sample_in(geoms[r_owner], rng)
    m = len(r_owner)
    received = -rng.uniform(0, 90, m) * 86_400.0
    reports = pd.DataFrame(
        {
            "text": rng.choice(_REPORTS, m),
            "lon": np.round(rx, 8),
            "lat": np.round(ry, 8),
            "status": np.where(rng.random(m) < 0.4, "open", "closed"),
            "received_at": iso(received),
        }
    )
    return elements, visits_df, reports


def anchor_today(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day: the demo's times stay the same all day (deterministic files)."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)
