"""Writing a :class:`~config.importer.model.Draft` as commented YAML.

The YAML is written by hand rather than dumped: every item must carry a
comment quoting its source line (``# dòng 57: "Quý III năm 2022"``) and every
uncertain value a ``# TODO:`` saying why, and the layout should look like the
hand-written ``examples/``. Scalars are quoted only when YAML would otherwise
misread them; the result is checked by loading it with :mod:`config.loader`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from config.importer.model import (
    Draft,
    DraftAnniversary,
    DraftCampaign,
    DraftMilestone,
    DraftUnit,
    Value,
)
from config.importer.source import Quote

_PLAIN = re.compile(r"[^\s\-?:,\[\]{}#&*!|>'\"%@`][^#]*")
_NEEDS_QUOTES = re.compile(r":\s|\s#|:$|^\s|\s$|^(?:true|false|yes|no|null|~|on|off)$",
                           re.IGNORECASE)


def scalar(text: str) -> str:
    """``text`` as a YAML scalar: plain when safe, else double-quoted."""
    if text and _PLAIN.fullmatch(text) and not _NEEDS_QUOTES.search(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def id_list(key: str, items: Iterable[str], indent: str) -> list[str]:
    """``units: [a, b]``, or one id a line when that would be long."""
    items = list(items)
    flow = f"{indent}{key}: [{', '.join(items)}]"
    if len(flow) <= 100:
        return [flow]
    return [f"{indent}{key}:", *(f"{indent}  - {item}" for item in items)]


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" if line else f"{indent}#" for line in text.split("\n")]


def _quotes(quotes: Iterable[Quote], indent: str, limit: int = 3) -> list[str]:
    quotes = list(quotes)
    out = [f"{indent}# {q.render()}" for q in quotes[:limit]]
    if len(quotes) > limit:
        more = ", ".join(str(q.first_line) for q in quotes[limit:])
        out.append(f"{indent}# (cũng ở dòng {more})")
    return out


def _value(key: str, value: Value, indent: str) -> list[str]:
    """``key: value`` with the value's TODO (inline when it holds a placeholder) and note."""
    line = f"{indent}{key}: {value.yaml}"
    out: list[str] = []
    if value.note:
        out += _comment(value.note, indent)
    if value.todo:
        if value.unknown:
            line += f"  # TODO: {value.todo}"
        else:
            out += _comment(f"TODO: {value.todo}", indent)
    return [*out, line]


HEADER = """\
# Bản nháp do `mocd import` tạo từ {source}.
# Draft written by `mocd import` from {source}: review every item against the plan.
#
# - Mỗi mục có chú thích trích dòng văn bản gốc ("dòng N: …").
#   Every item quotes the lines it was read from.
# - "# TODO:" đánh dấu điều chưa chắc chắn; giá trị ghi `TODO` là ngày văn bản
#   không nêu: phải điền trước khi chạy `mocd check` ({count} giá trị).
#   A value written `TODO` is a date the plan does not give: replace each one
#   ({count} here), then run `mocd check`.
# - Đơn vị chưa có email (không nhận email nhắc việc): thêm `email:` cho từng đơn vị.
#   Units have no email yet: add `email:` to those that should be reminded.
"""


def render(draft: Draft) -> str:
    """The draft as YAML text, comments included, ending with a newline."""
    out = HEADER.format(source=draft.source_name, count=draft.todo_values).splitlines()
    if draft.campaign is not None:
        out += ["", "campaigns:", *_campaign(draft.campaign)]
    if draft.anniversaries:
        out += ["", "anniversaries:"]
        for a in draft.anniversaries:
            out += _anniversary(a)
    if draft.units:
        out += ["", "# Đơn vị nêu trong văn bản. Nếu cấu hình đã có các đơn vị này (units.yaml),",
                "# xóa phần này và đổi mã cho khớp. If your config already defines them,",
                "# delete this section and use their ids.", "units:"]
        for u in draft.units:
            out += _unit(u)
    if draft.groups:
        out += ["", "# Nhóm: thêm đơn vị bằng `members: [...]` hoặc `groups: [...]` ở đơn vị.",
                "groups:"]
        for g in draft.groups:
            out += _unit(g)
    if draft.unused_dates:
        out += ["", "# Các thời điểm khác trong văn bản, chưa lập mốc (thường là tiêu chí, "
                "không phải hạn):", "# Other dates in the plan, not drafted:"]
        out += [f"#   {q.render()}" for q in draft.unused_dates]
    return "\n".join(out) + "\n"


def _campaign(c: DraftCampaign) -> list[str]:
    i1, i2 = "  ", "    "
    out = [*_quotes(c.quotes, i1), f"{i1}- id: {c.id}", f"{i2}title: {scalar(c.title)}"]
    doc = Value(scalar(c.document.yaml), todo=c.document.todo)
    out += _value("document", doc, i2)
    for note in c.notes:
        out += _comment(note, i2)
    if c.owner:
        if c.owner_quote:
            out += _quotes([c.owner_quote], i2)
        out.append(f"{i2}owner: {c.owner}")
    out += id_list("units", c.units, i2)
    if c.period is not None:
        out += _quotes(c.period.quotes, i2)
        out.append(f"{i2}period:")
        out += _value("start", c.period.start, i2 + "  ")
        out += _value("end", c.period.end, i2 + "  ")
    if c.celebrates:
        if c.celebrates_note:
            out += _comment(c.celebrates_note, i2)
        out.append(f"{i2}celebrates: {c.celebrates}")
    if c.milestones:
        out += ["", f"{i2}milestones:"]
        for k, m in enumerate(c.milestones):
            out += ([""] if k else []) + _milestone(m, i2 + "  ")
    return out


def _milestone(m: DraftMilestone, indent: str) -> list[str]:
    inner = indent + "  "
    out = [*_quotes(m.quotes, indent), f"{indent}- id: {m.id}", f"{inner}title: {scalar(m.title)}"]
    if m.kind != "deadline":
        out.append(f"{inner}kind: {m.kind}")
    for note in m.notes:
        out += _comment(note, inner)
    when = m.when
    if when.unknown and not when.todo:
        when = Value(when.yaml, todo="ngày (YYYY-MM-DD): văn bản không ghi")
    out += _value("when", when, inner)
    if m.units:
        out += id_list("units", m.units, inner)
    if m.lead:
        out.append(f"{inner}lead: {m.lead}")
    if m.submit_to:
        out.append(f"{inner}submit_to: {m.submit_to}")
    if m.on_non_working_day is not None:
        out.append(f"{inner}on_non_working_day: {m.on_non_working_day.yaml}")
    return out


def _anniversary(a: DraftAnniversary) -> list[str]:
    i1, i2 = "  ", "    "
    out = [*_quotes(a.quotes, i1), f"{i1}- id: {a.id}", f"{i2}title: {scalar(a.title)}"]
    for note in a.notes:
        out += _comment(note, i2)
    out += _value("origin", a.origin, i2)
    out += _value("every", a.every, i2)
    if a.founding:
        out += _comment("ngày thành lập / truyền thống: Nghị định 111/2018/NĐ-CP chỉ cho tổ "
                        "chức lễ vào năm tròn (TODO: kiểm tra)", i2)
        out.append(f"{i2}founding: true")
    out += id_list("units", a.units, i2)
    return out


def _unit(u: DraftUnit) -> list[str]:
    out = [f"  # {u.quote.render()}"] if u.quote else []
    if u.note:
        out.append(f"  # {u.note}")
    return [*out, f"  - id: {u.id}", f"    name: {scalar(u.name)}"]

