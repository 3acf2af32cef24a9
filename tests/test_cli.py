"""kbroker.cli: arguments, the one-line error and warning, exit codes, --version and --help."""

import json
import logging
import os
import subprocess
import sys

import pytest

import kbroker
from kbroker import cli


@pytest.fixture(autouse=True)
def no_kbroker_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("KBROKER_")]:
        monkeypatch.delenv(name)


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KBROKER_")}
    return subprocess.run(
        [sys.executable, "-m", "kbroker", *args], capture_output=True, text=True, timeout=30, env=env
    )


def test_bad_value_exits_2_with_one_clear_line_before_anything_starts():
    result = run_module("--override", "num.partitions=abc")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    # Kafka's own wording (ConfigDef): "Invalid value abc for configuration num.partitions: Not a number of type INT"
    assert "num.partitions" in lines[0] and "Invalid value abc" in lines[0] and "INT" in lines[0]
    assert result.stdout == ""


def test_unreadable_file_exits_2(tmp_path):
    result = run_module(str(tmp_path / "nope.properties"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"kbroker: error: Cannot read properties file {tmp_path / 'nope.properties'}: No such file or directory"
    ]


def test_version():
    result = run_module("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"kbroker {kbroker.__version__}"


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        cli.parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--override key=value" in out and "server.properties" in out and "--log-level" in out


def test_file_and_overrides(tmp_path, capsys):
    path = tmp_path / "server.properties"
    path.write_text("num.partitions=3\nbroker.id=4\n")
    config = cli.parse_args([str(path), "--override", "num.partitions=8", "--override", "broker.rack=r2"])
    assert (config.get("num.partitions"), config.get("broker.id"), config.get("broker.rack")) == (8, 4, "r2")
    assert capsys.readouterr().err == ""


def test_environment_is_a_layer(monkeypatch):
    monkeypatch.setenv("KBROKER_NUM_PARTITIONS", "12")
    assert cli.parse_args([]).get("num.partitions") == 12
    assert cli.parse_args(["--override", "num.partitions=2"]).get("num.partitions") == 2


def test_unknown_keys_give_one_warning_line(capsys):
    config = cli.parse_args(["--override", "made.up=1", "--override", "also.made.up=2"])
    assert config.unknown_keys == ["also.made.up", "made.up"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kbroker: warning: ignoring unknown settings: also.made.up, made.up"]


def test_parse_args_exits_2_on_bad_value(capsys):
    with pytest.raises(SystemExit) as info:
        cli.parse_args(["--override", "log.message.timestamp.type=Now"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "log.message.timestamp.type" in err[0] and "CreateTime" in err[0]


def test_log_format_from_option_or_environment(monkeypatch, capsys):
    assert cli._log_format(cli._parse_command_line([])) == "text"
    assert cli._log_format(cli._parse_command_line(["--log-format", "JSON"])) == "json"
    monkeypatch.setenv("KBROKER_LOG_FORMAT", "json")
    assert cli._log_format(cli._parse_command_line([])) == "json"
    monkeypatch.setenv("KBROKER_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2 and "KBROKER_LOG_FORMAT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli._parse_command_line(["--log-format", "xml"])
    assert info.value.code == 2


def test_json_formatter_writes_one_object_with_the_extras_and_the_traceback():
    record = logging.makeLogRecord({"name": "kafka.request.logger", "levelno": logging.DEBUG, "levelname": "DEBUG",
                                    "msg": "Completed request:%s", "args": ("Metadata",), "created": 0.25,
                                    "msecs": 250.0, "api": "Metadata", "client_id": None})
    entry = json.loads(cli.JsonFormatter().format(record))
    assert entry == {"time": "1970-01-01T00:00:00.250Z", "level": "DEBUG", "logger": "kafka.request.logger",
                     "message": "Completed request:Metadata", "api": "Metadata", "client_id": None}
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info(), "levelname": "ERROR"})
    line = cli.JsonFormatter().format(failed)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exception"]


def test_log_level_from_option_or_environment(monkeypatch, capsys):
    assert cli._log_level(cli._parse_command_line(["--log-level", "warn"])) == 30
    monkeypatch.setenv("KBROKER_LOG_LEVEL", "debug")
    assert cli._log_level(cli._parse_command_line([])) == 10
    assert cli._log_level(cli._parse_command_line(["--log-level", "ERROR"])) == 40
    monkeypatch.setenv("KBROKER_LOG_LEVEL", "loud")
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2 and "KBROKER_LOG_LEVEL" in capsys.readouterr().err
