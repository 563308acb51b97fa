from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.fig3(
        history=snakemake.input.history,
        results=snakemake.input.results,
        figure=snakemake.params.figure,
        out=stages.protocol_paths(snakemake.params.protocols, snakemake.output.png,
                                  snakemake.output.pdf),
    )
