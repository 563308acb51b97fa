from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.metalearn_merge(
        params=list(snakemake.input.params),
        histories=list(snakemake.input.histories),
        out_params=snakemake.output.params,
        out_history=snakemake.output.history,
    )
