"""``mocd import FILE``: the click command around the pure importer.

Reads the file (:mod:`.text_sources`), drafts (:func:`.assemble.draft_plan`),
writes the YAML (:mod:`.draft`) to stdout or ``--output``. Errors are
:class:`~config.errors.UserError` s, which ``scheduler.cli`` prints as one line
with the usual exit codes; nothing is written when there is nothing to draft.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from config.errors import RuntimeFailure, UsageError
from config.importer.assemble import NothingToImport, draft_plan
from config.importer.draft import render
from config.importer.text_sources import ImportFailure, read_plan
from config.schema import SLUG


def write_new(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path`` atomically; an existing file only with ``force``."""
    if path.exists() and not force:
        raise UsageError(f"{path}: already exists: use --force to overwrite it")
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        if not force and path.exists():
            os.unlink(tmp)
            raise UsageError(f"{path}: already exists: use --force to overwrite it")
        os.replace(tmp, path)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc.strerror}") from None


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--campaign-id", default=None, metavar="ID",
              help="Id of the drafted campaign (default: from the document type, place, year).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE.yaml", help="Write the draft here instead of to stdout.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
def import_command(file: Path, campaign_id: str | None, output: Path | None,
                   force: bool) -> None:
    """Draft a milestone config from the text of a plan (.txt, .docx or .pdf with text).

    Every item quotes its source line; values the plan does not give are
    written TODO and must be filled in before `mocd check` passes.
    """
    if campaign_id is not None and not SLUG.fullmatch(campaign_id):
        raise click.BadParameter(f"'{campaign_id}' is not an id: use lowercase letters, "
                                 "digits and '-'", param_hint="--campaign-id")
    if output is not None and output.exists() and not force:
        raise UsageError(f"{output}: already exists: use --force to overwrite it")
    text = read_plan(file)
    try:
        draft = draft_plan(text, file.name, campaign_id)
    except NothingToImport:
        raise ImportFailure(f"{file}: {NothingToImport.reason}") from None
    yaml_text = render(draft)
    if output is None:
        click.echo(yaml_text, nl=False)
    else:
        write_new(output, yaml_text, force=force)
    campaign = draft.campaign
    milestones = len(campaign.milestones) if campaign else 0
    click.echo(f"{output or 'stdout'}: draft of {file.name} — {len(draft.anniversaries)} "
               f"anniversaries, {'a campaign period, ' if campaign and campaign.period else ''}"
               f"{milestones} milestones, {len(draft.units)} units, {len(draft.groups)} groups; "
               f"{draft.todo_values} TODO values to fill in before `mocd check`", err=True)
