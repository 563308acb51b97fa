from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.gather(snakemake.input.tables, snakemake.input.baselines, snakemake.wildcards.study,
                  snakemake.output[0])
