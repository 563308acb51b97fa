from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.fig7(
        markers=snakemake.input.markers,
        angles=snakemake.input.angles[0],
        results=snakemake.input.results,
        figure=snakemake.params.figure,
        out=stages.protocol_paths(snakemake.params.protocols, snakemake.output.png,
                                  snakemake.output.pdf),
        video=snakemake.input.video or None,
    )
