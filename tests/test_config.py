"""Configuration: the shipped config.yaml against the schema, one-line errors naming the key."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ldnn.config import (ActivationConfig, ConfigError, MetaConfig, StudyConfig, TrainConfig,
                         arm_names, parse, protocol_settings, study_settings, validate)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
STUDY = "mnist1d_sin"        # the study of the shipped config the variants below edit


@pytest.fixture
def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


@pytest.fixture
def shipped() -> dict:
    config = yaml.safe_load(CONFIG.read_text())
    if STUDY not in config.get("studies", {}):
        pytest.skip(f"config.yaml has no study {STUDY!r} to edit")
    return config


def test_shipped_config_validates(shipped, schema):
    config = validate(copy.deepcopy(shipped), schema)
    assert config["metalearn"]["meta_gradient"] in ("unrolled", "first_order")
    # Every section builds its dataclass: schema and dataclasses name the same keys.
    parse(ActivationConfig, config["activation"], "activation")
    parse(MetaConfig, config["metalearn"], "metalearn")
    for name in config["studies"]:
        for protocol in config["train"]["protocols"]:
            parse(TrainConfig, protocol_settings(config, name, protocol), "train")
    for name, study in config["studies"].items():
        parsed = parse(StudyConfig, study, f"studies.{name}")
        assert isinstance(parsed.widths, tuple) and isinstance(parsed.arms, tuple)


def test_validate_accepts_schema_path(shipped):
    validate(copy.deepcopy(shipped), SCHEMA)
    validate(copy.deepcopy(shipped), str(SCHEMA))


def test_empty_config_gets_every_default(schema):
    config = validate({}, schema)
    meta = schema["properties"]["metalearn"]["properties"]
    assert config["metalearn"] == {k: v["default"] for k, v in meta.items()}
    for section in ("activation", "metalearn", "train"):
        assert set(config[section]) == set(schema["properties"][section]["properties"])


def test_partial_section_keeps_given_values_and_fills_the_rest(schema):
    config = validate({"metalearn": {"outer_steps": 7}}, schema)
    assert config["metalearn"]["outer_steps"] == 7
    assert config["metalearn"]["inner_epochs"] == \
        schema["properties"]["metalearn"]["properties"]["inner_epochs"]["default"]


def test_validate_fills_defaults_in_place(schema):
    config: dict = {}
    assert validate(config, schema) is config and "metalearn" in config


def test_numeric_string_from_command_line_is_read_as_yaml(shipped, schema):
    """`snakemake --config metalearn='{outer_steps: 5}'` hands nested values over as strings."""
    config = copy.deepcopy(shipped)
    config["metalearn"] = "{outer_steps: 5, meta_gradient: first_order}"
    config = validate(config, schema)
    assert config["metalearn"]["outer_steps"] == 5
    assert config["metalearn"]["meta_gradient"] == "first_order"


def test_exponent_without_dot_is_a_number(shipped, schema):
    config = copy.deepcopy(shipped)
    config["train"] = yaml.safe_load("{converged: {lr: 1e-3}}")
    assert validate(config, schema)["train"]["converged"]["lr"] == pytest.approx(1e-3)


def set_key(path: str, value):
    def edit(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
    return edit


def delete_key(path: str):
    def edit(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]
    return edit


S = f"studies.{STUDY}"
INVALID = [
    ("negative outer_steps", set_key("metalearn.outer_steps", -1), "metalearn.outer_steps"),
    ("zero outer_steps", set_key("metalearn.outer_steps", 0), "metalearn.outer_steps"),
    ("word for an int", set_key("metalearn.outer_steps", "many"), "metalearn.outer_steps"),
    ("float for an int", set_key("metalearn.inner_epochs", 2.5), "metalearn.inner_epochs"),
    ("bool for an int", set_key("train.paper.epochs", True), "train.paper.epochs"),
    ("word for a number", set_key("train.paper.lr", "fast"), "train.paper.lr"),
    ("zero epoch cap", set_key("train.converged.epochs", 0), "train.converged.epochs"),
    ("negative patience", set_key("train.converged.patience", -5), "train.converged.patience"),
    ("zero patience with validation", set_key("train.converged.patience", 0),
     "train.converged.patience"),
    ("patience without validation", set_key("train.converged.validation", 0),
     "train.converged.validation"),
    ("criterion not a number", set_key("train.converged.min_improvement", "some"),
     "train.converged.min_improvement"),
    ("unconverged criterion of 0", set_key("train.unconverged_change", 0),
     "train.unconverged_change"),
    ("unknown optimiser", set_key("train.converged.optimizer", "lion"),
     "train.converged.optimizer"),
    ("unknown protocol", set_key("train.protocols", ["paper", "longer"]), "train.protocols.1"),
    ("hessian of a protocol not run",
     lambda c: (set_key("train.protocols", ["paper"])(c), set_key("hessian.protocol",
                                                                   "converged")(c)),
     "hessian.protocol"),
    ("unknown metalearn key", set_key("metalearn.bogus", 1), "metalearn.bogus"),
    ("unknown top-level key", set_key("bogus", 1), "bogus"),
    ("unknown study key", set_key(f"{S}.bogus", 1), f"{S}.bogus"),
    ("missing study key", delete_key(f"{S}.seeds"), S),
    ("meta_gradient not in enum", set_key("metalearn.meta_gradient", "second_order"),
     "metalearn.meta_gradient"),
    ("momentum of 1", set_key("metalearn.outer_momentum", 1.0), "metalearn.outer_momentum"),
    ("train_split of 1", set_key("data.mnist1d.train_split", 1.0), "data.mnist1d.train_split"),
    ("no replicates", set_key("metalearn.replicates", 0), "metalearn.replicates"),
    ("fractional replicates", set_key("metalearn.replicates", 2.5), "metalearn.replicates"),
    ("study with no replicates", set_key(f"{S}.metalearn", {"replicates": 0}),
     f"{S}.metalearn.replicates"),
    ("low equal to high", set_key("activation.low", 10.0), "activation.low"),
    ("low above high", lambda c: c["activation"].update(low=1.0, high=-1.0), "activation.low"),
    ("unknown arm", set_key(f"{S}.arms", ["relu", "swish"]), f"{S}.arms"),
    ("arm of a type not learned", set_key(f"{S}.arms", ["relu", "type9"]), f"{S}.arms"),
    ("zero arm", set_key(f"{S}.arms", ["zero"]), f"{S}.arms"),
    ("width not divisible", lambda c: c["studies"][STUDY].update(n_types=3, widths=[100]),
     f"{S}.widths"),
    ("metalearn width not divisible",
     lambda c: c["studies"][STUDY].update(n_types=2, widths=[100], metalearn_width=101),
     f"{S}.metalearn_width"),
    ("unknown task", set_key(f"{S}.task", "mnist2d"), f"{S}.task"),
    ("unknown base", set_key(f"{S}.base", "gelu"), f"{S}.base"),
    ("duplicate widths", set_key(f"{S}.widths", [100, 100]), f"{S}.widths"),
    ("empty arms", set_key(f"{S}.arms", []), f"{S}.arms"),
    ("bad study name", lambda c: c["studies"].update({"bad-name": c["studies"][STUDY]}),
     "studies"),
    ("figure of unknown study", set_key("figures.fig3.study", "nope"), "figures.fig3.study"),
    ("HNN figure study of the NN task", set_key("figures.fig6.hnn_study", "henon_heiles_sin"),
     "figures.fig6.hnn_study"),
    ("energy at the escape energy", set_key("data.henon_heiles.energies", [0.1, 1 / 6]),
     "data.henon_heiles.energies.1"),
    ("forecast longer than the data", set_key("train.forecast_horizon", 30.0),
     "train.forecast_horizon"),
    ("markers source without a path", set_key("pendulum.source", "markers"), "pendulum.markers"),
    ("video source with a missing file",
     lambda c: c["pendulum"].update(source="video", video="/nonexistent/clock.mp4"),
     "pendulum.video"),
    ("unknown pendulum source", set_key("pendulum.source", "camera"), "pendulum.source"),
    ("even Savitzky–Golay window", set_key("pendulum.savgol", {"window": 30, "order": 4}),
     "pendulum.savgol.window"),
    ("Savitzky–Golay order not below the window",
     set_key("pendulum.savgol", {"window": 5, "order": 5}), "pendulum.savgol.order"),
    ("colour out of range", set_key("pendulum.tracking", {"red": [300, 0, 0]}),
     "pendulum.tracking.red.0"),
    ("frame width not a multiple of 16", set_key("pendulum.synthetic", {"width": 650}),
     "pendulum.synthetic.width"),
    ("study forecast longer than the data",
     set_key("studies.henon_heiles_sin.train", {"forecast_horizon": 26.0}),
     "studies.henon_heiles_sin.train.forecast_horizon"),
]


@pytest.mark.parametrize("edit, key", [pytest.param(e, k, id=name) for name, e, k in INVALID])
def test_invalid_config_names_the_key_in_one_line(shipped, schema, edit, key):
    config = copy.deepcopy(shipped)
    edit(config)
    with pytest.raises(ConfigError) as info:
        validate(config, schema)
    message = str(info.value)
    assert f"config key '{key}'" in message, message
    assert "\n" not in message


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------- parse


TRAIN = {"protocol": "paper", "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
         "schedule": "constant", "epochs": 2, "validation": 0, "patience": 0,
         "min_improvement": 0, "batch_size": 10, "seed": 0, "forecast_horizon": 1.0,
         "unconverged_change": 0.01, "compiled": True}


def test_parse_builds_frozen_dataclass():
    cfg = parse(TrainConfig, dict(TRAIN), "train")
    assert cfg == TrainConfig(**TRAIN)
    with pytest.raises(AttributeError):
        cfg.lr = 1.0          # frozen


def test_parse_turns_lists_into_tuples():
    study = {"task": "mnist1d", "base": "sin", "n_types": 2, "depth": 1, "widths": [10, 20],
             "metalearn_width": 10, "arms": ["relu", "mixed"], "seeds": 2, "seed_block": 1,
             "metalearn": {}, "train": {}}
    cfg = parse(StudyConfig, study, "studies.x")
    assert cfg.widths == (10, 20) and cfg.arms == ("relu", "mixed")


def test_parse_rejects_unknown_key():
    with pytest.raises(ConfigError, match=r"^config key 'train\.bogus': unknown key$"):
        parse(TrainConfig, TRAIN | {"bogus": 1}, "train")


def test_parse_rejects_missing_key():
    values = {k: v for k, v in TRAIN.items() if k != "epochs"}
    with pytest.raises(ConfigError, match=r"^config key 'train\.epochs': missing$"):
        parse(TrainConfig, values, "train")


@pytest.mark.parametrize("n_types, expected", [
    (1, ["relu", "sin", "tanh", "type1", "mixed"]),
    (3, ["relu", "sin", "tanh", "type1", "type2", "type3", "mixed"]),
])
def test_arm_names(n_types, expected):
    assert arm_names(n_types) == expected


def test_study_changes_apply_on_top_of_the_sections(shipped, schema):
    from ldnn.config import study_settings

    config = copy.deepcopy(shipped)
    config["studies"][STUDY]["train"] = {"converged": {"epochs": "7"}}
    validate(config, schema)
    merged = protocol_settings(config, STUDY, "converged")
    assert merged["epochs"] == 7 and merged["lr"] == config["train"]["converged"]["lr"]
    assert merged["protocol"] == "converged" and "protocols" not in merged
    assert study_settings(config, STUDY, "metalearn") == config["metalearn"]


@pytest.mark.parametrize("section, change, key", [
    ("train", {"bogus": 1}, "train.bogus"),
    ("metalearn", {"outer_steps": 0}, "metalearn.outer_steps"),
])
def test_bad_study_change_names_its_key(shipped, schema, section, change, key):
    config = copy.deepcopy(shipped)
    config["studies"][STUDY][section] = change
    with pytest.raises(ConfigError, match=rf"^config key 'studies\.{STUDY}\.{key}'"):
        validate(config, schema)


def test_figure_pointing_at_a_study_of_another_task_is_rejected(shipped, schema):
    config = copy.deepcopy(shipped)
    config["figures"] = {"fig5": {"study": STUDY, "arms": ["type1"]}}
    with pytest.raises(ConfigError, match=r"^config key 'figures\.fig5\.study': fig5 shows"):
        validate(config, schema)


def test_equal_settings_give_equal_rule_parameters_however_ordered(shipped, schema):
    """Snakemake compares rule parameters as written: key order must not trigger reruns."""
    reordered = copy.deepcopy(shipped)
    reordered["metalearn"] = dict(reversed(list(reordered["metalearn"].items())))
    reordered["studies"]["van_der_pol_sin"]["metalearn"] = {"outer_lr": 0.04}
    config, other = validate(copy.deepcopy(shipped), schema), validate(reordered, schema)
    for study in config["studies"]:
        for section in ("metalearn", "train"):
            assert list(study_settings(config, study, section).items()) == \
                list(study_settings(other, study, section).items())
