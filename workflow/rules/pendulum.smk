# The pendulum clock: synthetic video → markers → angles → data set. The source switch
# (config pendulum.source) decides where the chain starts (common.smk: pendulum_video,
# pendulum_markers).


rule clock_video:
    output:
        video=f"{R}/pendulum/synthetic/video.mp4",
        truth=f"{R}/pendulum/synthetic/truth.csv",
    params:
        synthetic=PENDULUM["synthetic"],
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/pendulum/clock_video.log",
    benchmark:
        f"{R}/benchmarks/pendulum/clock_video.tsv"
    script:
        "../scripts/clock_video.py"


rule track:
    input:
        video=pendulum_video,
    output:
        f"{R}/pendulum/markers.csv",
    params:
        tracking=PENDULUM["tracking"],
        min_frames=2 * PENDULUM["savgol"]["window"],
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/pendulum/track.log",
    benchmark:
        f"{R}/benchmarks/pendulum/track.tsv"
    script:
        "../scripts/track.py"


rule angles:
    input:
        markers=pendulum_markers,
        video=pendulum_video,
    output:
        f"{R}/pendulum/angles.csv",
    params:
        settings={k: PENDULUM[k] for k in ("frame_interval", "savgol", "max_gap",
                                           "detrend_degree")},
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/pendulum/angles.log",
    script:
        "../scripts/angles.py"


rule pendulum_data:
    input:
        angles=rules.angles.output,
    output:
        f"{R}/data/pendulum.npz",
    params:
        dataset="pendulum",
        settings=lambda w, input: {"angles": input.angles[0],
                                   "train_fraction": PENDULUM["train_fraction"]},
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/data/pendulum.log",
    script:
        "../scripts/data.py"
