# Hessian of the training loss of a study's trained networks: one job per arm, then the
# joined table and the figure (target `hessian`).

HESSIAN = config["hessian"]
HESSIAN_STUDY = STUDIES[HESSIAN["study"]]
HESSIAN_WIDTH = HESSIAN_STUDY["widths"][0]


rule hessian_arm:
    input:
        data=data_of(HESSIAN["study"]),
        activations=[activations_of(HESSIAN["study"], r) for r in replicates_of(HESSIAN["study"])],
        blocks=lambda w: [
            f"{R}/{HESSIAN['study']}/train/{HESSIAN['protocol']}/r{replicate}/{w.arm}/"
            f"w{HESSIAN_WIDTH}/seeds{first}-{last}.pt"
            for replicate, first, last in replicate_blocks(HESSIAN["study"])
        ],
    output:
        table=f"{R}/{HESSIAN['study']}/hessian/{{arm}}.csv",
        spectra=f"{R}/{HESSIAN['study']}/hessian/{{arm}}.npz",
    params:
        task=HESSIAN_STUDY["task"],
        settings=HESSIAN,
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/hessian/{{arm}}.log",
    benchmark:
        f"{R}/benchmarks/hessian/{{arm}}.tsv"
    threads: THREADS["hessian"]
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../scripts/hessian_arm.py"


rule hessian:
    input:
        tables=expand(f"{R}/{HESSIAN['study']}/hessian/{{arm}}.csv", arm=HESSIAN["arms"]),
        spectra=expand(f"{R}/{HESSIAN['study']}/hessian/{{arm}}.npz", arm=HESSIAN["arms"]),
    output:
        table=f"{R}/{HESSIAN['study']}/hessian.csv",
        png=report(f"{R}/figures/hessian.png", caption="../report/hessian.rst",
                   category="Figures"),
        pdf=f"{R}/figures/hessian.pdf",
    params:
        arms=HESSIAN["arms"],
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/figures/hessian.log",
    script:
        "../scripts/hessian.py"
