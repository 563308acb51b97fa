from ldnn import stages

with stages.logging_to(snakemake.log[0], snakemake.threads):
    stages.metalearn(
        data=snakemake.input.data,
        study=snakemake.params.study,
        activation=snakemake.params.activation,
        meta=snakemake.params.meta,
        out_params=snakemake.output.params,
        out_history=snakemake.output.history,
        checkpoint=snakemake.params.checkpoint,
    )
