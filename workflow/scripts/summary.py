from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.summary(snakemake.input.studies, snakemake.params.names, snakemake.input.hessian,
                   snakemake.input.claims, snakemake.input.markers or None,
                   snakemake.input.truth or None, snakemake.output[0])
