#!/usr/bin/env python3
"""Write a large, realistic mocd config directory (SPEC §4), deterministically.

    .venv/bin/python bench/gen_config.py --scenario issue --out bench/out/issue
    .venv/bin/python bench/gen_config.py --units 5000 --campaigns 10000 --milestones 10 \\
        --anniversaries 200 --out bench/out/national

The same arguments and ``--seed`` always give the same bytes. The config looks
like what offices write: Vietnamese unit, group, campaign and milestone names;
units with e-mail addresses (some without, some with two), grouped into
``--groups`` groups; the 2025 reform (district offices that ceased on 2025-06-30
with a successor, communes that exist ``since`` 2025-07-01); campaigns with a
document, an owner, a period and recipients (groups, ``all``, single units);
milestones that mix every date form of SPEC §4.1 — fixed days, months,
quarters, half years, timed events, ``{start, end}`` ranges, relative chains
counted in working days, references to the period, to other campaigns and to
anniversaries, and monthly, quarterly, yearly and lunar recurrences (which
multiply the occurrences); anniversaries with solar and lunar origins.

The YAML is written by hand (no YAML library): strings are double-quoted with
JSON escapes, which is valid YAML. Stand-alone only: no import of mocd.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import unicodedata
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from pathlib import Path

# -- scenarios -----------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    units: int = 5000
    groups: int = 50
    campaigns: int = 20
    milestones: int = 10  # per campaign
    anniversaries: int = 200
    standalone: int = 0  # stand-alone milestones (top-level `milestones:`)
    ceased: int = -1  # units with `until` + `successor`; -1: 2% of the units
    created: int = -1  # units with `since` (new communes of the reform); -1: 1% of the units
    audience: str = "wide"  # wide: groups and `all`; narrow: a few units or one group
    first_year: int = 2025  # campaign periods start in first_year-1 .. first_year+7
    seed: int = 2025
    campaigns_per_file: int = 1000


SCENARIOS: dict[str, Params] = {
    # The issue's numbers: few campaigns, addressed to groups and `all`, so every
    # occurrence has hundreds to thousands of recipients.
    "issue": Params(units=5000, campaigns=20, milestones=10, anniversaries=200, audience="wide"),
    # National scale: 100k milestones (~17 MB of YAML), each campaign local (a few
    # units or one group), a handful addressed to everyone.
    "national": Params(units=5000, campaigns=10000, milestones=10, anniversaries=200,
                       audience="narrow"),
    # Feeds (bench/feeds_render.py): the issue's 5,000 units with ~100 events each in the
    # feed window (fewer campaigns and anniversaries than `issue`, as wide).
    "feeds": Params(units=5000, campaigns=10, milestones=10, anniversaries=80,
                    audience="wide"),
    # Small, for --quick runs and tests of the benchmark itself.
    "quick": Params(units=500, groups=20, campaigns=200, milestones=10, anniversaries=40,
                    audience="narrow"),
}

# -- Vietnamese text -------------------------------------------------------------

PLACE_SYLLABLES = (
    "An", "Bình", "Hòa", "Phú", "Tân", "Thạnh", "Long", "Phước", "Đông", "Tây", "Nam", "Bắc",
    "Trung", "Mỹ", "Hưng", "Thành", "Lộc", "Thuận", "Đức", "Quang", "Hiệp", "Vĩnh", "Xuân",
    "Hải", "Sơn", "Lâm", "Cát", "Nghĩa", "Kim", "Ngọc", "Định", "Khánh", "Phong", "Yên",
    "Thịnh", "Lợi", "Điền", "Hà", "Quý", "Tiến", "Đạo", "Ba", "Tơ", "Vân", "Hồng", "Lạc",
)
PROVINCES = (
    "Quảng Ngãi", "Lạng Sơn", "Cao Bằng", "Tuyên Quang", "Lào Cai", "Thái Nguyên", "Phú Thọ",
    "Bắc Ninh", "Hưng Yên", "Ninh Bình", "Thanh Hóa", "Nghệ An", "Hà Tĩnh", "Quảng Trị",
    "Gia Lai", "Đắk Lắk", "Khánh Hòa", "Lâm Đồng", "Đồng Nai", "Tây Ninh", "Vĩnh Long",
    "Đồng Tháp", "An Giang", "Cà Mau", "Sơn La", "Lai Châu", "Điện Biên", "Quảng Ninh",
)
DEPARTMENTS = (
    "Nội vụ", "Tài chính", "Tư pháp", "Giáo dục và Đào tạo", "Y tế", "Xây dựng",
    "Nông nghiệp và Môi trường", "Văn hóa, Thể thao và Du lịch", "Khoa học và Công nghệ",
    "Công Thương", "Dân tộc và Tôn giáo", "Ngoại vụ",
)
DISTRICT_OFFICES = (
    "Phòng Nội vụ", "Phòng Tài chính - Kế hoạch", "Phòng Tư pháp", "Phòng Giáo dục và Đào tạo",
    "Phòng Văn hóa và Thông tin", "Phòng Dân tộc", "Phòng Y tế", "Văn phòng HĐND và UBND",
)
UNIT_KINDS = (
    # (share, name template); {p} a place, {v} a province, {d} a department
    (30, "UBND xã {p}"),
    (8, "UBND phường {p}"),
    (10, "Trường Tiểu học {p}"),
    (8, "Trường THCS {p}"),
    (4, "Trường THPT {p}"),
    (8, "Trạm Y tế xã {p}"),
    (6, "Công an xã {p}"),
    (6, "Hội Nông dân xã {p}"),
    (4, "Đoàn Thanh niên xã {p}"),
    (5, "Sở {d} tỉnh {v}"),
    (3, "Ban Quản lý dự án tỉnh {v}"),
    (2, "Ủy ban MTTQ Việt Nam xã {p}"),
)
GROUP_THEMES = (
    "Các sở, ban, ngành tỉnh", "UBND các xã, phường", "Các trường Tiểu học",
    "Các trường THCS", "Các trường THPT", "Các trạm y tế", "Công an các xã",
    "Các hội đoàn thể", "Các phòng chuyên môn cấp huyện (trước 01/7/2025)",
    "Các đơn vị sự nghiệp công lập", "Các xã vùng đồng bào dân tộc thiểu số",
    "Các xã biên giới", "Các đơn vị thuộc khối Văn hóa - Xã hội",
    "Các đơn vị thuộc khối Kinh tế", "Các đơn vị thuộc khối Nội chính",
)
CAMPAIGN_THEMES = (
    "chung tay xây dựng nông thôn mới",
    "chuyển đổi số và xây dựng chính quyền số",
    "cải cách hành chính, nâng cao chỉ số hài lòng của người dân",
    "chào mừng Đại hội đại biểu các dân tộc thiểu số lần thứ IV",
    "xóa nhà tạm, nhà dột nát",
    "bảo vệ an ninh Tổ quốc",
    "dạy tốt, học tốt",
    "cán bộ, công chức, viên chức thi đua thực hiện văn hóa công sở",
    "cả nước chung tay vì người nghèo - không để ai bị bỏ lại phía sau",
    "doanh nghiệp Việt Nam hội nhập và phát triển",
    "chào mừng kỷ niệm 80 năm Cách mạng Tháng Tám và Quốc khánh 2/9",
    "toàn dân đoàn kết xây dựng đời sống văn hóa",
    "phụ nữ tích cực học tập, lao động sáng tạo, xây dựng gia đình hạnh phúc",
    "thanh niên tình nguyện hè",
    "phòng, chống tác hại của thuốc lá",
    "bảo đảm trật tự an toàn giao thông",
)
CAMPAIGN_KINDS = (  # (title prefix, id prefix)
    ("Phong trào thi đua", "thi-dua"), ("Kế hoạch thực hiện phong trào thi đua", "kh-thi-dua"),
    ("Đợt thi đua cao điểm", "cao-diem"), ("Kế hoạch triển khai", "kh"),
)
PLACES_OF_MEETING = (
    "Hội trường UBND tỉnh", "Hội trường Trung tâm Chính trị", "Phòng họp trực tuyến",
    "Nhà văn hóa trung tâm", "Hội trường Tỉnh ủy", "Hội trường UBND xã",
)
ANNIVERSARY_TITLES = (
    "Ngày thành lập Đảng bộ {v}", "Ngày giải phóng {p}", "Ngày truyền thống ngành {d}",
    "Ngày thành lập Trường THPT {p}", "Ngày thành lập Sở {d} tỉnh {v}",
    "Chiến thắng {p}", "Ngày tái lập tỉnh {v}", "Ngày thành lập Công an xã {p}",
    "Ngày khởi nghĩa {p}", "Ngày thành lập Hội Nông dân {v}",
)
ANNIVERSARY_LUNAR_TITLES = (
    "Lễ hội đình làng {p}", "Giỗ Tổ nghề truyền thống làng {p}", "Lễ hội đền {p}",
    "Ngày giỗ anh hùng dân tộc tại {p}",
)


def slug(text: str) -> str:
    """``Phòng Nội vụ`` → ``phong-noi-vu`` (the ids of SPEC §4)."""
    plain = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


def q(text: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def iso(d: date) -> str:
    return d.isoformat()


# -- the generator --------------------------------------------------------------


@dataclass
class Unit:
    id: str
    name: str
    emails: tuple[str, ...]
    groups: tuple[str, ...]
    parent: str | None = None
    until: date | None = None
    successor: str | None = None
    since: date | None = None


@dataclass
class Stats:
    files: int = 0
    bytes: int = 0
    units: int = 0
    groups: int = 0
    campaigns: int = 0
    milestones: int = 0
    anniversaries: int = 0
    recurring_milestones: int = 0


class Generator:
    def __init__(self, params: Params) -> None:
        self.p = params
        self.rng = random.Random(params.seed)
        self.used_ids: set[str] = set()
        self.units: list[Unit] = []
        self.active: list[Unit] = []
        self.group_ids: list[str] = []
        self.group_names: list[str] = []
        self.anniversaries: list[tuple[str, int, bool]] = []  # (id, origin year, lunar)
        self.stats = Stats()

    # ids and names

    def unique(self, base: str) -> str:
        base = base[:60].strip("-") or "x"
        ident, n = base, 2
        while ident in self.used_ids:
            ident = f"{base}-{n}"
            n += 1
        self.used_ids.add(ident)
        return ident

    def place(self) -> str:
        a, b = self.rng.sample(PLACE_SYLLABLES, 2)
        return f"{a} {b}"

    def fill(self, template: str) -> str:
        return template.format(p=self.place(), v=self.rng.choice(PROVINCES),
                               d=self.rng.choice(DEPARTMENTS))

    # units and groups

    def make_groups(self) -> None:
        for i in range(self.p.groups):
            if i < len(GROUP_THEMES):
                name = GROUP_THEMES[i]
            else:
                name = f"Cụm thi đua số {i - len(GROUP_THEMES) + 1}"
            gid = self.unique(slug(name))
            self.group_ids.append(gid)
            self.group_names.append(name)
        # Zipf-like sizes: a few big groups, many small ones (weights for membership).
        self.group_weights = [1.0 / (1 + i % 17) for i in range(self.p.groups)]

    def make_units(self) -> None:
        kinds = [k for _, k in UNIT_KINDS]
        weights = [w for w, _ in UNIT_KINDS]
        ceased = self.p.ceased if self.p.ceased >= 0 else self.p.units // 50
        ceased = min(ceased, self.p.units // 2)
        created = self.p.created if self.p.created >= 0 else self.p.units // 100
        created = min(created, (self.p.units - ceased) // 2)
        n_active = self.p.units - ceased
        for i in range(n_active - created):
            name = self.fill(self.rng.choices(kinds, weights)[0])
            uid = self.unique(slug(name))
            self.units.append(Unit(uid, name, self.emails(uid, i), self.unit_groups()))
        # Communes created by the 2025 reform: they exist from 2025-07-01 on.
        new_communes = []
        for i in range(created):
            name = f"UBND {self.rng.choice(('xã', 'phường'))} {self.place()}"
            uid = self.unique(slug(name))
            unit = Unit(uid, name, self.emails(uid, i), self.unit_groups(),
                        since=date(2025, 7, 1))
            self.units.append(unit)
            new_communes.append(unit)
        self.active = list(self.units)
        # District offices abolished by the 2025 reform: their occurrences after
        # 2025-06-30 go to a successor, sometimes through another ceased office.
        for i in range(ceased):
            district = self.place()
            office = self.rng.choice(DISTRICT_OFFICES)
            name = f"{office} huyện {district}"
            uid = self.unique(slug(name))
            ceased_units = self.units[n_active:]
            r = self.rng.random()
            if ceased_units and r < 0.1:
                successor = self.rng.choice(ceased_units).id  # chained (earlier one)
            elif new_communes and r < 0.6:
                successor = self.rng.choice(new_communes).id
            else:
                successor = self.rng.choice(self.active).id
            self.units.append(Unit(uid, name, self.emails(uid, i), self.unit_groups(),
                                   until=date(2025, 6, 30), successor=successor))
        self.stats.units = len(self.units)

    def emails(self, uid: str, i: int) -> tuple[str, ...]:
        r = self.rng.random()
        if r < 0.05:
            return ()  # feed only
        domain = f"{slug(self.rng.choice(PROVINCES)).replace('-', '')}.gov.vn"
        first = f"vanthu.{uid}@{domain}"
        if r > 0.9:
            return (first, f"lanhdao{i}@{domain}")
        return (first,)

    def unit_groups(self) -> tuple[str, ...]:
        k = 1 if self.rng.random() < 0.5 else 2
        picked = self.rng.choices(self.group_ids, self.group_weights, k=k)
        return tuple(dict.fromkeys(picked))

    def units_yaml(self) -> str:
        out = ["units:"]
        for u in self.units:
            out.append(f"  - id: {u.id}")
            out.append(f"    name: {q(u.name)}")
            if len(u.emails) == 1:
                out.append(f"    email: {u.emails[0]}")
            elif u.emails:
                out.append(f"    email: [{', '.join(u.emails)}]")
            if u.groups:
                out.append(f"    groups: [{', '.join(u.groups)}]")
            if u.since is not None:
                out.append(f"    since: {iso(u.since)}")
            if u.until is not None:
                out.append(f"    until: {iso(u.until)}")
                out.append(f"    successor: {u.successor}")
        return "\n".join(out) + "\n"

    def groups_yaml(self) -> str:
        out = ["groups:"]
        for i, (gid, name) in enumerate(zip(self.group_ids, self.group_names, strict=True)):
            out.append(f"  - id: {gid}")
            out.append(f"    name: {q(name)}")
            if i % 10 == 3 and self.active:  # some groups also list members themselves
                members = {self.rng.choice(self.active).id for _ in range(5)}
                out.append(f"    members: [{', '.join(sorted(members))}]")
        return "\n".join(out) + "\n"

    def calendar_yaml(self) -> str:
        return (
            "calendar:\n"
            "  weekend: [sat, sun]\n"
            "  holidays: vn\n"
            "  extra_holidays: [2025-05-02, {from: 2026-02-16, to: 2026-02-20, "
            "name: \"Nghỉ Tết Bính Ngọ\"}]\n"
            "  working_days: [2025-04-26]\n"
        )

    # anniversaries

    def anniversaries_yaml(self) -> str:
        out = ["anniversaries:"]
        for i in range(self.p.anniversaries):
            lunar = self.rng.random() < 0.15
            year = self.rng.randint(1930, 2015)
            if lunar:
                title = self.fill(self.rng.choice(ANNIVERSARY_LUNAR_TITLES))
                origin = f"{{lunar: \"{year}-{self.rng.randint(1, 12):02d}-" \
                         f"{self.rng.randint(1, 29):02d}\"}}"
            else:
                title = self.fill(self.rng.choice(ANNIVERSARY_TITLES))
                origin = iso(date(year, 1, 1) + timedelta(days=self.rng.randint(0, 364)))
            aid = self.unique(slug(title))
            self.anniversaries.append((aid, year, lunar))
            r = self.rng.random()
            every = 1 if r < 0.1 else 10 if r < 0.35 else 5
            out.append(f"  - id: {aid}")
            out.append(f"    title: {q(title)}")
            out.append(f"    origin: {origin}")
            out.append(f"    every: {every}")
            out.append(f"    units: [{', '.join(self.audience(anniversary=True))}]")
            if "thành lập" in title and not lunar:
                out.append("    founding: true")
            if i % 4 == 0:
                out.append("    reminders: [180d, 30d, 7d]")
        self.stats.anniversaries = self.p.anniversaries
        return "\n".join(out) + "\n"

    # recipients

    def audience(self, *, anniversary: bool = False) -> list[str]:
        r = self.rng.random()
        if self.p.audience == "wide":
            if r < 0.25:
                return ["all"]
            if r < 0.75:
                return self.rng.sample(self.group_ids, self.rng.randint(1, 3))
            groups = self.rng.sample(self.group_ids, self.rng.randint(1, 2))
            return [*groups, *(u.id for u in self.rng.sample(self.active, 3))]
        # narrow: national-scale configs are mostly local campaigns
        if r < (0.0005 if not anniversary else 0.05):
            return ["all"]
        if r < 0.05:
            return [self.rng.choice(self.group_ids)]
        return [u.id for u in self.rng.sample(self.active, self.rng.randint(1, 4))]

    # campaigns

    def campaign(self, earlier: list[tuple[str, str]]) -> list[str]:
        rng = self.rng
        theme = rng.choice(CAMPAIGN_THEMES)
        start = date(self.p.first_year - 1, 1, 1) + timedelta(days=rng.randint(0, 8 * 365))
        years = rng.randint(1, 5)
        end = date(start.year + years, 12, 31) - timedelta(days=rng.randint(0, 200))
        kind, prefix = rng.choice(CAMPAIGN_KINDS)
        title = f"{kind} {theme} giai đoạn {start.year}-{end.year}"
        words = slug(theme).split("-")[:5]
        cid = self.unique(f"{prefix}-{'-'.join(words)}-{start.year}")
        owner = rng.choice(self.active)
        units = self.audience()
        doc_day = start - timedelta(days=rng.randint(5, 40))
        document = (f"Kế hoạch số {rng.randint(1, 400)}/KH-UBND ngày "
                    f"{doc_day.day}/{doc_day.month}/{doc_day.year} của {owner.name}")
        out = [
            f"  - id: {cid}",
            f"    title: {q(title)}",
            f"    document: {q(document)}",
            f"    owner: {owner.id}",
            f"    units: [{', '.join(units)}]",
        ]
        if self.anniversaries and rng.random() < 0.1:
            out.append(f"    celebrates: {rng.choice(self.anniversaries)[0]}")
        milestones, launch, closing = self.milestones(start, end, owner, earlier)
        if closing is not None and rng.random() < 0.3:
            out.append(f"    period: {{start: {iso(start)}, end: {{after: {closing}, days: 0}}}}")
        else:
            out.append(f"    period: {{start: {iso(start)}, end: {iso(end)}}}")
        out.append("    milestones:")
        out.extend(milestones)
        if launch is not None:  # later campaigns may count from this one's launch
            earlier.append((cid, launch))
            del earlier[:-200]
        self.stats.campaigns += 1
        return out

    def milestones(self, start: date, end: date, owner: Unit, earlier: list[tuple[str, str]]
                   ) -> tuple[list[str], str | None, str | None]:
        """The campaign's milestones, and the ids of its launch and closing events.

        Ten slots, cycled when ``--milestones`` is more than 10; each slot draws one
        of a few forms. Optional keys appear on a share of milestones only, so that
        100k milestones come to ~17 MB, as national configs do.
        """
        rng = self.rng
        out: list[str] = []
        ids: list[str] = []
        closing: str | None = None
        launch: str | None = None
        span_days = (end - start).days

        def add(mid: str, title: str, when: str, *extra: str | None) -> None:
            if mid in ids:
                mid = f"{mid}-{len(ids) + 1}"
            ids.append(mid)
            out.append(f"      - id: {mid}")
            out.append(f"        title: {q(title)}")
            out.extend(f"        {line}" for line in extra if line)
            out.append(f"        when: {when}")
            self.stats.milestones += 1

        def maybe(share: float, line: str) -> str | None:
            return line if rng.random() < share else None

        def day_in(lo: float, hi: float) -> date:
            return start + timedelta(days=int(span_days * rng.uniform(lo, hi)))

        def recurring() -> None:
            self.stats.recurring_milestones += 1

        for k in range(self.p.milestones):
            slot = k % 10
            if slot == 0:  # a timed event
                d = start + timedelta(days=rng.randint(5, 30))
                add("phat-dong", "Hội nghị phát động phong trào thi đua",
                    f"{iso(d)} {rng.choice(('08:00', '08:30', '14:00'))}",
                    "kind: event", "duration: 3h",
                    maybe(0.3, f"location: {q(rng.choice(PLACES_OF_MEETING))}"),
                    maybe(0.2, "reminders: [7d, 2h]"))
                launch = ids[-1]
            elif slot == 1:  # counted in working days from the launch
                add("dang-ky", "Đăng ký giao ước thi đua",
                    f"{{after: {launch or 'period.start'}, days: 10, working_days: true}}",
                    maybe(0.3, f"submit_to: {owner.id}"))
            elif slot == 2:  # monthly reports (the big multiplier) or a half year
                if rng.random() < 0.35:
                    recurring()
                    add("bc-thang", "Báo cáo tiến độ hằng tháng",
                        f"{{monthly: {rng.choice((20, 25, 31))}, from: {start:%Y-%m}, "
                        f"until: {end:%Y-%m}}}", maybe(0.2, "reminders: [3d, 0d]"))
                else:
                    add("so-ket", "Báo cáo sơ kết 6 tháng", f"{day_in(0.1, 0.6).year}-H1")
            elif slot == 3:  # quarterly reports or one quarter
                if rng.random() < 0.5:
                    recurring()
                    add("bc-quy", "Báo cáo kết quả hằng quý",
                        f"{{quarterly: end, from: {start.year}-Q{(start.month - 1) // 3 + 1}, "
                        f"until: {end.year}-Q{(end.month - 1) // 3 + 1}}}")
                else:
                    d = day_in(0.2, 0.8)
                    quarter = (d.month - 1) // 3
                    add("bc-quy", f"Báo cáo quý {('I', 'II', 'III', 'IV')[quarter]}/{d.year}",
                        f"{d.year}-Q{quarter + 1}")
            elif slot == 4:  # yearly report or a fixed day
                if rng.random() < 0.5:
                    recurring()
                    add("tong-ket-nam", "Báo cáo tổng kết năm",
                        f"{{yearly: \"11-{rng.choice((15, 20, 30))}\", from: {start.year}, "
                        f"until: {end.year}}}")
                else:
                    add("tong-ket-nam", "Báo cáo tổng kết năm", iso(day_in(0.3, 0.9)))
            elif slot == 5:  # the closing event (the period may end on it)
                d = end - timedelta(days=rng.randint(10, 40))
                add("tong-ket", "Hội nghị tổng kết phong trào",
                    f"{iso(d)} {rng.choice(('08:00', '14:00'))}", "kind: event", "duration: 4h",
                    maybe(0.3, f"location: {q(rng.choice(PLACES_OF_MEETING))}"))
                closing = ids[-1]
            elif slot == 6:  # working days before the closing event, to other units
                units = (", ".join(rng.sample(self.group_ids, 2)) if self.p.audience == "wide"
                         else rng.choice(self.active).id)
                add("ho-so-kt", "Gửi hồ sơ đề nghị khen thưởng",
                    f"{{before: {closing or 'period.end'}, days: {rng.choice((10, 15, 20))}, "
                    "working_days: true}", f"units: [{units}]", f"lead: {owner.id}",
                    maybe(0.3, f"submit_to: {owner.id}"), maybe(0.2, "reminders: [7d, 2d, 0d]"))
            elif slot == 7:  # a chain: after the previous milestone
                add("tham-dinh", "Thẩm định hồ sơ khen thưởng",
                    f"{{after: {ids[-1]}, days: 5, working_days: true}}", f"lead: {owner.id}",
                    maybe(0.3, "on_non_working_day: previous"))
            elif slot == 8:  # another campaign, an anniversary, or the period start
                r = rng.random()
                if r < 0.3 and earlier:
                    other_c, other_m = rng.choice(earlier)
                    add("phoi-hop", "Báo cáo phối hợp liên ngành",
                        f"{{after: \"{other_c}/{other_m}\", days: 30}}")
                elif r < 0.45 and self.anniversaries:
                    aid, year, _lunar = rng.choice(self.anniversaries)
                    n = max(1, start.year + rng.randint(0, 3) - year)
                    add("cong-trinh", "Đăng ký công trình chào mừng",
                        f"{{before: \"anniversary:{aid}:{n}\", months: 2}}")
                else:
                    add("giua-ky", "Đánh giá giữa kỳ",
                        f"{{after: period.start, months: {rng.choice((6, 12, 18))}}}",
                        maybe(0.3, f"cc: [{rng.choice(self.group_ids)}]"))
            else:  # slot 9: lunar yearly, a {start, end} period, or a month
                r = rng.random()
                if r < 0.2:
                    recurring()
                    add("dau-xuan", "Gặp mặt đầu xuân",
                        f"{{lunar: \"01-{rng.choice((6, 8, 10))}\", from: {start.year + 1}, "
                        f"until: {end.year}}}", "kind: event")
                elif r < 0.6:
                    a = day_in(0.4, 0.6)
                    add("cao-diem", "Đợt thi đua cao điểm",
                        f"{{start: {iso(a)}, end: {iso(a + timedelta(days=rng.randint(20, 90)))}}}",
                        "kind: period")
                else:
                    add("chuyen-de", "Báo cáo chuyên đề", f"{day_in(0.3, 0.7):%Y-%m}",
                        maybe(0.1, f"description: {q('Gửi qua Hệ thống quản lý văn bản')}"))
        return out, launch, closing

    def standalone_yaml(self) -> str:
        out = ["milestones:"]
        previous: str | None = None
        for i in range(self.p.standalone):
            mid = f"nhiem-vu-{i + 1}"
            unit = self.rng.choice(self.active)
            out.append(f"  - id: {mid}")
            title = f"Nhiệm vụ giao tại Thông báo kết luận số {i + 1}/TB-UBND"
            out.append(f"    title: {q(title)}")
            if previous is not None and i % 3:
                out.append(f"    when: {{after: {previous}, days: 20, working_days: true}}")
            else:
                day = date(self.p.first_year, 1, 15) + timedelta(days=i % 3000)
                out.append(f"    when: {iso(day)}")
            out.append(f"    lead: {unit.id}")
            out.append(f"    units: [{self.rng.choice(self.group_ids)}]")
            previous = mid
        self.stats.milestones += self.p.standalone
        return "\n".join(out) + "\n"

    # files

    def files(self) -> dict[str, str]:
        self.make_groups()
        self.make_units()
        files = {
            "00-calendar.yaml": self.calendar_yaml(),
            "01-groups.yaml": self.groups_yaml(),
            "02-units.yaml": self.units_yaml(),
        }
        if self.p.anniversaries:  # an empty list would be `anniversaries:` (null): an error
            files["03-anniversaries.yaml"] = self.anniversaries_yaml()
        self.stats.groups = self.p.groups
        if self.p.standalone:
            files["04-standalone.yaml"] = self.standalone_yaml()
        earlier: list[tuple[str, str]] = []
        chunk: list[str] = []
        index = 0
        per_file = max(1, self.p.campaigns_per_file)
        for c in range(self.p.campaigns):
            chunk.extend(self.campaign(earlier))
            if len(chunk) and ((c + 1) % per_file == 0 or c + 1 == self.p.campaigns):
                files[f"10-campaigns-{index:03d}.yaml"] = "campaigns:\n" + "\n".join(chunk) + "\n"
                chunk = []
                index += 1
        return files


def generate(params: Params, out: Path) -> Stats:
    """Write the config directory ``out`` (its old ``*.yaml`` files are removed)."""
    if params.units < 10 or params.groups < 1 or min(params.campaigns, params.milestones,
                                                      params.anniversaries, params.standalone) < 0:
        raise ValueError("need at least 10 units and 1 group, and no negative counts")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.y*ml"):
        old.unlink()
    gen = Generator(params)
    files = gen.files()
    for name, text in files.items():
        data = text.encode("utf-8")
        (out / name).write_bytes(data)
        gen.stats.bytes += len(data)
    gen.stats.files = len(files)
    return gen.stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default=None,
                        help="preset sizes (explicit options override them)")
    parser.add_argument("--units", type=int)
    parser.add_argument("--groups", type=int)
    parser.add_argument("--campaigns", type=int)
    parser.add_argument("--milestones", type=int, help="per campaign")
    parser.add_argument("--anniversaries", type=int)
    parser.add_argument("--standalone", type=int, help="stand-alone milestones")
    parser.add_argument("--ceased", type=int, help="units that ceased 2025-06-30 (-1: 2%%)")
    parser.add_argument("--created", type=int, help="units created 2025-07-01 (-1: 1%%)")
    parser.add_argument("--audience", choices=("wide", "narrow"))
    parser.add_argument("--campaigns-per-file", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    args = parser.parse_args(argv)
    params = SCENARIOS[args.scenario] if args.scenario else Params()
    overrides = {k: v for k, v in vars(args).items()
                 if k in Params.__dataclass_fields__ and v is not None}
    params = replace(params, **overrides)
    stats = generate(params, args.out)
    print(json.dumps({"out": str(args.out), **asdict(stats)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
