# Data generation: one job per task, settings from config["data"][task].


rule data:
    output:
        f"{R}/data/{{task}}.npz",
    params:
        settings=lambda w: config["data"][w.task],
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/data/{{task}}.log",
    script:
        "../scripts/data.py"
