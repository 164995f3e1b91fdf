"""``mocd import``: draft a milestone config from the text of a plan (issue 6).

Plans reach the admin as PDF, DOCX or OCR'd text, often with lost or wrong
diacritics. The importer reads the text (:mod:`.text_sources`), recognises the
document, its anniversaries, its campaign period, its dated milestones and its
units on a diacritic-folded copy of the text (:mod:`.folding`,
:mod:`.patterns`), and writes a draft YAML config in which every item quotes
the line it came from and every guess is a ``# TODO`` (:mod:`.draft`).

Everything between reading and writing is pure — text in,
:class:`~config.importer.model.Draft` out (:func:`.assemble.draft_plan`) — and
offline: the rules are code and the phrase lists ship as package data
(``data/phrases.txt``, ``data/id_abbreviations.txt``).
"""

from __future__ import annotations
