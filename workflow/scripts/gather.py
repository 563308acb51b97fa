from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.gather(snakemake.input, snakemake.wildcards.study, snakemake.output[0])
