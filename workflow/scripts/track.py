from ldnn import stages

with stages.logging_to(snakemake.log[0]):
    stages.track_markers(snakemake.input.video, snakemake.params.tracking,
                         snakemake.params.min_frames, snakemake.output[0])
