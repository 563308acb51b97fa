from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.fig6(
        nn_history=snakemake.input.nn_history,
        hnn_history=snakemake.input.hnn_history,
        nn_results=snakemake.input.nn_results,
        hnn_results=snakemake.input.hnn_results,
        figure=snakemake.params.figure,
        out=stages.protocol_paths(snakemake.params.protocols, snakemake.output.png,
                                  snakemake.output.pdf),
    )
