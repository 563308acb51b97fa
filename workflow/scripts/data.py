from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.make_data(snakemake.params.dataset, snakemake.params.settings, snakemake.output[0])
