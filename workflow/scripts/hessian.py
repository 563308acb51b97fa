from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.hessian_figure(snakemake.params.arms, snakemake.input.tables, snakemake.input.spectra,
                          snakemake.output.table, [snakemake.output.png, snakemake.output.pdf])
