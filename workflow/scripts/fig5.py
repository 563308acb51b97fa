from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.fig5(
        history=snakemake.input.history,
        results=snakemake.input.results,
        figure=snakemake.params.figure,
        mu=snakemake.params.mu,
        out=stages.protocol_paths(snakemake.params.protocols, snakemake.output.png,
                                  snakemake.output.pdf),
    )
