from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.fig4(snakemake.input.results, snakemake.params.figure,
               [snakemake.output.png, snakemake.output.pdf])
