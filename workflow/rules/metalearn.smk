# Meta-learning of a study's activation types, one job per block of replicates
# (metalearn.replicates_per_job), the blocks merged, then their capture as frozen tables.
# Meta-learning may be shared between checkouts through Snakemake's between-workflow
# cache (`--cache`, README); a cached rule may not have a benchmark file, so its time and
# memory are in its log.


rule metalearn:
    input:
        data=study_data,
    output:
        params=f"{R}/{{study}}/metalearn/r{{first}}-{{last}}/params.pt",
        history=f"{R}/{{study}}/metalearn/r{{first}}-{{last}}/history.npz",
    params:
        task=lambda w: STUDIES[w.study]["task"],
        base=lambda w: STUDIES[w.study]["base"],
        n_types=lambda w: STUDIES[w.study]["n_types"],
        depth=lambda w: STUDIES[w.study]["depth"],
        width=lambda w: STUDIES[w.study]["metalearn_width"],
        activation=config["activation"],
        meta=lambda w: study_settings(config, w.study, "metalearn"),
        replicates=lambda w: list(range(int(w.first), int(w.last) + 1)),
        version=LDNN_VERSION,
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/metalearn/{{study}}_r{{first}}-{{last}}.log",
    cache: True
    threads: THREADS["metalearn"]
    resources:
        mem_mb=4000,
        runtime=600,
    script:
        "../scripts/metalearn.py"


rule metalearn_merge:
    input:
        params=lambda w: metalearn_jobs(w.study, "params.pt"),
        histories=lambda w: metalearn_jobs(w.study, "history.npz"),
    output:
        params=f"{R}/{{study}}/metalearn/params.pt",
        history=f"{R}/{{study}}/metalearn/history.npz",
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/metalearn/{{study}}_merge.log",
    script:
        "../scripts/metalearn_merge.py"


rule capture:
    input:
        params=rules.metalearn_merge.output.params,
    output:
        f"{R}/{{study}}/activations/r{{replicate}}.npz",
    params:
        activation=config["activation"],
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/capture/{{study}}/r{{replicate}}.log",
    script:
        "../scripts/capture.py"
