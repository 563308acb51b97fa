from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.clock_video(snakemake.params.synthetic, snakemake.output.video, snakemake.output.truth)
