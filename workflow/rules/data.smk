# Data generation, one rule per task.


rule data_mnist1d:
    output:
        f"{R}/data/mnist1d.npz",
    params:
        settings=config["data"]["mnist1d"],
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/data/mnist1d.log",
    script:
        "../scripts/data_mnist1d.py"
