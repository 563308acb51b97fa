from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.baselines(snakemake.input.data, snakemake.params.task,
                     snakemake.params.forecast_horizon, snakemake.output[0])
