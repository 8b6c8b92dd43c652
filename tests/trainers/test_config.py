"""`TrainConfig`: documented fields, the defaults < preset < file < overrides order, command-line
parsing, type and range errors that name the culprit, LoRA layer selection, and the YAML round trip."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pytest

from swerepair.trainers.config import (
    MODEL_DEFAULTS,
    PRESETS,
    ConfigError,
    TrainConfig,
    field_docs,
    load_config,
    lora_layer_indices,
    parse_overrides,
)

FIELD_NAMES = [f.name for f in dataclasses.fields(TrainConfig)]


def write(tmp_path, text: str, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults and documentation -------------------------------------------------------------------
def test_defaults_validate():
    cfg = TrainConfig()
    cfg.validate()
    # load_config adds the default model's own defaults (the tiny model's laptop-sized ones)
    assert cfg.replace(**MODEL_DEFAULTS[cfg.model]) == load_config()
    assert cfg.episodes_per_step == cfg.tasks_per_step * cfg.group_size


def test_every_field_documented_once():
    docs = field_docs()
    assert set(docs) == set(FIELD_NAMES)
    for name in FIELD_NAMES:
        assert docs[name].strip(), f"{name} has an empty docstring"
        assert "\n" not in docs[name]
    # each field is declared (and so documented) exactly once in the class body
    body = ast.parse(inspect.getsource(TrainConfig)).body[0].body  # type: ignore[attr-defined]
    declared = [n.target.id for n in body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    assert sorted(declared) == sorted(FIELD_NAMES)
    assert len(declared) == len(set(declared))


# -- precedence -------------------------------------------------------------------------------------
def test_precedence_defaults_preset_file_overrides(tmp_path):
    default = TrainConfig()
    preset = PRESETS["cpu-demo"]
    # the preset changes these from their defaults
    assert preset["lr"] != default.lr and preset["max_tool_calls"] != default.max_tool_calls
    assert preset["group_size"] != default.group_size

    only_preset = load_config(preset="cpu-demo")
    assert only_preset.lr == preset["lr"]
    assert only_preset.max_tool_calls == preset["max_tool_calls"]
    assert only_preset.seed == default.seed  # untouched by the preset: the default

    path = write(tmp_path, "lr: 3.0e-4\nmax_tool_calls: 7\nseed: 11\n")
    with_file = load_config(preset="cpu-demo", config=path)
    assert with_file.lr == 3e-4  # file over preset
    assert with_file.max_tool_calls == 7
    assert with_file.seed == 11  # file over default
    assert with_file.group_size == preset["group_size"]  # preset kept where the file is silent

    full = load_config(preset="cpu-demo", config=path, overrides=["--lr", "5e-6", "--group-size=5"])
    assert full.lr == 5e-6  # override over file
    assert full.group_size == 5 != preset["group_size"]  # override over preset
    assert full.max_tool_calls == 7  # file kept where overrides are silent
    assert full.device == preset["device"]  # preset kept where file and overrides are silent
    assert full.weight_decay == default.weight_decay

    mapping = load_config(preset="cpu-demo", config=path, overrides={"max-tool-calls": "9"})
    assert mapping.max_tool_calls == 9 and mapping.lr == 3e-4


def test_file_alone_and_empty_file(tmp_path):
    assert load_config(config=write(tmp_path, "")) == TrainConfig(**MODEL_DEFAULTS["tiny-qwen3"])
    cfg = load_config(config=write(tmp_path, "group_size: 4\ntask_ids: [x, y]\nrepos: null\n", "b.yaml"))
    assert cfg.group_size == 4 and cfg.task_ids == ["x", "y"] and cfg.repos is None


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_loads(name):
    cfg = load_config(preset=name)
    for key, value in PRESETS[name].items():
        assert getattr(cfg, key) == value, key


def test_unknown_preset():
    with pytest.raises(ConfigError, match="nope"):
        load_config(preset="nope")


def test_thesis_preset():
    cfg = load_config(preset="thesis")
    assert cfg.group_size == 8
    assert cfg.episodes_per_step == 32
    assert cfg.lr == 5e-6
    assert cfg.beta > 0
    assert cfg.eps_high > cfg.eps_low
    assert cfg.max_tool_calls == 30
    assert cfg.max_context_tokens == 8192


# -- command-line overrides -------------------------------------------------------------------------
def test_parse_overrides_forms():
    assert parse_overrides(["--lr", "5e-6"]) == {"lr": "5e-6"}
    assert parse_overrides(["--group-size=4"]) == {"group_size": "4"}
    assert parse_overrides(["--group_size", "4"]) == {"group_size": "4"}
    assert parse_overrides(["--no-tensorboard"]) == {"tensorboard": "false"}
    assert parse_overrides(["--tensorboard"]) == {"tensorboard": "true"}
    assert parse_overrides(["--tensorboard", "--lr", "1e-4"]) == {"tensorboard": "true", "lr": "1e-4"}
    assert parse_overrides(["--no-tensorboard", "--lr=1e-4"]) == {"tensorboard": "false", "lr": "1e-4"}
    assert parse_overrides(["--task-ids", "a,b"]) == {"task_ids": "a,b"}
    assert parse_overrides(["--beta", "-0.5"]) == {"beta": "-0.5"}  # a negative number is a value
    assert parse_overrides([]) == {}


def test_overrides_converted_by_load_config():
    cfg = load_config(
        overrides=["--lr", "5e-6", "--group-size=4", "--no-tensorboard", "--task-ids", "a,b", "--zero-stage", "2"]
    )
    assert cfg.lr == 5e-6 and isinstance(cfg.lr, float)
    assert cfg.group_size == 4 and isinstance(cfg.group_size, int)
    assert cfg.tensorboard is False
    assert cfg.task_ids == ["a", "b"]
    assert cfg.zero_stage == 2
    assert load_config(overrides=["--no-progress"]).progress is False
    assert load_config(overrides=["--progress"]).progress is True
    assert load_config(overrides=["--save-episodes", "off"]).save_episodes is False
    assert load_config(overrides=["--repos", "none"]).repos is None
    assert load_config(overrides=["--repos", "/r"]).repos == "/r"


def test_unknown_override_suggests_closest():
    with pytest.raises(ConfigError, match="'lrr'") as info:
        parse_overrides(["--lrr", "1e-5"])
    assert "did you mean 'lr'" in str(info.value)
    with pytest.raises(ConfigError, match="'group_size'"):
        parse_overrides(["--group-sise", "4"])
    with pytest.raises(ConfigError, match="lrr"):
        load_config(overrides={"lrr": 1})


@pytest.mark.parametrize("argv", [["--lr"], ["--lr", "--group-size", "4"], ["--group-size"]])
def test_missing_value(argv):
    with pytest.raises(ConfigError, match="needs a value"):
        parse_overrides(argv)


@pytest.mark.parametrize("argv", [["lr", "1"], ["--"], ["-l", "1"]])
def test_not_an_option(argv):
    with pytest.raises(ConfigError):
        parse_overrides(argv)


# -- type errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "field_name"),
    [
        (["--lr", "abc"], "lr"),
        (["--group-size", "2.5"], "group_size"),
        (["--aggregation", "nope"], "aggregation"),
        (["--zero-stage", "1"], "zero_stage"),
        (["--tensorboard", "maybe"], "tensorboard"),
        (["--max-tool-calls", "many"], "max_tool_calls"),
    ],
)
def test_type_errors_name_the_field(argv, field_name):
    with pytest.raises(ConfigError, match=field_name):
        load_config(overrides=argv)


@pytest.mark.parametrize(
    ("text", "field_name"),
    [("group_size: 2.5\n", "group_size"), ("tensorboard: 1\n", "tensorboard"), ("task_ids: 3\n", "task_ids")],
)
def test_yaml_type_errors_name_file_and_field(tmp_path, text, field_name):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=field_name) as info:
        load_config(config=path)
    assert str(path) in str(info.value)


def test_yaml_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "lr: 1.0e-5\ngroup_sise: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(config=path)
    message = str(info.value)
    assert str(path) in message
    assert "group_sise" in message
    assert "'group_size'" in message  # the suggestion


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, "lr: 1.0e-5\nseed: 3\ntask_ids: [a, b\nmodel: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(config=path)
    message = str(info.value)
    assert str(path) in message
    assert "line " in message
    line = int(message.split("line ", 1)[1].split(":", 1)[0])
    assert 3 <= line <= 4  # the unclosed flow sequence starts on line 3; PyYAML reports where it notices

    path = write(tmp_path, "lr: 1\n  bad: indent\n", "indent.yaml")
    with pytest.raises(ConfigError, match="line 2"):
        load_config(config=path)


def test_yaml_list_and_scalar_rejected(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(config=write(tmp_path, "- lr\n- 1\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(config=write(tmp_path, "just a string\n", "s.yaml"))


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config=tmp_path / "absent.yaml")


def test_yaml_range_error_names_file(tmp_path):
    path = write(tmp_path, "group_size: 1\n")
    with pytest.raises(ConfigError, match="group_size") as info:
        load_config(config=path)
    assert str(path) in str(info.value)


# -- range validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"group_size": 1}, "group_size"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"beta": -0.1}, "beta"),
        ({"eps_low": 1.0}, "eps_low"),
        ({"eps_high": -0.1}, "eps_high"),
        ({"lora_target_modules": []}, "lora_target_modules"),
        ({"lr": 0.0}, "lr"),
        ({"max_tool_calls": 0}, "max_tool_calls"),
        ({"micro_batch_size": 0}, "micro_batch_size"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
        ({"temperature": 0.0}, "temperature"),
        ({"device": "tpu"}, "device"),
        ({"lora_layers": "first_third"}, "lora_layers"),
        ({"lora_layers": "1,x"}, "lora_layers"),
        ({"lora_layers": ""}, "lora_layers"),
        ({"lora_layers": "-1"}, "lora_layers"),
    ],
)
def test_out_of_range(changes, field_name):
    with pytest.raises(ConfigError, match=field_name):
        TrainConfig(**changes)
    with pytest.raises(ConfigError, match=field_name):
        TrainConfig().replace(**changes)


def test_range_boundaries_accepted():
    TrainConfig(group_size=2, top_p=1.0, beta=0.0, eps_low=0.99, min_lr_ratio=1.0)
    TrainConfig(finetune="full", lora_target_modules=[])  # no adapters: no target modules needed
    load_config(overrides=["--beta", "0.5"])
    with pytest.raises(ConfigError, match="beta"):
        load_config(overrides=["--beta", "-0.5"])
    with pytest.raises(ConfigError, match="lora_target_modules"):
        load_config(overrides=["--lora-target-modules", ""])


# -- LoRA layers ------------------------------------------------------------------------------------
def test_lora_layer_indices():
    assert lora_layer_indices("all", 12) is None
    assert lora_layer_indices(" all ", 12) is None
    assert lora_layer_indices("last_third", 12) == [8, 9, 10, 11]
    assert lora_layer_indices("last_third", 2) == [1]
    assert lora_layer_indices("last_third", 30) == list(range(20, 30))
    assert lora_layer_indices("last_half", 12) == list(range(6, 12))
    assert lora_layer_indices("last_half", 3) == [2]
    assert lora_layer_indices("1,3", 12) == [1, 3]
    assert lora_layer_indices("3, 1,3", 12) == [1, 3]  # sorted, deduplicated
    assert lora_layer_indices("11", 12) == [11]


@pytest.mark.parametrize("spec", ["12", "0,12", "-1", "nope", ""])
def test_lora_layer_indices_errors(spec):
    with pytest.raises(ConfigError, match="lora_layers"):
        lora_layer_indices(spec, 12)


# -- YAML round trip --------------------------------------------------------------------------------
def test_to_yaml_round_trip(tmp_path):
    cfg = TrainConfig(
        model="Qwen/Qwen3-8B",
        lr=5e-6,
        min_lr_ratio=0.1,
        beta=0.04,
        group_size=4,
        tensorboard=False,
        task_ids=["a__b-1", "c: d # e"],
        lora_target_modules=["q_proj", "v_proj"],
        repos=None,
        deepspeed_config="ds.json",
        zero_stage=2,
        lora_layers="1,3",
        output_dir="runs/ü x",
    )
    path = tmp_path / "out.yaml"
    cfg.to_yaml(path)
    back = load_config(config=path)
    assert back == cfg
    for name in FIELD_NAMES:  # same values and types
        assert type(getattr(back, name)) is type(getattr(cfg, name)), name
    assert load_config(config=_round_trip(TrainConfig(), tmp_path)) == TrainConfig()
    thesis = load_config(preset="thesis")
    assert load_config(config=_round_trip(thesis, tmp_path)) == thesis


def _round_trip(cfg: TrainConfig, tmp_path):
    path = tmp_path / "rt.yaml"
    cfg.to_yaml(path)
    return path


def test_to_yaml_documents_each_field(tmp_path):
    path = tmp_path / "out.yaml"
    TrainConfig().to_yaml(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    docs = field_docs()
    for name in FIELD_NAMES:
        key_lines = [i for i, line in enumerate(lines) if line.startswith(f"{name}: ")]
        assert len(key_lines) == 1, name
        assert lines[key_lines[0] - 1] == f"# {docs[name]}", name


def test_adapter_pushes_need_lora_and_a_swerepair_server():
    assert load_config(overrides={"weight_push": "adapter"}).weight_push == "adapter"
    with pytest.raises(ConfigError, match="weight_push adapter"):
        load_config(overrides={"weight_push": "adapter", "finetune": "full"})
    with pytest.raises(ConfigError, match="weight_push adapter"):
        load_config(overrides={"weight_push": "adapter", "server_engine": "vllm"})
    with pytest.raises(ConfigError):
        load_config(overrides={"server_engine": "sglang"})


# -- renamed keys -----------------------------------------------------------------------------------
def test_max_turns_is_now_max_tool_calls_everywhere(tmp_path):
    """The env's tool-call budget has one name: the old key is an error naming the new one, in a
    YAML file, an override mapping, a command line and `TrainConfig(...)`."""
    path = write(tmp_path, "lr: 1.0e-5\nmax_turns: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(config=path)
    message = str(info.value)
    assert str(path) in message and "max_turns was renamed max_tool_calls" in message
    assert "\n" not in message
    for overrides in ({"max_turns": 4}, {"max-turns": "4"}, ["--max-turns", "4"]):
        with pytest.raises(ConfigError, match=r"max.turns was renamed (--)?max.tool.calls"):
            load_config(overrides=overrides)
    with pytest.raises(ConfigError, match=r"^command line: --max-turns was renamed --max-tool-calls "):
        parse_overrides(["--max-turns", "4"])
    with pytest.raises(ConfigError, match="--max-turns was renamed --max-tool-calls"):
        parse_overrides(["--max-turns=4"])
    with pytest.raises(TypeError, match="TrainConfig: max_turns was renamed max_tool_calls"):
        TrainConfig(max_turns=4)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"max.turns was renamed (--)?max.tool.calls"):
        TrainConfig().replace(max_turns=4)
    assert load_config(overrides=["--max-tool-calls", "4"]).max_tool_calls == 4


def test_max_steps_still_counts_optimizer_steps():
    assert parse_overrides(["--max-steps", "3"]) == {"max_steps": "3"}
    assert load_config(overrides={"max_steps": 3}).max_steps == 3


def test_a_saved_runs_config_with_the_old_key_still_loads(tmp_path, caplog):
    """``--resume`` reads a run's own config.yaml, which an older version wrote with max_turns."""
    cfg = load_config(preset="cpu-demo")
    path = _round_trip(cfg, tmp_path)
    old = path.read_text(encoding="utf-8").replace("\nmax_tool_calls: ", "\nmax_turns: ")
    path.write_text(old, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"max.turns was renamed (--)?max.tool.calls"):
        load_config(config=path)  # as a user's --config: rejected
    with caplog.at_level("WARNING", logger="swerepair.trainers.config"):
        resumed = load_config(config=path, overrides=["--max-steps", "9"], saved_run=True)
    assert resumed == cfg.replace(max_steps=9)
    assert "max_turns was renamed max_tool_calls" in caplog.text
    with pytest.raises(ConfigError, match="--max-turns was renamed --max-tool-calls"):  # overrides: new input
        load_config(config=path, overrides=["--max-turns", "3"], saved_run=True)
    both = write(tmp_path, "max_turns: 3\nmax_tool_calls: 4\n", "both.yaml")
    with pytest.raises(ConfigError, match="both max_turns and max_tool_calls"):
        load_config(config=both, saved_run=True)


def test_the_tiny_model_gets_laptop_sized_defaults(tmp_path):
    """The README's ``swerepair train --model tiny-qwen3`` took 304 s and 9.4 GB for one step with
    the GPU-sized defaults; the tiny model's own defaults apply where nothing sets the value."""
    tiny = load_config(overrides=["--model", "tiny-qwen3"])
    assert (tiny.group_size, tiny.tasks_per_step, tiny.max_tool_calls) == (4, 1, 4)
    assert (tiny.max_new_tokens, tiny.max_context_tokens) == (64, 4096)
    assert load_config(overrides=["--group-size", "6"]).group_size == 6  # a value given wins
    assert load_config(config=write(tmp_path, "max_new_tokens: 100\n")).max_new_tokens == 100
    other = load_config(overrides=["--model", "smollm2-135m"])
    assert other.group_size == TrainConfig().group_size  # another model: the dataclass defaults
    demo = load_config(preset="cpu-demo")
    assert demo.max_new_tokens == PRESETS["cpu-demo"]["max_new_tokens"]
    # a saved run's config.yaml is read as it is
    saved = tmp_path / "config.yaml"
    TrainConfig().to_yaml(saved)
    assert load_config(config=saved, saved_run=True) == TrainConfig()
