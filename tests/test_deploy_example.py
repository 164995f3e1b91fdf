"""deploy/mocd.toml.example documents the defaults: it must stay equal to them."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "mocd.toml.example"


def test_the_example_settings_file_spells_out_exactly_the_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()
