# Frozen-activation training: one job per (study, protocol, replicate, arm, width, seed
# block), seeds vectorised, with the activations of that meta-learning replicate; each job writes its table and the trained parameters. The reference
# baselines of each study, and the study's table of both.


rule train:
    input:
        data=study_data,
        activations=replicate_activations,
    output:
        table=f"{R}/{{study}}/train/{{protocol}}/r{{replicate}}/{{arm}}/w{{width}}/seeds{{first}}-{{last}}.csv",
        params=f"{R}/{{study}}/train/{{protocol}}/r{{replicate}}/{{arm}}/w{{width}}/seeds{{first}}-{{last}}.pt",
    params:
        task=lambda w: STUDIES[w.study]["task"],
        depth=lambda w: STUDIES[w.study]["depth"],
        train=lambda w: protocol_settings(config, w.study, w.protocol),
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/train/{{study}}/{{protocol}}/r{{replicate}}_{{arm}}_w{{width}}_seeds{{first}}-{{last}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{study}}/{{protocol}}/r{{replicate}}_{{arm}}_w{{width}}_seeds{{first}}-{{last}}.tsv"
    threads: THREADS["train"]
    resources:
        mem_mb=1000,
        runtime=60,
    script:
        "../scripts/train.py"


rule baselines:
    input:
        data=study_data,
    output:
        f"{R}/{{study}}/baselines.csv",
    params:
        task=lambda w: STUDIES[w.study]["task"],
        forecast_horizon=lambda w: study_settings(config, w.study, "train")["forecast_horizon"],
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/baselines/{{study}}.log",
    script:
        "../scripts/baselines.py"


rule gather:
    input:
        tables=study_tables,
        baselines=f"{R}/{{study}}/baselines.csv",
    output:
        f"{R}/{{study}}/results.csv",
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/gather/{{study}}.log",
    script:
        "../scripts/gather.py"
