# Data generation: one job per data set, settings from config["data"][dataset].


rule data:
    output:
        f"{R}/data/{{dataset}}.npz",
    params:
        dataset=lambda w: w.dataset,
        settings=lambda w: config["data"][w.dataset],
        version=LDNN_VERSION,
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/data/{{dataset}}.log",
    cache: True
    script:
        "../scripts/data.py"
