from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.claims(snakemake.input.tables, snakemake.params.names, snakemake.params.sources,
                  snakemake.params.settings, snakemake.output.table, snakemake.output.markdown)
