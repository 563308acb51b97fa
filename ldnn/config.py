"""Typed settings and validation of the workflow configuration.

The JSON schema (workflow/schemas/config.schema.yaml) holds every default; `validate`
fills them in and stops at the first problem with a one-line message naming the key.
Library functions take the frozen dataclasses below, never raw dictionaries.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml


# The study keys of each figure and the task each must be a study of.
FIGURE_TASKS = {"fig3": {"study": "mnist1d"}, "fig5": {"study": "van_der_pol"},
                "fig6": {"study": "henon_heiles", "hnn_study": "henon_heiles_hnn"},
                "fig7": {"study": "pendulum"}, "fig4": {"study": "mnist1d"},
                "fig8": {"study": "mnist1d"}, "fig9": {}}


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key."""


@dataclass(frozen=True)
class ActivationConfig:
    """Learned activation σ = base + scale·g, g: 1→width→1 (tanh); capture grid [low, high]."""
    width: int
    scale: float
    low: float
    high: float
    points: int


@dataclass(frozen=True)
class MetaConfig:
    """Algorithm 1: inner RMSprop training from a fresh init, outer SGD with momentum."""
    meta_gradient: str
    spline_spacing: float
    outer_steps: int
    outer_lr: float
    outer_momentum: float
    grad_clip: float
    inner_lr: float
    inner_decay: float
    inner_epochs: int
    batch_size: int
    noise: float
    snapshot_every: int
    checkpoint_every: int
    seed: int
    replicates: int
    replicates_per_job: int


PROTOCOLS = ("paper", "converged")


@dataclass(frozen=True)
class TrainConfig:
    """Frozen-activation training under one protocol: SGD with momentum or Adam, constant
    or cosine-decaying learning rate, shuffled batches, at most `epochs` epochs. With
    `validation` > 0 the last rows of the training set are held out, and a seed stops
    after `patience` epochs without a relative improvement of its validation loss by
    `min_improvement`, keeping its best-validation parameters. `compiled`: in the compiled
    kernel where it applies (ldnn.compiled_training), else through autograd."""
    protocol: str
    optimizer: str
    lr: float
    momentum: float
    schedule: str
    epochs: int
    validation: float
    patience: int
    min_improvement: float
    batch_size: int
    seed: int
    forecast_horizon: float
    unconverged_change: float
    compiled: bool


@dataclass(frozen=True)
class StudyConfig:
    """One meta-learned activation set and the arms trained with it."""
    task: str
    base: str
    n_types: int
    depth: int
    widths: tuple[int, ...]
    metalearn_width: int
    arms: tuple[str, ...]
    seeds: int
    seed_block: int
    metalearn: dict
    train: dict


@dataclass(frozen=True)
class ClaimsConfig:
    """Claim statistics: family-wise error rate and the bootstrap of the intervals."""
    alpha: float
    resamples: int
    seed: int


T = TypeVar("T")


def parse(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Build dataclass `cls` from `values`, rejecting unknown and missing keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    missing = sorted(names - set(values))
    if unknown:
        raise ConfigError(f"config key '{where}.{unknown[0]}': unknown key")
    if missing:
        raise ConfigError(f"config key '{where}.{missing[0]}': missing")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _validator_with_defaults() -> type:
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties})


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate(config: dict, schema: dict | str | Path) -> dict:
    """Fill schema defaults into `config` in place and check it; raise ConfigError."""
    if not isinstance(schema, dict):
        schema = yaml.safe_load(Path(schema).read_text())
    _check_schema(config, schema, [])
    for name, study in config["studies"].items():
        for section in ("metalearn", "train"):
            _parse_strings(study.get(section, {}), schema["properties"][section])
            merged = study_settings(config, name, section)
            _check_schema(merged, schema["properties"][section], ["studies", name, section])
    _check_relations(config)
    _schema_order(config, schema)
    return config


def _schema_order(node: Any, schema: dict) -> None:
    """Reorder every dict with declared properties to the schema's order, in place, so that
    equal settings give equal rule parameters however they were written."""
    if not isinstance(node, dict):
        return
    properties = schema.get("properties", {})
    for key in properties:
        if key in node:
            node[key] = node.pop(key)
    for key, value in node.items():
        sub = properties.get(key, schema.get("additionalProperties"))
        if isinstance(sub, dict):
            _schema_order(value, sub)


def study_settings(config: dict, study: str, section: str) -> dict:
    """A top-level section (metalearn or train) with the study's own changes applied; a
    change inside a nested section (a training protocol) keeps its other keys."""
    merged = dict(config[section])
    for key, value in config["studies"][study].get(section, {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def protocol_settings(config: dict, study: str, protocol: str) -> dict:
    """The flat TrainConfig values of one training protocol of a study."""
    train = study_settings(config, study, "train")
    shared = {k: v for k, v in train.items() if k not in PROTOCOLS and k != "protocols"}
    return {"protocol": protocol, **train[protocol], **shared}


def _check_schema(instance: Any, schema: dict, where: list) -> None:
    _parse_strings(instance, schema)
    errors = list(_validator_with_defaults()(schema).iter_errors(instance))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        path, message = where + list(error.absolute_path), error.message.splitlines()[0]
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            path.append(sorted(set(error.instance) - known)[0])
            message = f"unknown key; allowed: {', '.join(sorted(known))}"
        raise ConfigError(f"config key '{_key(path)}': {message}")


def _parse_strings(node: Any, schema: dict) -> Any:
    """Read YAML in strings where the schema wants another type, in place; returns the node.

    `snakemake --config key={…}` passes nested values as strings."""
    if isinstance(node, str) and schema.get("type", "string") != "string":
        if schema.get("type") == "number":
            with contextlib.suppress(ValueError):
                return float(node)
        with contextlib.suppress(yaml.YAMLError):
            return yaml.safe_load(node)
    if isinstance(node, dict):
        for key in node:
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                node[key] = _parse_strings(node[key], sub)
    if isinstance(node, list) and isinstance(schema.get("items"), dict):
        node[:] = [_parse_strings(item, schema["items"]) for item in node]
    return node


def _check_relations(config: dict) -> None:
    from ldnn.activations import STANDARD
    from ldnn.tasks import NAMES

    _check_pendulum(config["pendulum"])
    act = config["activation"]
    if act["low"] >= act["high"]:
        raise ConfigError(f"config key 'activation.low': {act['low']} is not below "
                          f"activation.high = {act['high']}")
    for name, study in config["studies"].items():
        where = f"studies.{name}"
        parse(StudyConfig, study, where)
        if study["task"] not in NAMES:
            raise ConfigError(f"config key '{where}.task': unknown task {study['task']!r}; "
                              f"choose from {list(NAMES)}")
        if study["base"] not in STANDARD:
            raise ConfigError(f"config key '{where}.base': unknown activation "
                              f"{study['base']!r}; choose from {sorted(STANDARD)}")
        for key in ("widths", "metalearn_width"):
            widths = study[key] if key == "widths" else [study[key]]
            for width in widths:
                if width % study["n_types"]:
                    raise ConfigError(f"config key '{where}.{key}': hidden width {width} is "
                                      f"not divisible by n_types = {study['n_types']}")
        _check_forecast_horizon(config, name)
        _check_protocols(config, name)
        allowed = arm_names(study["n_types"])
        for arm in study["arms"]:
            if arm not in allowed:
                raise ConfigError(f"config key '{where}.arms': unknown arm {arm!r}; "
                                  f"choose from {allowed}")
    _check_hessian(config)
    for name, figure in config["figures"].items():
        for key, task in FIGURE_TASKS[name].items():
            where = f"figures.{name}.{key}"
            study = config["studies"].get(figure[key])
            if study is None:
                raise ConfigError(f"config key '{where}': no study called {figure[key]!r}")
            if study["task"] != task:
                raise ConfigError(f"config key '{where}': {name} shows a {task} study, "
                                  f"{figure[key]!r} is {study['task']}")
            for arm in figure.get("arms", []):
                if arm not in study["arms"]:
                    raise ConfigError(f"config key 'figures.{name}.arms': arm {arm!r} is not "
                                      f"trained in study {figure[key]!r}")


def _check_hessian(config: dict) -> None:
    settings = config["hessian"]
    study = config["studies"].get(settings["study"])
    if study is None:
        raise ConfigError(f"config key 'hessian.study': no study called {settings['study']!r}")
    for arm in settings["arms"]:
        if arm not in study["arms"]:
            raise ConfigError(f"config key 'hessian.arms': arm {arm!r} is not trained in "
                              f"study {settings['study']!r}")
    if settings["protocol"] not in study_settings(config, settings["study"], "train")["protocols"]:
        raise ConfigError(f"config key 'hessian.protocol': study {settings['study']!r} does "
                          f"not train under protocol {settings['protocol']!r}")


def _check_pendulum(pendulum: dict) -> None:
    """A user source needs its file; the Savitzky–Golay window must be odd and above the order."""
    source = pendulum["source"]
    if source in ("markers", "video"):
        path = pendulum[source]
        if not path:
            raise ConfigError(f"config key 'pendulum.{source}': a path is required when "
                              f"pendulum.source is {source}")
        if not Path(path).is_file():
            raise ConfigError(f"config key 'pendulum.{source}': no such file {path}")
    window, order = pendulum["savgol"]["window"], pendulum["savgol"]["order"]
    if window % 2 == 0:
        raise ConfigError(f"config key 'pendulum.savgol.window': {window} is not odd")
    if order >= window:
        raise ConfigError(f"config key 'pendulum.savgol.order': {order} is not below the "
                          f"window {window}")


def _check_protocols(config: dict, name: str) -> None:
    """Early stopping needs a validation split and a patience, each with the other."""
    train = study_settings(config, name, "train")
    for protocol in PROTOCOLS:
        settings = train[protocol]
        key = (f"studies.{name}.train.{protocol}" if protocol in
               config["studies"][name].get("train", {}) else f"train.{protocol}")
        if settings["validation"] > 0 and settings["patience"] < 1:
            raise ConfigError(f"config key '{key}.patience': {settings['patience']} is not a "
                              "positive number of epochs, and validation > 0 needs one")
        if settings["patience"] > 0 and not settings["validation"] > 0:
            raise ConfigError(f"config key '{key}.validation': early stopping (patience "
                              f"{settings['patience']}) needs a validation fraction above 0")


def _check_forecast_horizon(config: dict, name: str) -> None:
    """A dynamical-system study's forecast horizon must fit in its data's trajectories."""
    from ldnn.tasks import get

    data = config["data"].get(get(config["studies"][name]["task"]).dataset, {})
    horizon = study_settings(config, name, "train")["forecast_horizon"]
    if "duration" in data and horizon > data["duration"]:
        key = ("studies." + name + ".train" if "forecast_horizon" in
               config["studies"][name].get("train", {}) else "train")
        raise ConfigError(f"config key '{key}.forecast_horizon': {horizon} is longer than the "
                          f"trajectories ({data['duration']} time units)")


def arm_names(n_types: int) -> list[str]:
    """Valid arm names: the standard activations, each learned type alone, and mixed."""
    from ldnn.activations import STANDARD

    return sorted(set(STANDARD) - {"zero"}) + [f"type{k + 1}" for k in range(n_types)] + ["mixed"]
