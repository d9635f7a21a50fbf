"""Shell completion (click's): configured domain names and journal operation ids.

:func:`install_completers` gives every ``DOMAIN`` argument and every ``OPERATION_ID``
argument of the command tree a completer, so new commands get them by naming their
arguments the usual way. Completers never fail: a missing or broken configuration
completes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    # Imported by each completer when it runs: the group installs the completers on every
    # command it loads, and a command that is only run never completes anything.
    from click.shell_completion import CompletionItem

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_MXFLIP_COMPLETE"


def _config(ctx: click.Context) -> Any:
    from mxflip.config import load_config

    return load_config(ctx.find_root().params.get("config_path"))


def complete_domains(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The configured domain names starting with ``incomplete``."""
    from click.shell_completion import CompletionItem

    try:
        config = _config(ctx)
    except Exception:  # completion must stay silent whatever is wrong
        return []
    chosen = set(ctx.params.get(param.name or "", ()) or ())
    return [
        CompletionItem(d.display)
        for d in config.domains.values()
        if d.display.startswith(incomplete) and d.display not in chosen
    ]


def complete_operations(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Operation ids from the journal, newest first, with what each was."""
    from click.shell_completion import CompletionItem

    from mxflip.journal import Journal, default_journal_path

    try:
        view = Journal(default_journal_path(_config(ctx).journal.path)).read()
    except Exception:  # completion must stay silent whatever is wrong
        return []
    return [
        CompletionItem(op.id, help=f"{op.kind}: {op.outcome}")
        for op in reversed(view.operations)
        if op.id.startswith(incomplete)
    ]


def complete_providers(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The ``[providers.NAME]`` tables of the file, read as plain TOML: before ``init`` the
    file holds no domains yet, so it would not load as a configuration."""
    import tomllib

    from click.shell_completion import CompletionItem

    from mxflip.config import find_config

    try:
        raw = tomllib.loads(find_config(ctx.find_root().params.get("config_path")).read_text())
        names = list(raw.get("providers") or {})
    except Exception:  # completion must stay silent whatever is wrong
        return []
    return [CompletionItem(n) for n in names if isinstance(n, str) and n.startswith(incomplete)]


_COMPLETERS = {
    "domains": complete_domains,
    "operation_id": complete_operations,
    "provider_name": complete_providers,
}


def install_completers(command: click.Command) -> None:
    """Attach the completers to every ``domains`` / ``operation_id`` argument and every
    ``--provider`` option below ``command``."""
    for param in command.params:
        completer = _COMPLETERS.get(param.name or "")
        if completer is not None:
            param._custom_shell_complete = completer
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            install_completers(sub)


def completion_script(command: click.Command, shell: str, prog_name: str = "mxflip") -> str:
    """The completion script for ``shell``, as click writes it."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"no completion for shell {shell!r}")
    return cls(command, {}, prog_name, COMPLETE_VAR).source()
