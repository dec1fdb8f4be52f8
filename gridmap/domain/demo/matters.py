"""The demo matter catalogue: 504 matter types in eleven categories, 145 of them auto-dispatched,
as Zhengzhou's event centre lists them (事项清单, 首批145个事项自动派单).  Pure: returns rows;
``gridmap matters generate`` writes them as the CSV beside ``matters.toml``.

Names follow the city-management standard's pattern (部件 and 事件: an object and what is wrong
with it, GB/T 30428) where a category is made of such pairs, and are listed one by one elsewhere.
Routine matters with one obvious handler (litter, a broken manhole cover, a dark street lamp) are
the automatic ones; disputes and anything needing judgement go to a dispatcher.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events.catalogue import CSV_COLUMNS

TOTAL, AUTO = 504, 145


@dataclass(frozen=True)
class _Category:
    """A category: its quota of matters and of automatic ones, and how its matters are handled."""

    name: str
    quota: int
    auto_quota: int
    kind: str  # department kind at community level and up (where it exists)
    level: str
    deadline: str
    verify: str
    items: tuple  # (name, routine) pairs, routine ones first in priority
    routine_level: str = ""  # where routine matters start when lower than ``level`` (小事不出网格)
    radius: str = ""  # duplicate radius in metres when not the catalogue default


def _words(text: str) -> list[str]:
    """Names separated by spaces: long Chinese lists stay readable, one line per ~15 names."""
    return text.split()


def _pairs(objects, problems, routine_problems=()) -> tuple:
    """Object × problem names; routine when the problem is routine, those first (auto priority)."""
    out = [(o + p, p in routine_problems) for p in problems for o in objects]
    return tuple(sorted(out, key=lambda item: not item[1]))


def _listed(routine, other) -> tuple:
    return tuple((n, True) for n in routine) + tuple((n, False) for n in other)


_PLACES = _words("道路 人行道 背街小巷 绿化带 公园广场 河道沿岸 小区楼院 农贸市场周边 公交站台 桥下空间")
_COVERS = _words("上水井盖 污水井盖 雨水井盖 电力井盖 通信井盖 燃气井盖 热力井盖 雨水箅子")
_LAMPS = _words("路灯 景观灯 地灯 庭院灯 高杆灯 隧道灯")
_FIXTURES = _words("垃圾箱 公共座椅 健身器材 交通护栏 隔离墩 公交站亭 报刊亭 消防栓 交通标志牌 路名牌 宣传栏 阻车桩")

CATEGORIES = (
    _Category(
        "市容环境",
        80,
        30,
        "cg",
        "community",
        "4h",
        "photo",
        routine_level="micro",
        items=_pairs(
            _PLACES,
            _words("暴露垃圾 积存垃圾渣土 道路不洁 乱涂写乱张贴 乱堆物堆料 焚烧垃圾树叶 动物尸体 沿街晾挂"),
            ("暴露垃圾", "积存垃圾渣土", "道路不洁"),
        ),
    ),
    _Category(
        "城市管理",
        72,
        30,
        "cg",
        "community",
        "1wd",
        "site",
        radius="50",
        items=_pairs(_COVERS, ("丢失", "破损", "移位"), ("丢失", "破损"))
        + _pairs(_LAMPS, ("不亮", "破损倾倒"), ("不亮",))
        + _pairs(_FIXTURES, ("破损", "缺失", "被占用"), ("破损",)),
    ),
    _Category(
        "社会治安",
        40,
        5,
        "ga",
        "community",
        "1wd",
        "none",
        _listed(
            _words("犬只伤人 烈性犬散养 未拴绳遛狗 出租屋未登记 流动人口未登记"),
            _words(
                "可疑人员 可疑物品 打架斗殴 盗窃线索 电信诈骗线索 非法集资线索 聚众赌博 传销窝点 涉毒线索 "
                "夜间噪音扰民 醉酒滋事 寻衅滋事 群体性聚集苗头 校园周边治安隐患 未成年人夜不归宿 "
                "精神障碍患者肇事风险 重点人员动态异常 非法办证小广告 黑车揽客 无证经营网吧 违规经营歌舞娱乐场所 "
                "涉黑涉恶线索 偷拍偷录 高空抛物 私藏管制刀具 非法改装车辆扰民 无人机黑飞 非法收购废旧金属 "
                "盗窃电动车 入室盗窃隐患 家庭暴力 邻里治安纠纷 网络谣言线索 邪教宣传品 空置房屋异常人员 "
                "快递包裹可疑 钓鱼执法投诉 社区治安巡逻缺位"
            ),
        ),
    ),
    _Category(
        "安全生产",
        56,
        12,
        "yj",
        "community",
        "4h",
        "site",
        _listed(
            _words(
                "楼道堆放杂物 消防通道堵塞 电动车楼道充电 飞线充电 灭火器过期 安全出口锁闭 疏散指示灯损坏 "
                "燃气管道私改 液化气罐违规存放 高空悬挂物松动 广告牌松动 临时用电不规范"
            ),
            _words(
                "群租房消防隐患 三合一场所住人 小作坊违规生产 危化品违规储存 加油站周边明火 建筑工地未围挡 "
                "工地塔吊隐患 脚手架不稳 深基坑无防护 工地夜间违规施工 有限空间作业无防护 餐饮油烟管道积油 "
                "餐饮场所使用液化气隐患 电梯困人 电梯故障停运 游乐设施隐患 锅炉压力容器隐患 烟花爆竹违规销售 "
                "违规燃放烟花爆竹 老旧电线私拉 配电箱未上锁 地下室违规住人 彩钢板房隐患 冬季燃煤取暖隐患 "
                "仓库违规住人 外墙保温层脱落 空调外机松动 玻璃幕墙破损 围墙倒塌风险 危房险情 山体滑坡隐患 "
                "地面塌陷 积水深坑 窨井有毒气体 冰雪路面未清 防汛物资缺失 防溺水警示牌缺失 河道护栏缺失 "
                "大型活动安全隐患 学校周边交通隐患 商超疏散通道堵塞 宾馆消防设施缺失 网吧消防隐患 养老机构安全隐患"
            ),
        ),
    ),
    _Category(
        "民生服务",
        60,
        20,
        "mz",
        "community",
        "2wd",
        "photo",
        routine_level="micro",
        items=_listed(
            _words(
                "独居老人探访 高龄津贴咨询 低保申请咨询 残疾人证办理咨询 临时救助申请 居住证办理咨询 就业登记咨询 "
                "灵活就业社保咨询 医保参保咨询 新生儿落户咨询 老年人助餐服务 适老化改造申请 社区证明开具 "
                "志愿服务需求 困难儿童关爱 特殊家庭帮扶 退役军人优待咨询 残疾人辅具申请 孤寡老人上门服务 婚育证明咨询"
            ),
            _words(
                "拖欠工资 劳动合同纠纷 社保断缴 教育入学咨询 校外培训投诉 托育服务需求 家政服务投诉 养老服务投诉 "
                "殡葬服务咨询 流浪乞讨人员救助 走失人员寻找 心理援助需求 法律援助申请 公租房申请 保障房维修 "
                "租房补贴咨询 住房公积金咨询 无障碍设施缺失 社区食堂服务 社区卫生服务投诉 疫苗接种咨询 "
                "慢病管理服务 家庭医生签约 母婴室缺失 公共厕所开放时间 便民服务点缺失 快递末端投诉 "
                "社区活动场地需求 "
                "老旧小区加装电梯 充电桩安装需求 停车位需求 供暖不热 供暖缴费咨询 停水 停电 燃气供应中断 "
                "自来水水质异常 有线电视故障 网络信号差 小区门禁故障"
            ),
        ),
    ),
    _Category(
        "矛盾纠纷",
        30,
        0,
        "sf",
        "community",
        "5wd",
        "none",
        radius="30",
        items=_listed(
            (),
            _words(
                "邻里纠纷 婚姻家庭纠纷 赡养纠纷 继承纠纷 房屋租赁纠纷 物业服务纠纷 相邻通行纠纷 漏水纠纷 噪音纠纷 "
                "宠物纠纷 停车纠纷 装修纠纷 消费纠纷 劳资纠纷 工程款纠纷 征地拆迁纠纷 土地承包纠纷 "
                "宅基地纠纷 山林水利纠纷 医疗纠纷 交通事故纠纷 校园纠纷 网络购物纠纷 债务纠纷 合伙经营纠纷 "
                "业委会选举纠纷 公共维修资金纠纷 集体资产分配纠纷 信访积案 群体性诉求"
            ),
        ),
    ),
    _Category(
        "生态环境",
        40,
        12,
        "hb",
        "street",
        "2wd",
        "site",
        radius="300",
        items=_listed(
            _words(
                "餐饮油烟扰民 露天烧烤 工地扬尘 渣土车遗撒 裸土未覆盖 道路扬尘 河道漂浮物 河道排污口异常 黑臭水体 "
                "秸秆焚烧 垃圾分类投放不规范 建筑垃圾乱倒"
            ),
            _words(
                "工业废气排放 工业噪声扰民 商业噪声扰民 建筑施工噪声 夜间施工扰民 广场舞噪音 汽修喷漆废气 "
                "危险废物乱倒 医疗废物处置不当 污水直排 地下水污染 土壤污染 畜禽养殖污染 散乱污企业 "
                "燃煤锅炉违规使用 烟囱冒黑烟 机动车尾气超标 非道路机械冒黑烟 光污染 异味扰民 砍伐树木 毁坏绿地 "
                "占用绿地 湿地破坏 野生动物捕猎 违规捕捞 放生外来物种 饮用水源地违规活动"
            ),
        ),
    ),
    _Category(
        "市场监管",
        36,
        10,
        "sj",
        "street",
        "3wd",
        "photo",
        _listed(
            _words(
                "无证照经营 过期食品销售 价格欺诈 缺斤短两 虚假宣传 无明码标价 餐饮后厨不洁 从业人员无健康证 "
                "校园周边三无食品 商品以次充好"
            ),
            _words(
                "假冒伪劣商品 制售假药 医疗器械违规销售 化妆品质量问题 特种设备违规使用 计量器具未检定 "
                "电梯维保不到位 预付卡跑路 网络交易欺诈 侵犯商标权 不正当竞争 违规发布广告 价格哄抬 农资质量问题 "
                "食品小作坊不规范 外卖商家无资质 直播带货违规 保健品虚假宣传 黑加油点 燃气具质量问题 "
                "儿童用品质量问题 网约车服务投诉 快递违规收费 美容美发办卡纠纷 健身房跑路 二手车交易纠纷"
            ),
        ),
    ),
    _Category(
        "交通出行",
        30,
        10,
        "jt",
        "street",
        "1wd",
        "photo",
        _listed(
            _words(
                "共享单车乱停放 机动车乱停放 占用盲道 非机动车道被占 公交站牌信息错误 道路坑洼 人行道砖破损 "
                "减速带损坏 交通标线模糊 信号灯配时不合理"
            ),
            _words(
                "僵尸车 道路施工未公示 路口拥堵 学校门口拥堵 公交线路调整需求 公交车辆服务投诉 出租车拒载 "
                "网约车违规揽客 停车场乱收费 违规设置地锁 占道洗车 占道施工 过街设施缺失 道路照明不足 桥梁隐患 "
                "涵洞积水 铁路道口隐患 长途客运站秩序 货车违规进城 电动车逆行多发"
            ),
        ),
    ),
    _Category(
        "房屋物业",
        30,
        12,
        "wy",
        "community",
        "3wd",
        "photo",
        routine_level="courtyard",
        items=_listed(
            _words(
                "小区垃圾清运不及时 小区绿化缺管 小区照明损坏 单元门损坏 楼道灯不亮 二次供水异常 化粪池满溢 "
                "下水道堵塞 屋面漏雨 外墙渗水 电梯广告违规 小区道路破损"
            ),
            _words(
                "违章搭建 私搭乱建 擅自改变房屋结构 破墙开店 屋顶违规加层 占用公共空间 物业弃管 物业费纠纷 "
                "业主大会筹备 老旧小区改造需求 房屋质量问题 交房延期 办证难 群租房 商住混用扰民 地下室改建 "
                "小区车位纠纷 开发商遗留问题"
            ),
        ),
    ),
    _Category(
        "公共卫生",
        30,
        4,
        "wj",
        "community",
        "1wd",
        "photo",
        _listed(
            _words("病媒生物孳生 鼠患 蟑螂蚊蝇滋生 公共厕所卫生差"),
            _words(
                "传染病疫情线索 食物中毒 职业病危害 非法行医 无证诊所 医疗美容违规 学校卫生问题 游泳场所水质 "
                "公共场所禁烟违规 饮用水卫生 突发公共卫生事件苗头 犬只狂犬病疫苗未接种 病死畜禽 集贸市场活禽交易 "
                "学校传染病聚集 养老机构卫生 托幼机构卫生 医疗垃圾 药店违规售药 卫生院服务投诉 急救响应投诉 "
                "心理健康危机 健康教育需求 计划免疫漏种 孕产妇健康管理 慢病随访缺失"
            ),
        ),
    ),
)


def rows() -> list[dict]:
    """The demo catalogue as CSV rows (``catalogue.CSV_COLUMNS``); exactly 504 matters, 145 automatic."""
    out = []
    for number, cat in enumerate(CATEGORIES, start=1):
        items = cat.items[: cat.quota]
        if len(items) < cat.quota or sum(r for _, r in cat.items) < cat.auto_quota:
            raise ValueError(f"category {cat.name}: fewer matters than its quota")  # a bug in the lists above
        for i, (name, routine) in enumerate(items, start=1):
            auto = (
                routine
                and sum(1 for row in out if row["category"] == cat.name and row["auto"] == "true") < cat.auto_quota
            )
            level = cat.routine_level if routine and cat.routine_level else cat.level
            row = dict.fromkeys(CSV_COLUMNS, "")
            row.update(
                code=f"{number:02d}{i:03d}",
                name=name,
                category=cat.name,
                auto="true" if auto else "false",
                level=level,
                deadline=cat.deadline if routine else _longer(cat.deadline),
                verify=cat.verify,
                duplicate_radius_m=cat.radius,
            )
            _handlers(row, cat.kind, level)
            out.append(row)
    if len(out) != TOTAL or sum(r["auto"] == "true" for r in out) != AUTO:
        raise ValueError("demo catalogue counts are off")  # a bug in the quotas above
    return out


def _longer(deadline: str) -> str:
    """Non-routine matters get twice the time (a 4h matter gets 1wd)."""
    if deadline == "4h":
        return "1wd"
    return str(int(deadline[: -len("wd")]) * 2) + "wd"


_LEVEL_OF_KIND = {
    "cg": ("community", "street", "district"),
    "ga": ("community", "street", "district"),
    "mz": ("community", "street", "district"),
    "sf": ("community", "street", "district"),
    "wj": ("community", "street", "district"),
    "wy": ("community", "street", "district"),
}


def _handlers(row: dict, kind: str, level: str) -> None:
    """The kind at every level from ``level`` up where it exists; the rest keep the catalogue default."""
    for lv in ("community", "street", "district"):
        if lv in _LEVEL_OF_KIND.get(kind, ("street", "district")) and lv in row:
            row[lv] = kind
    if level in ("micro", "courtyard"):
        row["micro"] = row["courtyard"] = "grid"
