from .conftest import run_cli

SUBCOMMANDS = ["demo", "synth", "import", "augment", "mix", "split", "train", "evaluate", "predict", "export",
               "experiment"]


def test_help_lists_every_subcommand_with_a_description():
    code, out, _ = run_cli("--help")
    assert code == 0
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ") and ln.split()}
    for cmd in SUBCOMMANDS:
        assert cmd in lines and len(lines[cmd].split()) > 2, cmd


def test_each_subcommand_has_help():
    for cmd in SUBCOMMANDS:
        code, out, _ = run_cli(cmd, "--help")
        assert code == 0 and "Usage" in out


def test_bad_usage_exits_2():
    code, _, err = run_cli("synth")
    assert code == 2 and "--out" in err
    code, _, err = run_cli("no-such-command")
    assert code == 2
