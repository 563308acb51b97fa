from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.pendulum_angles(snakemake.input.markers, snakemake.params.settings,
                           snakemake.output[0], video=snakemake.input.video or None)
