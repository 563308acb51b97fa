from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.make_data(snakemake.wildcards.task, snakemake.params.settings, snakemake.output[0])
