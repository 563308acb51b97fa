# Paths and helpers shared by the rules.
from importlib.metadata import version

from ldnn.config import PROTOCOLS, protocol_settings, study_settings
from ldnn.stages import THREADS, seed_blocks
from ldnn.tasks import get as get_task

R = config["results"]
STUDIES = config["studies"]
PENDULUM = config["pendulum"]
# Part of the between-workflow cache key of data and meta-learning: bump it when a change
# of the library alters their results.
LDNN_VERSION = version("ldnn")


wildcard_constraints:
    study="|".join(STUDIES),
    dataset="|".join(config["data"]),
    arm="[a-z0-9]+",
    width=r"\d+",
    replicate=r"\d+",
    protocol="|".join(PROTOCOLS),
    first=r"\d+",
    last=r"\d+",


def activations_of(study, replicate=0):
    """A study's captured activations of one meta-learning replicate."""
    return f"{R}/{study}/activations/r{replicate}.npz"


def every_capture():
    """The captured activations of every replicate of every study."""
    return [activations_of(study, replicate) for study in STUDIES
            for replicate in range(study_settings(config, study, "metalearn")["replicates"])]


def replicate_activations(wildcards):
    return activations_of(wildcards.study, int(wildcards.replicate))


def data_of(study):
    return f"{R}/data/{get_task(STUDIES[study]['task']).dataset}.npz"


def study_data(wildcards):
    return data_of(wildcards.study)


def protocols_of(study):
    """The training protocols a study runs."""
    return study_settings(config, study, "train")["protocols"]


def replicates_of(study):
    """The meta-learning replicates of a study: range(metalearn.replicates)."""
    return range(study_settings(config, study, "metalearn")["replicates"])


def metalearn_jobs(study, name):
    """File `name` of each of a study's meta-learning jobs (blocks of replicates)."""
    settings = study_settings(config, study, "metalearn")
    return [f"{R}/{study}/metalearn/r{first}-{last}/{name}"
            for first, last in seed_blocks(settings["replicates"], settings["replicates_per_job"])]


def replicate_blocks(study):
    """(replicate, first, last) of every seed block: replicate r trains seeds r·n … r·n + n − 1
    (n = the study's seeds per replicate) with its own learned activations."""
    settings = STUDIES[study]
    return [(replicate, replicate * settings["seeds"] + first, replicate * settings["seeds"] + last)
            for replicate in replicates_of(study)
            for first, last in seed_blocks(settings["seeds"], settings["seed_block"])]


def study_tables(wildcards):
    study = STUDIES[wildcards.study]
    return [
        f"{R}/{wildcards.study}/train/{protocol}/r{replicate}/{arm}/w{width}/seeds{first}-{last}.csv"
        for protocol in protocols_of(wildcards.study)
        for arm in study["arms"]
        for width in study["widths"]
        for replicate, first, last in replicate_blocks(wildcards.study)
    ]


def figure_files(name, protocols, ext):
    """A figure's files, one per training protocol."""
    return [f"{R}/figures/{protocol}/{name}.{ext}" for protocol in protocols]


def figure_report(name, protocols):
    """A figure's PNG files, one per training protocol, in the report."""
    return [report(path, caption=f"../report/{name}.rst", category="Figures",
                   subcategory=protocol)
            for protocol, path in zip(protocols, figure_files(name, protocols, "png"))]


def pendulum_video(wildcards=None):
    """The video tracked and shown: rendered, the user's, or none for a markers table."""
    return {"synthetic": f"{R}/pendulum/synthetic/video.mp4",
            "video": PENDULUM["video"]}.get(PENDULUM["source"], [])


def pendulum_markers(wildcards=None):
    if PENDULUM["source"] == "markers":
        return PENDULUM["markers"]
    return f"{R}/pendulum/markers.csv"


onstart:
    import yaml, pathlib

    pathlib.Path(R).mkdir(parents=True, exist_ok=True)
    pathlib.Path(f"{R}/config.resolved.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def cancel_reevaluation_timers():
    """Cancel the schedule re-evaluations Snakemake leaves waiting on threading.Timer (one
    per pass, each up to the profile's max-jobs-per-timespan away), which would otherwise
    keep the finished run from exiting."""
    import threading

    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


onsuccess:
    cancel_reevaluation_timers()


onerror:
    cancel_reevaluation_timers()
