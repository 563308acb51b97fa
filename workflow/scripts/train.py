from ldnn import stages

w = snakemake.wildcards
with stages.logging_to(snakemake.log[0], stages.THREADS["train"]):
    stages.train_block(
        data=snakemake.input.data,
        activations=snakemake.input.activations,
        task=snakemake.params.task,
        depth=snakemake.params.depth,
        train=snakemake.params.train,
        replicate=int(w.replicate),
        arm=w.arm,
        width=int(w.width),
        seeds=range(int(w.first), int(w.last) + 1),
        out=snakemake.output.table,
        out_params=snakemake.output.params,
    )
