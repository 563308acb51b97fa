from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.capture(snakemake.input.params, snakemake.params.activation,
                   int(snakemake.wildcards.replicate), snakemake.output[0])
