"""Argument parsing of the `pocketkube` command and option resolution."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pocketkube.cli.instance import DEFAULT_APP, Instance, Options
from pocketkube.cli.main import build_parser

COMMANDS = ("server", "start", "stop", "status", "delete", "version")


def test_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pocketkube.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in COMMANDS:
        assert f"    {command} " in out
    assert "--app" not in out


def test_no_command_prints_help(cli) -> None:
    result = cli()
    assert result.code == 0
    assert "usage: pocketkube" in result.out


def test_server_options() -> None:
    args = build_parser().parse_args(
        [
            "server",
            "--data-dir",
            "/tmp/c1",
            "--port",
            "7443",
            "--bind-address",
            "0.0.0.0",
            "--datastore",
            "etcd://10.0.0.1:2379,10.0.0.2:2379",
            "--log-level",
            "debug",
        ]
    )
    assert (args.command, args.data_dir, args.port) == ("server", Path("/tmp/c1"), 7443)
    assert args.bind_address == "0.0.0.0"
    assert args.datastore == "etcd://10.0.0.1:2379,10.0.0.2:2379"
    assert args.log_level == "debug"


def test_unset_options_are_none_so_remembered_ones_apply() -> None:
    args = build_parser().parse_args(["start"])
    assert (args.data_dir, args.port, args.bind_address, args.datastore) == (None, None, None, None)
    assert args.wait_timeout == 60.0


@pytest.mark.parametrize(
    "argv",
    [
        ["server", "--datastore", "mysql"],
        ["server", "--datastore", "etcd://"],
        ["server", "--datastore", "etcd://host"],
        ["server", "--datastore", "etcd://host:2379,other"],
        ["start", "--port", "0"],
        ["start", "--port", "70000"],
        ["start", "--port", "https"],
        ["start", "--log-level", "loud"],
        ["stop", "--port", "6443"],
        ["frobnicate"],
    ],
)
def test_invalid_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_stop_and_delete_take_a_timeout() -> None:
    assert build_parser().parse_args(["stop", "--timeout", "5"]).timeout == 5.0
    assert build_parser().parse_args(["delete"]).timeout == 30.0


def test_remembered_options_and_overrides(tmp_path: Path) -> None:
    instance = Instance(tmp_path / "c")
    instance.mark()
    assert instance.options() == Options()
    instance.save_options(Options(port=7443, datastore="etcd://127.0.0.1:2379"))
    saved = json.loads(instance.config_path.read_text())
    assert saved["port"] == 7443 and saved["context"] == instance.name
    assert instance.options() == Options(port=7443, datastore="etcd://127.0.0.1:2379")
    overridden = instance.options({"port": 8443, "bind_address": None, "app": None})
    assert overridden == Options(port=8443, datastore="etcd://127.0.0.1:2379", app=DEFAULT_APP)


def test_data_dir_defaults_to_pocketkube_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.setenv("POCKETKUBE_HOME", str(tmp_path / "ph"))
    result = cli("status")
    assert result.code == 1
    assert str(tmp_path / "ph") in result.out and "Not created" in result.out
