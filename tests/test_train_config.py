"""TrainConfig and its parser: config files are read with ast, --key=value overrides are typed;
--help lists every key from the dataclass; model fields and checks live in GPTConfig only."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import train
import train_config
from conftest import REPO_ROOT
from devices import DTYPES
from errors import UserError
from embeddings import KRONECKER_MODES
from model import EMBEDDINGS, GPTConfig
from train_config import (ARM_SETTINGS, ARMS, CHOICES, FIELD_TYPES, TrainConfig, default_text, help_text,
                          load_config, read_config_file, type_name)


def write(tmp_path, text):
    path = tmp_path / "cfg.py"
    path.write_text(text)
    return str(path)


def test_defaults_are_the_paper_124m_recipe():
    cfg = load_config([])
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.vocab_size) == (12, 12, 768, 1024, 50304)
    assert cfg.total_batch_tokens == 2**19 and cfg.max_steps == 4768
    assert cfg.total_batch_tokens * cfg.max_steps == 2_499_805_184  # the paper's "2.5B tokens"
    assert (cfg.max_lr, cfg.min_lr, cfg.warmup_steps) == (6e-4, 6e-5, 715)
    assert (cfg.beta1, cfg.beta2, cfg.weight_decay, cfg.grad_clip) == (0.9, 0.95, 0.1, 1.0)
    assert cfg.data_seed == cfg.seed == 1337 and cfg.run_name == "bpe_s1337"


def test_every_model_field_is_a_train_config_key():
    assert {f.name for f in dataclasses.fields(GPTConfig)} <= {f.name for f in dataclasses.fields(TrainConfig)}


def test_the_124m_configs_differ_only_in_their_arm():
    as_dicts = {arm: dataclasses.asdict(load_config([str(REPO_ROOT / "config" / f"{arm}_124m.py")]))
                for arm in ARMS}
    arm_keys = ("arm", "run_name", *ARM_SETTINGS)
    for arm, d in as_dicts.items():
        assert d["arm"] == arm
        others = {k: v for k, v in d.items() if k not in arm_keys}
        assert others == {k: v for k, v in as_dicts["bpe"].items() if k not in arm_keys}


def test_file_then_command_line_with_types_coerced(tmp_path):
    path = write(tmp_path, '"""doc"""\nembedding = "kronecker"\ntotal_batch_tokens = 2**10\n'
                           'max_steps = 100\nsave_steps = (10, 20)\n')
    cfg = load_config([path, "--max_steps=1e4", "--max_lr=3e-4", "--bias=false",
                       "--compile=None", "--data_seed=7", "--seed=1"])
    assert cfg.embedding == "kronecker" and cfg.total_batch_tokens == 1024
    assert cfg.max_steps == 10000 and isinstance(cfg.max_steps, int)
    assert cfg.max_lr == 3e-4 and cfg.bias is False and cfg.compile is None
    assert cfg.save_steps == (10, 20)
    assert (cfg.seed, cfg.data_seed, cfg.run_name) == (1, 7, "kronecker_s1")
    assert load_config(["--save_steps=5,15"]).save_steps == (5, 15)


@pytest.mark.parametrize("argv, message", [
    (["--max_step=3"], "unknown config key 'max_step' (from --max_step=3); did you mean max_steps"),
    (["--max_steps=1.5"], "bad value '1.5' for 'max_steps' (from --max_steps=1.5): expected int"),
    (["--bias=maybe"], "bad value 'maybe' for 'bias'"),
    (["--max_lr=fast"], "bad value 'fast' for 'max_lr'"),
    (["--embedding=kron"], "choose one of bpe, bpe_untied, bpe_factorized, kronecker, kronecker_tied"),
    (["--max_steps"], "must look like --key=value"),
    (["--total_batch_tokens=1000"], "must be a multiple of block_size"),
    (["--min_lr=1", "--max_lr=0.1"], "min_lr (1.0) must not exceed max_lr"),
    (["missing.py"], "config file missing.py not found"),
])
def test_bad_arguments_stop_with_one_line(argv, message):
    with pytest.raises(UserError) as err:
        load_config(argv)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_name_in_a_file_lists_close_matches(tmp_path):
    path = write(tmp_path, "n_layers = 2\n")
    with pytest.raises(UserError, match=r"unknown config key 'n_layers' \(in .*cfg.py\); did you mean n_layer"):
        load_config([path])


def test_wrong_type_in_a_file_is_rejected(tmp_path):
    with pytest.raises(UserError, match="bad value '12' for 'n_layer'.*expected int"):
        load_config([write(tmp_path, 'n_layer = "12"\n')])


def test_config_files_are_parsed_never_executed(tmp_path):
    with pytest.raises(UserError, match=r"cfg.py:1: only `name = value` assignments are allowed"):
        read_config_file(write(tmp_path, "import os\n"))
    with pytest.raises(UserError, match=r"cfg.py:1: the value of 'max_steps' must be a literal"):
        read_config_file(write(tmp_path, "max_steps = open('x')\n"))


@pytest.mark.parametrize("argv, message", [  # issue 10 §5: every value checked before work starts
    (["--dropout=1"], "'dropout' must be in [0, 1), got 1.0"),
    (["--dropout=-0.1"], "'dropout' must be >= 0"),
    (["--beta1=1.5"], "'beta1' must be in [0, 1), got 1.5"),
    (["--beta2=-0.1"], "'beta2' must be in [0, 1)"),
    (["--seed=-1"], "'seed' must be in [0, 2**32 - 1], got -1"),
    (["--data_seed=-5"], "'data_seed' must be in [0, 2**32 - 1], got -5"),
    (["--pos_dim=100000"], "'pos_dim' (100000) is above 256"),
    (["--run_name="], "'run_name' is empty"),
    (["--run_name=../elsewhere"], "'run_name' '../elsewhere' must be a single folder name"),
    (["--run_name=a/b"], "must be a single folder name"),
    (["--run_name=.."], "must be a single folder name"),
    (["--max_lr=1e400"], "'max_lr' must be a finite number, got inf"),
    (["--max_lr=0"], "'max_lr' must be in (0, 1.0], got 0.0"),
    (["--max_lr=1e30", "--min_lr=0"], "'max_lr' must be in (0, 1.0]"),
    (["--peak_flops=1e400"], "'peak_flops' must be a finite number"),
    (["--warmup_steps=20", "--max_steps=10"], "warmup_steps (20) exceeds max_steps (10)"),
    (["--max_steps=99999999999999999999999"], "'max_steps' is too large (77 bits)"),
    (["--save_steps=-3"], "'save_steps' must be >= 0"),
])
def test_every_out_of_range_value_stops_with_one_line(argv, message):
    with pytest.raises(UserError) as err:
        load_config(argv)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("max_steps = 9 ** 9 ** 9\n", "exponent 387420489 is above 64"),
    ("max_steps = 2**40 * 2**40\n", "a 81-bit integer is too large"),
    ('run_name = "a" * 10**9\n', "arithmetic works on numbers only"),
    ("max_steps = " + "9" * 5000 + "\n", "syntax error: Exceeds the limit (4300 digits)"),
    ("max_steps = " + "(" * 500 + "1" + ")" * 500 + "\n", "syntax error: too many nested parentheses"),
    ("max_steps = " + "-" * 100_000 + "1\n", "cannot be parsed"),  # the parser gives up
])
def test_config_expressions_cannot_take_unbounded_time_or_memory(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        load_config([write(tmp_path, text)])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_config_file_that_is_not_utf8_or_huge_is_one_line(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_bytes(b"max_steps = 10 # caf\xe9\n")
    with pytest.raises(UserError, match=r"cfg.py is not UTF-8 text \(byte 20\); save it as UTF-8"):
        load_config([str(path)])
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(UserError, match="is over 1048576 bytes"):
        load_config([str(path)])


# --help and one source of truth (issue 14 §1, §5) ------------------------------------------------

def test_help_lists_every_key_with_its_default_type_and_meaning():
    lines = help_text().splitlines()
    for f in dataclasses.fields(TrainConfig):
        line = next((l for l in lines if l.startswith(f"  --{f.name}=")), None)
        assert line is not None, f.name
        assert line.startswith(f"  --{f.name}={default_text(f.default)} ")
        assert type_name(FIELD_TYPES[f.name]) in line and f.metadata["help"].split()[0] in line
    assert "  --vocab_size=None" in help_text() and "  --max_lr=0.0006" in help_text()
    assert "[bpe | bpe_untied | bpe_factorized | kronecker | kronecker_tied | kronecker_shuffled | trigram_hash]" in \
        " ".join(help_text().split())  # the choices, wrapped over lines


def test_help_and_h_print_the_help_and_return_before_reading_anything(capsys):
    for argv in (["--help"], ["-h"], ["config/missing.py", "--max_steps=1", "-h"]):
        assert train.main(argv) is None
        assert capsys.readouterr().out == help_text() + "\n"


@pytest.mark.parametrize("argv, message", [
    (["--hepl"], "unknown config key 'hepl' (from --hepl); `python train.py --help` lists the keys"),
    (["--help=1"], "unknown config key 'help'"),
    (["-v"], "unexpected argument '-v'"),
])
def test_an_unknown_flag_is_still_a_one_line_error(argv, message):
    with pytest.raises(UserError) as err:
        train.main(argv)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_help_exits_0_from_the_command_line():
    result = subprocess.run([sys.executable, "train.py", "--help"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == help_text() + "\n"


def test_a_model_field_is_declared_once_in_gptconfig():
    model_fields = {f.name: f for f in dataclasses.fields(GPTConfig)}
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    # TrainConfig's body re-declares only vocab_size (None: taken from the tokenizer)
    assert set(vars(TrainConfig)["__annotations__"]) & set(model_fields) == {"vocab_size"}
    for name, f in model_fields.items():
        if name != "vocab_size":
            assert train_fields[name].default == f.default and train_fields[name].metadata == f.metadata
    assert all(f.metadata["help"] for f in train_fields.values())


@pytest.mark.parametrize("overrides, message", [
    (dict(n_head=5), "n_embd (768) must be divisible by n_head (5)"),
    (dict(n_head=0), "'n_head' must be positive, got 0"),
    (dict(pos_dim=0), "'pos_dim' must be positive, got 0"),
    (dict(block_size=-1), "'block_size' must be positive, got -1"),
    (dict(wte_scale=0.0), "'wte_scale' must be positive, got 0.0"),
    (dict(dropout=1.0), "'dropout' must be in [0, 1), got 1.0"),
    (dict(shuffle_seed=-1), "'shuffle_seed' must be in [0, 2**32 - 1], got -1"),
    (dict(pos_dim=300), "'pos_dim' (300) is above 256"),
])
def test_model_checks_are_gptconfigs_and_reach_the_command_line_as_one_line(overrides, message):
    with pytest.raises(UserError) as direct:
        GPTConfig(**overrides)
    with pytest.raises(UserError) as from_cli:
        load_config([f"--{k}={v}" for k, v in overrides.items()])
    assert message in str(direct.value) and str(direct.value) == str(from_cli.value)
    assert "\n" not in str(from_cli.value)


def test_choices_come_from_the_modules_that_own_them():
    assert CHOICES["embedding"] is EMBEDDINGS and CHOICES["kronecker_mode"] is KRONECKER_MODES
    assert CHOICES["dtype"] is DTYPES


# issue 21 §7: values before the tokenizer, one spelling of bools, toy runs under out/ ------------

def test_every_value_is_checked_before_the_tokenizer_loads(monkeypatch):
    """Offline without the tokenizer's files, a bad value is what the line names."""
    def offline(name):
        raise UserError(f"cannot load the {name} tokenizer (offline)")
    monkeypatch.setattr(train_config, "get_tokenizer", offline)
    with pytest.raises(UserError, match=r"'dropout' must be in \[0, 1\), got 1.5"):
        load_config(["--dropout=1.5"])
    with pytest.raises(UserError, match="cannot load the gpt2 tokenizer"):  # good values: its turn
        load_config(["--dropout=0.1"])


@pytest.mark.parametrize("text", ["yes", "no", "1", "0", "on", "y"])
def test_a_bool_is_true_or_false_as_help_prints_it_nothing_else(text):
    with pytest.raises(UserError, match=rf"bad value '{text}' for 'compile' \(from --compile={text}\): "
                                        r"expected True or False or None"):
        load_config([f"--compile={text}", "--vocab_size=256"])


def test_true_and_false_in_any_case_are_the_bools_help_shows():
    assert "  --bias=True " in help_text() and "bool keys take True or False, in any case" in help_text()
    for text, value in (("True", True), ("true", True), ("FALSE", False), ("None", None)):
        assert load_config([f"--compile={text}", "--vocab_size=256"]).compile is value


PAPER_SIZES = ("_124m.py", "_350m.py", "_774m.py", "_1558m.py")


def test_toy_configs_keep_their_runs_under_out_never_in_results_runs():
    toys = [p for p in sorted((REPO_ROOT / "config").glob("*.py")) if not p.name.endswith(PAPER_SIZES)]
    assert [p.stem for p in toys] == ["cpu_mini", "cpu_tiny", "quickstart"]
    for path in toys:
        cfg = load_config([str(path), "--vocab_size=256"])
        assert Path(cfg.log_dir).parts[0] == "out" and Path(cfg.out_dir).parts[0] == "out", path.name


def test_a_relative_config_path_from_another_directory_names_that_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        load_config(["config/cpu_tiny.py"])
    assert str(err.value) == (f"config file config/cpu_tiny.py not found (a relative path: relative to "
                              f"the current directory, {tmp_path}); the repo has "
                              f"{REPO_ROOT / 'config/cpu_tiny.py'}: run from {REPO_ROOT}, or give that path")
