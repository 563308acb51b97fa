from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.fig4(snakemake.input.results, snakemake.params.figure,
               stages.protocol_paths(snakemake.params.protocols, snakemake.output.png,
                                     snakemake.output.pdf))
