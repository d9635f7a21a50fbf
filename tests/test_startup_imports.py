"""What start-up loads (the figures are in bench/bench_startup.py): `--help` loads no
pydantic, asyncio or rich; `mxflip providers` and `mxflip validate` load no provider SDK,
no rich, no asyncio and only the renderer they use; adapter discovery agrees with
importlib.metadata. Not timings: the modules a fresh interpreter ends up with."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from mxflip.entrypoints import ENTRY_POINT_GROUP, installed_providers, skip_pydantic_plugin_scan
from mxflip.testing.memory import register_memory_provider

ROOT = Path(__file__).resolve().parents[1]
SDKS = ("boto3", "botocore", "cloudflare", "httpx", "pygments", "rich")
LAB_KEY = 'key "mxflip-lab" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n'


#: What no start-up command needs: the event loop and what tenacity drags in with it
#: (retries are made when a provider is called), dnspython (key files are read without
#: it), the renderer's terminal library.
NOT_AT_STARTUP = ("asyncio", "tenacity", "ssl", "dns", "rich", "platformdirs")
#: `--help` (of the group and of a command) builds no model and reads no config.
#: A command's help skips the group's set-up too (runtime, logging: cli._asks_for_help).
NOT_FOR_HELP = (
    *(*NOT_AT_STARTUP, "pydantic", "tomllib", "json", "logging"),
    *("mxflip.config", "mxflip.render", "mxflip.runtime"),
)


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    """The modules among ``modules`` that are one of ``names`` or inside one."""
    return sorted(m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names))


def modules_after(*argv: str) -> tuple[list[str], str]:
    """Run the CLI in a fresh interpreter: every module it imported, and its stdout."""
    code = (
        "import io, sys, contextlib\n"
        "from mxflip.cli import main\n"
        f"sys.argv = ['mxflip', *{list(argv)!r}]\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n        main()\n    except SystemExit as exc:\n        code = exc.code\n"
        "print(repr((sorted(sys.modules), code, out.getvalue())))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    modules, exit_code, stdout = eval(result.stdout.strip().splitlines()[-1])
    assert exit_code in (0, None), result.stderr + stdout
    return modules, stdout


def pydantic_plugins_installed() -> bool:
    return bool(metadata.entry_points(group="pydantic"))


@pytest.mark.parametrize("argv", [["--help"], ["status", "--help"], ["failover", "--help"]])
def test_help_loads_no_pydantic_asyncio_or_rich(argv: list[str]) -> None:
    modules, out = modules_after(*argv)
    assert _loaded(modules, NOT_FOR_HELP) == []
    assert out.startswith("Usage: mxflip ")


def test_help_as_an_option_value_runs_the_command(tmp_path: Path) -> None:
    """``--reason --help`` is a reason, not a request for help: the command runs (and
    here stops at the missing configuration, exit 2) with the group's set-up done."""
    missing = str(tmp_path / "none.toml")
    code = (
        "import sys\n"
        "from mxflip.cli import main\n"
        f"sys.argv = ['mxflip', '-c', {missing!r}, 'failover', '--reason', '--help']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n"
        "    print(exc.code, 'mxflip.runtime' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["2", "True"]
    assert "configuration file not found" in result.stderr
    assert "Usage:" not in result.stdout + result.stderr


def loaded_by(*argv: str) -> tuple[list[str], str]:
    """Run the CLI in a fresh interpreter; the SDK packages it imported, and its stdout."""
    modules, stdout = modules_after(*argv)
    return sorted(m for m in modules if m.split(".")[0] in SDKS), stdout


def test_providers_loads_no_sdk_and_no_rich() -> None:
    bad, out = loaded_by("providers")
    assert bad == []
    assert "mxflip_route53:Route53Provider" in out
    bad, out = loaded_by("providers", "--json")
    assert bad == [] and json.loads(out)["command"] == "providers"


@pytest.mark.parametrize("example", ["rfc2136", "route53", "cloudflare"])
def test_validate_loads_no_sdk_and_no_rich(example: str, tmp_path: Path) -> None:
    folder = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, folder)
    (folder / "lab.key").write_text(LAB_KEY)
    bad, out = loaded_by("-c", str(folder / "mxflip.toml"), "validate")
    assert bad == []
    assert out.startswith(f"{folder / 'mxflip.toml'}: OK — ")


@pytest.mark.parametrize("example", ["rfc2136", "route53", "cloudflare"])
def test_validate_loads_only_what_it_uses(example: str, tmp_path: Path) -> None:
    folder = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, folder)
    (folder / "lab.key").write_text(LAB_KEY)
    modules, out = modules_after("-c", str(folder / "mxflip.toml"), "validate")
    assert out.startswith(f"{folder / 'mxflip.toml'}: OK — ")
    assert _loaded(modules, (*NOT_AT_STARTUP, *SDKS, "email", "json")) == []
    # Only its own renderer; the [watch] models only for a file with a [watch] table.
    renderers = _loaded(modules, ("mxflip.render",))
    assert renderers == ["mxflip.render", "mxflip.render.common", "mxflip.render.inventory"]
    assert _loaded(modules, ("mxflip.watch.config", "mxflip.engine", "mxflip.state")) == []
    if not pydantic_plugins_installed():
        # pydantic's plugin lookup is answered without importlib.metadata (entrypoints.py).
        assert _loaded(modules, ("importlib.metadata",)) == []


def test_validate_with_watch_still_loads_the_watch_models(tmp_path: Path) -> None:
    folder = tmp_path / "rfc2136"
    shutil.copytree(ROOT / "examples" / "rfc2136", folder)
    (folder / "lab.key").write_text(LAB_KEY)
    config = folder / "mxflip.toml"
    config.write_text(config.read_text() + '\n[watch]\nnotify = ["json://127.0.0.1:9/"]\n')
    modules, out = modules_after("-c", str(config), "validate")
    assert out.startswith(f"{config}: OK — ")
    assert "mxflip.watch.config" in modules


def test_providers_loads_no_json_or_asyncio_without_json() -> None:
    modules, out = modules_after("providers")
    assert "mxflip_route53:Route53Provider" in out
    assert _loaded(modules, (*NOT_AT_STARTUP, *SDKS, "pydantic", "json")) == []


def test_discovery_agrees_with_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(register_memory_provider(tmp_path)))
    expected = {
        ep.name: (ep.value, ep.dist.name if ep.dist else None, ep.dist.version if ep.dist else None)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
    }
    found = {p.type: (p.target, p.distribution, p.version) for p in installed_providers().values()}
    assert found == expected
    assert "memory" in found and "rfc2136" in found


def _dist_with_pydantic_plugin(folder: Path) -> Path:
    info = folder / "some_pydantic_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: some-pydantic-plugin\n")
    (info / "entry_points.txt").write_text("[pydantic]\nsome = some_pydantic_plugin:plugin\n")
    return folder


def test_pydantic_finds_its_plugins_when_one_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "pydantic.plugin._loader", raising=False)
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(_dist_with_pydantic_plugin(tmp_path)))
    skip_pydantic_plugin_scan()
    assert "pydantic.plugin._loader" not in sys.modules  # pydantic's own loader will run


@pytest.mark.parametrize("disabled", [None, "__all__"])
def test_no_pydantic_plugin_means_no_lookup(
    disabled: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "pydantic.plugin._loader", raising=False)
    if disabled is None:
        monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
        assert not pydantic_plugins_installed()
    else:  # installed but disabled, as pydantic's own loader would treat it
        monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", disabled)
        monkeypatch.syspath_prepend(str(_dist_with_pydantic_plugin(tmp_path)))
    skip_pydantic_plugin_scan()
    assert sys.modules["pydantic.plugin._loader"].get_plugins() == ()

    # Models built then validate as before: the plain validator, no plugin wrapper.
    from pydantic import BaseModel, ConfigDict

    class Model(BaseModel):
        model_config = ConfigDict(defer_build=True)
        x: int

    assert Model.model_validate({"x": 1}).x == 1
    assert type(Model.__pydantic_validator__).__name__ == "SchemaValidator"


#: The command modules the group loads on demand (mxflip.cli.COMMANDS).
COMMAND_MODULES = (
    *("mxflip.cli_canary", "mxflip.cli_change", "mxflip.cli_config", "mxflip.cli_onboard"),
    *("mxflip.cli_read", "mxflip.cli_state", "mxflip.watch.cli"),
)


def test_the_command_table_agrees_with_the_commands() -> None:
    """Every entry names a real command of that name, whose short help is the table's at
    every width; every command of the tree is in the table."""
    import importlib

    import click

    from mxflip.cli import COMMANDS

    for name, (module, attribute, short_help) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command) and command.name == name
        stand_in = click.Command(name, help=short_help)
        for limit in (20, 45, 60, 200):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), name
        assert not command.hidden
    # Nothing registers a command outside the table (the tree of the loaded group).
    _, out = modules_after("--help")
    rows = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    listed = [line.split()[0] for line in rows if line[:2] == "  " and line[2:3] != " "]
    assert listed == sorted(COMMANDS)


@pytest.mark.parametrize("columns", ["80", "50"])
def test_group_help_is_the_same_lazy_or_loaded(columns: str) -> None:
    """``mxflip --help`` from the table lists what the loaded commands would, line for
    line, and imports none of the command modules."""
    code = (
        "import io, sys, contextlib, click\n"
        "from mxflip.cli import cli, COMMANDS\n"
        "def show():\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n            cli.main(['--help'], prog_name='mxflip')\n"
        "        except SystemExit:\n            pass\n"
        "    return out.getvalue()\n"
        "lazy = show()\n"
        f"loaded_before = sorted(m for m in sys.modules if m in {COMMAND_MODULES!r})\n"
        "for name in COMMANDS:\n    cli.get_command(click.Context(cli), name)\n"
        "print(repr((lazy, show(), loaded_before)))\n"
    )
    env = {**__import__("os").environ, "COLUMNS": columns}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    lazy, loaded, loaded_before = eval(result.stdout.strip().splitlines()[-1])
    assert lazy == loaded
    assert "validate" in lazy and "failover" in lazy
    assert loaded_before == []


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (["providers"], "mxflip.cli_config"),
        (["status", "--help"], "mxflip.cli_read"),
        (["failover", "--help"], "mxflip.cli_change"),
        (["canary", "send", "--help"], "mxflip.cli_canary"),
    ],
)
def test_a_command_loads_only_its_own_module(argv: list[str], module: str) -> None:
    modules, _ = modules_after(*argv)
    assert _loaded(modules, COMMAND_MODULES) == [module]
    assert "click.shell_completion" not in modules  # completers import it when they run


def test_the_entry_point_tunes_the_collector_and_still_exits_as_before(tmp_path: Path) -> None:
    """``main`` enlarges the young generation for start-up and freezes what is left when
    the command ends (the final collection skips it); the command's output and exit code
    are unchanged, and the script's stdout is complete (nothing is lost at exit)."""
    folder = tmp_path / "rfc2136"
    shutil.copytree(ROOT / "examples" / "rfc2136", folder)
    (folder / "lab.key").write_text(LAB_KEY)
    code = (
        "import gc, sys\n"
        "from mxflip.cli import main\n"
        f"sys.argv = ['mxflip', '-c', {str(folder / 'mxflip.toml')!r}, 'validate', '--json']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n"
        "    print(exc.code, gc.get_threshold()[0], gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr.split()[-3:] == ["0", "50000", "True"]
    assert json.loads(result.stdout)["command"] == "validate"


def test_an_unknown_command_still_gets_suggestions() -> None:
    """click suggests close names from the commands it has built; the lazy group builds
    them all for that message, so a typo is answered as before."""
    result = subprocess.run(
        [sys.executable, "-m", "mxflip", "statu"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    import click

    last = result.stderr.splitlines()[-1]
    if hasattr(click.exceptions, "NoSuchCommand"):  # click 8.4 and later suggest names
        assert last == "Error: No such command 'statu'. (Did you mean one of: 'state', 'status'?)"
    else:
        assert last == "Error: No such command 'statu'."
