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


def test_one_line_errors_name_the_file_or_parameter(tmp_path):
    missing = tmp_path / "nope"
    cases = [
        (("augment", "--in", missing, "--out", tmp_path / "a", "--n", "3"), str(missing)),
        (("mix", "--ad", missing, "--n-ad", "2", "--out", tmp_path / "m"), str(missing)),
        (("mix", "--n-ad", "0", "--n-sd", "0", "--out", tmp_path / "m"), "--n-ad"),
        (("train", "--train", missing, "--out", tmp_path / "r", "--iters", "1"), str(missing)),
        (("evaluate", "--model", missing), "--model/--data"),
        (("evaluate",), "--pred/--gt"),
        (("export", "--model", missing, "--onnx", tmp_path / "m.onnx"), "--model"),
        (("experiment", "report", missing), str(missing)),
        (("predict", "--model", missing, "--input", tmp_path / "in", "--out", tmp_path / "p"), "--model"),
        (("predict", "--model", missing, "--input", tmp_path / "in", "--out", tmp_path / "p",
          "--scale-nm-per-px", "-1"), "--scale-nm-per-px"),
        (("split", missing, "--train", tmp_path / "tr"), "--train/--test"),
    ]
    for args, needle in cases:
        code, out, err = run_cli(*args)
        assert code == 2, (args, out, err)
        assert needle in err, (args, err)
        assert err.startswith("error: ") or "Error" in err
        assert len(err.strip().splitlines()) == 1, (args, err)
    for name in ("a", "m", "r", "m.onnx", "p", "tr"):
        assert not (tmp_path / name).exists(), name


def _leaf_commands(group=None, path=()):
    import click

    from nanoseg.cli import cli

    group = group or cli
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _leaf_commands(cmd, path + (name,))
        else:
            yield path + (name,), cmd


def test_every_option_with_a_default_shows_it_in_help():
    import click

    hidden = []
    for path, cmd in _leaf_commands():
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.is_flag or p.required or p.name == "help":
                continue
            # a default of None means "decided later": the option must say how (a show_default text)
            if p.default is None and not isinstance(p.show_default, str):
                hidden.append(f"{' '.join(path)} {p.opts[0]}")
    assert not hidden, hidden
    code, out, _ = run_cli("train", "--help")
    assert code == 0 and "[default: (1000, or from --config)" in " ".join(out.split())
    code, out, _ = run_cli("synth", "--help")
    assert "[default: 100" in out


def test_commands_are_named_apart_from_the_library_functions_they_call():
    import nanoseg.cli as cli_module

    for path, cmd in _leaf_commands():
        assert cmd.callback.__name__ == "_".join(path).replace("-", "_") + "_command", path
    for library_name in ("train", "mix", "split", "predict", "synthesize_dataset", "import_folder"):
        assert not hasattr(cli_module, library_name), library_name
