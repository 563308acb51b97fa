from ldnn import stages

with stages.logging_to(snakemake.log[0], stages.THREADS["hessian"]):
    stages.hessian(
        data=snakemake.input.data,
        activations=snakemake.input.activations,
        task=snakemake.params.task,
        arm=snakemake.wildcards.arm,
        blocks=snakemake.input.blocks,
        settings=snakemake.params.settings,
        out_table=snakemake.output.table,
        out_spectra=snakemake.output.spectra,
    )
