from ldnn import stages

p = snakemake.params
with stages.logging_to(snakemake.log[0], stages.THREADS["metalearn"]):
    stages.metalearn(
        data=snakemake.input.data,
        task=p.task,
        base=p.base,
        n_types=p.n_types,
        depth=p.depth,
        width=p.width,
        activation=p.activation,
        meta=p.meta,
        replicates=p.replicates,
        out_params=snakemake.output.params,
        out_history=snakemake.output.history,
    )
