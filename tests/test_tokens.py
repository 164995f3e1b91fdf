"""Feed tokens (issue 4): the secret, derived keys, tokens, generations, rotation, the CLI."""

from __future__ import annotations

import base64
import hmac
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import calendars.tokens as tokens_module
from calendars.tokens import (
    FEED_PURPOSE,
    TOKEN_LENGTH,
    FeedTokens,
    derive_key,
    derive_token,
    ensure_generations,
    feed_path,
    feed_subjects,
    feed_url,
    generations_version,
    load_generations,
    load_secret,
    rotate,
    webcal_url,
)
from config.errors import RuntimeFailure, UserError
from config.settings import Settings, load_settings
from scheduler.models import FeedToken
from tests.conftest import NOW, RunCli, WriteConfig

KEY = derive_key(b"s" * 32, FEED_PURPOSE)

CONFIG = {
    "units.yaml": """
        units:
          - {id: phong-noi-vu, name: Phòng Nội vụ, email: noivu@huyen.example.vn}
          - {id: phong-dan-toc, name: Phòng Dân tộc}
        campaigns:
          - id: thi-dua-2024
            title: Phong trào thi đua năm 2024
            owner: phong-noi-vu
            units: [all]
            milestones:
              - {id: bao-cao, title: Báo cáo, when: 2024-11-30}
        """,
}


# -- the secret -------------------------------------------------------------------------


def test_the_secret_file_is_made_once_with_32_random_bytes_and_mode_0600(tmp_path: Path,
                                                                          mocd_env: Path) -> None:
    settings = Settings(state_dir=tmp_path / "var")
    first = load_secret(settings)
    path = tmp_path / "var" / "secret.key"
    assert len(first) == 32
    assert path.read_bytes() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(settings) == first  # read back, not made again
    assert os.listdir(tmp_path / "var") == ["secret.key"]  # no temporary file left


def test_processes_racing_to_make_the_secret_all_get_the_same_one(tmp_path: Path,
                                                                  mocd_env: Path) -> None:
    settings = Settings(state_dir=tmp_path / "var")
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        results.append(load_secret(settings))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1


def test_a_truncated_secret_file_is_a_runtime_failure_not_a_new_secret(tmp_path: Path,
                                                                       mocd_env: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret.key").write_bytes(b"short")
    with pytest.raises(RuntimeFailure, match="fewer than 32"):
        load_secret(Settings(state_dir=tmp_path / "var"))


def test_the_secret_key_setting_wins_and_no_file_is_made(tmp_path: Path, mocd_env: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCD_SECRET_KEY", "x" * 64)
    monkeypatch.setenv("MOCD_STATE_DIR", str(tmp_path / "var"))
    settings = load_settings()
    assert load_secret(settings) == b"x" * 64
    assert not (tmp_path / "var").exists()
    assert "x" * 64 not in repr(settings)  # a SecretStr: never printed


def test_a_short_secret_key_setting_is_rejected(mocd_env: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCD_SECRET_KEY", "too-short")
    with pytest.raises(UserError, match="secret_key: too short"):
        load_settings()


def test_keys_per_purpose_are_independent_and_stable() -> None:
    secret = b"s" * 32
    assert derive_key(secret, "feed-token") == derive_key(secret, "feed-token")
    assert derive_key(secret, "feed-token") != derive_key(secret, "confirm-link")
    assert derive_key(secret, "feed-token") != derive_key(b"t" * 32, "feed-token")
    assert len(derive_key(secret, "confirm-link")) == 32
    with pytest.raises(ValueError, match="purpose"):
        derive_key(secret, "")


# -- tokens ---------------------------------------------------------------------------------


def test_tokens_are_url_safe_at_least_128_bits_and_differ_by_scope_subject_generation() -> None:
    token = derive_token(KEY, "unit", "phong-noi-vu", 1)
    assert len(token) == TOKEN_LENGTH
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(base64.urlsafe_b64decode(token)) * 8 >= 128
    assert token == derive_token(KEY, "unit", "phong-noi-vu", 1)
    others = {derive_token(KEY, "unit", "phong-noi-vu", 2),
              derive_token(KEY, "campaign", "phong-noi-vu", 1),
              derive_token(KEY, "unit", "phong-dan-toc", 1),
              derive_token(derive_key(b"s" * 32, "confirm-link"), "unit", "phong-noi-vu", 1)}
    assert token not in others
    assert len(others) == 4


def test_verify_accepts_the_current_token_only() -> None:
    registry = FeedTokens(KEY, {("unit", "phong-noi-vu"): 3})
    current = registry.token("unit", "phong-noi-vu")
    assert current == derive_token(KEY, "unit", "phong-noi-vu", 3)
    assert registry.verify("unit", "phong-noi-vu", current)
    assert not registry.verify("unit", "phong-noi-vu", derive_token(KEY, "unit",
                                                                    "phong-noi-vu", 2))
    assert not registry.verify("campaign", "phong-noi-vu", current)
    assert not registry.verify("unit", "phong-noi-vu", current[:-1])
    assert not registry.verify("unit", "phong-noi-vu", "ký-tự-lạ")  # not ASCII: no exception
    assert registry.token("unit", "never-applied") == derive_token(KEY, "unit",
                                                                   "never-applied", 1)


def test_verify_does_the_same_work_for_unknown_subjects(monkeypatch: pytest.MonkeyPatch) -> None:
    """No timing oracle: a token is derived and compared in constant time either way."""
    registry = FeedTokens(KEY, {("unit", "phong-noi-vu"): 1})
    derived: list[tuple[str, str, int]] = []
    compared: list[tuple[bytes, bytes]] = []
    real_derive, real_compare = tokens_module.derive_token, hmac.compare_digest

    def derive(key: bytes, scope: str, subject: str, generation: int) -> str:
        derived.append((scope, subject, generation))
        return real_derive(key, scope, subject, generation)

    def compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return bool(real_compare(a, b))

    monkeypatch.setattr(tokens_module, "derive_token", derive)
    monkeypatch.setattr(hmac, "compare_digest", compare)  # tokens calls hmac.compare_digest
    wrong = "A" * TOKEN_LENGTH
    assert not registry.verify("unit", "phong-noi-vu", wrong)
    assert not registry.verify("unit", "khong-co-don-vi", wrong)
    assert derived == [("unit", "phong-noi-vu", 1), ("unit", "khong-co-don-vi", 1)]
    assert [len(a) for a, _ in compared] == [TOKEN_LENGTH, TOKEN_LENGTH]


def test_feed_paths_and_urls() -> None:
    assert feed_path("unit", "phong-noi-vu", "T") == "/feeds/phong-noi-vu/T.ics"
    assert feed_path("campaign", "thi-dua", "T") == "/feeds/campaign/thi-dua/T.ics"
    assert feed_path("admin", "all", "T") == "/feeds/all/T.ics"
    assert feed_path("unit", "phong-noi-vu", None) == "/feeds/phong-noi-vu.ics"
    assert feed_path("admin", "all", None) == "/feeds/all.ics"
    assert feed_url("https://lich.example.vn/", "unit", "a", "T") == \
        "https://lich.example.vn/feeds/a/T.ics"
    assert webcal_url("https://lich.example.vn/feeds/a/T.ics") == \
        "webcal://lich.example.vn/feeds/a/T.ics"
    assert webcal_url("http://127.0.0.1:8470/x.ics") == "webcal://127.0.0.1:8470/x.ics"


# -- generations in the database ------------------------------------------------------------


def test_generations_are_created_once_and_survive_later_applies(
        factory: sessionmaker[Session]) -> None:
    subjects = feed_subjects(["phong-noi-vu", "phong-dan-toc"], ["thi-dua-2024"])
    assert ensure_generations(factory, subjects, NOW) == 4
    assert load_generations(factory) == {
        ("unit", "phong-noi-vu"): 1, ("unit", "phong-dan-toc"): 1,
        ("campaign", "thi-dua-2024"): 1, ("admin", "all"): 1}
    assert rotate(factory, "unit", "phong-noi-vu", NOW) == 2
    before = generations_version(factory)
    assert ensure_generations(factory, [*subjects, ("unit", "ubnd-xa-moi")], NOW) == 1
    generations = load_generations(factory)
    assert generations[("unit", "phong-noi-vu")] == 2  # a later apply keeps the rotation
    assert generations[("unit", "ubnd-xa-moi")] == 1
    assert generations_version(factory) != before


def test_rotation_invalidates_the_old_token(factory: sessionmaker[Session]) -> None:
    ensure_generations(factory, feed_subjects(["phong-noi-vu"], []), NOW)
    registry = FeedTokens(KEY, load_generations(factory))
    old = registry.token("unit", "phong-noi-vu")
    assert rotate(factory, "unit", "phong-noi-vu", NOW) == 2
    assert rotate(factory, "unit", "phong-noi-vu", NOW) == 3
    registry.update(load_generations(factory))
    assert not registry.verify("unit", "phong-noi-vu", old)
    assert registry.verify("unit", "phong-noi-vu", registry.token("unit", "phong-noi-vu"))
    with factory() as session:
        row = session.scalars(select(FeedToken).where(FeedToken.subject == "phong-noi-vu")).one()
        assert (row.generation, row.rotated_at) == (3, NOW)


def test_rotating_a_subject_that_was_never_applied_moves_it_past_1(
        factory: sessionmaker[Session]) -> None:
    assert rotate(factory, "admin", "all", NOW) == 2
    assert load_generations(factory) == {("admin", "all"): 2}


def test_the_daemon_creates_generations_on_apply(tmp_path: Path, mocd_env: Path,
                                                 write_config: WriteConfig) -> None:
    from scheduler.clock import FixedClock
    from scheduler.daemon import Daemon

    settings = Settings(state_dir=tmp_path / "var")
    daemon = Daemon(settings, write_config(tmp_path, CONFIG), FixedClock(NOW))
    factory = daemon.open_store()
    daemon.feeds = daemon.feed_service(factory)
    try:
        assert daemon.apply_config()
        assert load_generations(factory) == {
            ("unit", "phong-noi-vu"): 1, ("unit", "phong-dan-toc"): 1,
            ("campaign", "thi-dua-2024"): 1, ("admin", "all"): 1}
        assert daemon.feeds.tokens is not None  # loaded for the server
        assert daemon.feeds.tokens.generation("unit", "phong-noi-vu") == 1
    finally:
        assert daemon.engine is not None
        daemon.engine.dispose()


# -- the CLI --------------------------------------------------------------------------------


def test_tokens_list_json_is_unit_and_full_url(run_cli: RunCli, write_config: WriteConfig,
                                               tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    code, out, err = run_cli(["tokens", "list", "--config", "cfg", "--format", "json"])
    assert (code, err) == (0, "")
    records = json.loads(out)
    assert [r["unit"] for r in records] == ["phong-dan-toc", "phong-noi-vu"]
    assert all(set(r) == {"unit", "url"} for r in records)
    registry = FeedTokens.from_settings(Settings(state_dir=Path("var")))
    assert records[1]["url"] == ("http://127.0.0.1:8470/feeds/phong-noi-vu/"
                                 f"{registry.token('unit', 'phong-noi-vu')}.ics")
    assert not (tmp_path / "var" / "mocd.sqlite3").exists()  # listing made no database


def test_tokens_list_text_has_webcal_campaign_and_admin_urls(
        run_cli: RunCli, write_config: WriteConfig, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, CONFIG)
    monkeypatch.setenv("MOCD_PUBLIC_URL", "https://lich.example.vn")
    code, out, err = run_cli(["tokens", "list", "--config", "cfg"])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Units (2):"
    assert "  phong-noi-vu — Phòng Nội vụ" in lines
    for scheme in ("https", "webcal"):
        prefix = f"    {scheme}://lich.example.vn/feeds/phong-noi-vu/"
        assert any(line.startswith(prefix) for line in lines)
    assert "Campaigns (1):" in lines
    assert any(line.startswith("    webcal://lich.example.vn/feeds/campaign/thi-dua-2024/")
               for line in lines)
    assert "Everything (admin):" in lines
    assert any(line.startswith("    https://lich.example.vn/feeds/all/") for line in lines)


def test_tokens_rotate_changes_the_listed_url(run_cli: RunCli, write_config: WriteConfig,
                                              tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    _, before, _ = run_cli(["tokens", "list", "--config", "cfg", "--format", "json"])
    code, out, err = run_cli(["tokens", "rotate", "phong-noi-vu", "--config", "cfg"])
    assert (code, err) == (0, "")
    _, after, _ = run_cli(["tokens", "list", "--config", "cfg", "--format", "json"])
    old, new = json.loads(before), json.loads(after)
    assert old[0] == new[0]  # phong-dan-toc untouched
    assert old[1]["url"] != new[1]["url"]
    assert new[1]["url"] in out
    assert webcal_url(new[1]["url"]) in out
    code, _, err = run_cli(["tokens", "rotate", "--all", "--config", "cfg"])
    assert (code, err) == (0, "")
    code, _, err = run_cli(["tokens", "rotate", "--campaign", "thi-dua-2024", "--config", "cfg"])
    assert (code, err) == (0, "")


def test_tokens_rotate_unknown_unit_suggests_one(run_cli: RunCli, write_config: WriteConfig,
                                                 tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    code, out, err = run_cli(["tokens", "rotate", "phong-noi-vuu", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err == "mocd: unknown unit 'phong-noi-vuu' (did you mean 'phong-noi-vu'?)\n"
    code, _, err = run_cli(["tokens", "rotate", "--campaign", "thi-dua", "--config", "cfg"])
    assert code == 1
    assert "did you mean 'thi-dua-2024'" in err
    code, _, err = run_cli(["tokens", "rotate", "--config", "cfg"])
    assert code == 2
    assert "exactly one of UNIT" in err
