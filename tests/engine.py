"""Helpers for date-engine tests: YAML text in, occurrences out, no files needed."""

from __future__ import annotations

from datetime import date

from config.loader import MilestoneConfig, load_documents
from scheduler.expand import Window, expand
from scheduler.occurrences import Occurrence

WIDE = Window(date(1990, 1, 1), date(2040, 12, 31))

UNITS = """
units:
  - {id: ubnd-huyen, name: UBND huyện, email: vp@huyen.example.vn}
  - {id: phong-noi-vu, name: Phòng Nội vụ, email: noivu@huyen.example.vn,
     groups: [phong-chuyen-mon]}
  - {id: phong-dan-toc, name: Phòng Dân tộc, email: dantoc@huyen.example.vn,
     groups: [phong-chuyen-mon]}
  - {id: ubnd-xa-a, name: UBND xã A, email: xa-a@huyen.example.vn, groups: [ubnd-cac-xa]}
  - {id: ubnd-xa-b, name: UBND xã B, groups: [ubnd-cac-xa]}
groups:
  - {id: phong-chuyen-mon, name: Các phòng chuyên môn}
  - {id: ubnd-cac-xa, name: UBND các xã}
"""


def load(*texts: str) -> MilestoneConfig:
    return load_documents([(f"f{i}.yaml", t.encode()) for i, t in enumerate(texts)])


def occurrences(*texts: str, window: Window = WIDE) -> dict[str, Occurrence]:
    """Occurrences by UID (without the domain) for the given YAML documents."""
    return {o.uid.removesuffix("@mocd.local"): o for o in expand(load(*texts), window)}
