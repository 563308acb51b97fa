# Frozen-activation training: one job per (study, arm, width, seed block), seeds vectorised;
# each job writes its table and the trained parameters.


rule train:
    input:
        data=study_data,
        activations=study_activations,
    output:
        table=f"{R}/{{study}}/train/{{arm}}/w{{width}}/seeds{{first}}-{{last}}.csv",
        params=f"{R}/{{study}}/train/{{arm}}/w{{width}}/seeds{{first}}-{{last}}.pt",
    params:
        task=lambda w: STUDIES[w.study]["task"],
        depth=lambda w: STUDIES[w.study]["depth"],
        train=lambda w: study_settings(config, w.study, "train"),
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/train/{{study}}/{{arm}}_w{{width}}_seeds{{first}}-{{last}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{study}}/{{arm}}_w{{width}}_seeds{{first}}-{{last}}.tsv"
    threads: THREADS["train"]
    resources:
        mem_mb=1000,
        runtime=60,
    script:
        "../scripts/train.py"


rule gather:
    input:
        study_tables,
    output:
        f"{R}/{{study}}/results.csv",
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/gather/{{study}}.log",
    script:
        "../scripts/gather.py"
